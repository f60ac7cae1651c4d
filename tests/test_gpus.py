"""The GPUs before CUDA (harness.measure.gpus) through the real nvidia-ml-py on the stand-in
NVML library: why CUDA does not work, which GPU (by UUID) and which CPUs (the GPU's NUMA
affinity) each pytest-xdist worker gets, within an outer CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.measure.gpus import DriverState, GpuPlan, Placement, assign, explain_no_cuda
from tests.nvml_stub import scenarios
from tests.nvml_stub.fixtures import spawn_pool, stub_dir, stub_lib

__all__ = ["stub_dir", "stub_lib"]

UUIDS = [f"GPU-{i}e1c0000-0000-4000-8000-00000000000{i}" for i in range(4)]
FOUR = {
    "devices": 4,
    **{f"dev{i}.uuid": u for i, u in enumerate(UUIDS)},
    **{f"dev{i}.name": "NVIDIA H100 80GB HBM3" for i in range(4)},
}
# two NUMA nodes of two CPUs, two GPUs on each
NUMA = {
    "dev0.affinity": "0-1",
    "dev1.affinity": "0-1",
    "dev2.affinity": "2-3",
    "dev3.affinity": "2-3",
}
NO_ENV = {"CUDA_VISIBLE_DEVICES": None, "CUDA_DEVICE_ORDER": None}


@pytest.fixture(scope="module")
def worker() -> Iterator[ProcessPoolExecutor]:
    with spawn_pool() as pool:
        yield pool


@pytest.fixture
def stub(worker: ProcessPoolExecutor, stub_lib: str, tmp_path: Path):
    """stub(function, config, *args): a scenario function run on the stub in the worker."""
    counter = iter(range(1000))

    def _run(function: Any, config: dict[str, object], *args: Any) -> Any:
        path = tmp_path / f"stub{next(counter)}.conf"
        path.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        return worker.submit(function, stub_lib, str(path), *args).result(timeout=120)

    return _run


# -- why CUDA does not work --------------------------------------------------------------------


def test_no_driver_loaded_is_named(stub) -> None:
    why = stub(scenarios.explain, {"ret.init": 9}, "12.8", None)
    assert why.startswith("no working NVIDIA driver: the NVIDIA kernel driver is not loaded")


def test_no_gpu_is_named(stub) -> None:
    assert "sees no GPU" in stub(scenarios.explain, {"devices": 0}, "12.8", None)


def test_a_driver_too_old_for_the_wheel_is_a_mismatch_with_both_versions(stub) -> None:
    why = stub(scenarios.explain, {"cuda_driver_version": 11080}, "12.8", None)
    assert "torch is built for CUDA 12.8" in why
    assert "supports CUDA up to 11.8 (a wheel/driver mismatch)" in why


def test_every_gpu_hidden_by_cuda_visible_devices_is_named(stub) -> None:
    why = stub(scenarios.explain, {}, "12.8", "")
    assert why == "CUDA_VISIBLE_DEVICES='' hides every GPU"


def test_a_torch_without_cuda_is_named_before_the_driver() -> None:
    why = explain_no_cuda(None, None, DriverState(reason="no library"), None)
    assert why == "torch is a build without CUDA: install a CUDA build of torch"


# -- one GPU per worker, by UUID, with its NUMA node's CPUs -------------------------------------


def test_each_worker_gets_a_gpu_by_uuid_and_its_share_of_the_numa_nodes_cpus(stub) -> None:
    out = stub(scenarios.gpu_plan, {**FOUR, **NUMA}, NO_ENV, [0, 1, 2, 3], 4)
    assert [p["visible"] for p in out["plan"]] == UUIDS
    assert [p["nvml_index"] for p in out["plan"]] == [0, 1, 2, 3]
    assert [p["cpus"] for p in out["plan"]] == [(0, 1), (0, 1), (2, 3), (2, 3)]
    # two workers per NUMA node: each gets its own half of that node's CPUs
    assert [p["cpus"] for p in out["assigned"]] == [(0,), (1,), (2,), (3,)]
    assert out["note"] is None


def test_two_workers_on_gpus_of_one_numa_node_split_its_cpus(stub) -> None:
    out = stub(scenarios.gpu_plan, {**FOUR, **NUMA}, NO_ENV, [0, 1, 2, 3], 2)
    assert [p["uuid"] for p in out["assigned"]] == UUIDS[:2]  # both on node 0
    assert [p["cpus"] for p in out["assigned"]] == [(0,), (1,)]


def test_one_worker_per_numa_node_keeps_the_whole_node(stub) -> None:
    env = {"CUDA_VISIBLE_DEVICES": f"{UUIDS[0]},{UUIDS[2]}", "CUDA_DEVICE_ORDER": None}
    out = stub(scenarios.gpu_plan, {**FOUR, **NUMA}, env, [0, 1, 2, 3], 2)
    assert [p["cpus"] for p in out["assigned"]] == [(0, 1), (2, 3)]


def test_an_outer_cuda_visible_devices_of_uuids_is_respected(stub) -> None:
    # a unique prefix of a UUID, as CUDA accepts it, and a whole UUID
    env = {"CUDA_VISIBLE_DEVICES": f"{UUIDS[3][:8]},{UUIDS[1]}", "CUDA_DEVICE_ORDER": None}
    out = stub(scenarios.gpu_plan, {**FOUR, **NUMA}, env, [0, 1, 2, 3], 2)
    assert [p["uuid"] for p in out["assigned"]] == [UUIDS[3], UUIDS[1]]
    assert [p["cpus"] for p in out["assigned"]] == [(2, 3), (0, 1)]


def test_outer_indices_in_pci_order_become_uuids(stub) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "2,0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    out = stub(scenarios.gpu_plan, FOUR, env, [0, 1], 2)
    assert [p["visible"] for p in out["assigned"]] == [UUIDS[2], UUIDS[0]]


def test_outer_indices_in_cudas_own_order_are_passed_on_as_written(stub) -> None:
    # CUDA's default order is fastest first: NVML cannot say which GPU "1" is, CUDA can
    env = {"CUDA_VISIBLE_DEVICES": "1,3", "CUDA_DEVICE_ORDER": None}
    out = stub(scenarios.gpu_plan, {**FOUR, **NUMA}, env, [0, 1, 2, 3], 2)
    assert [p["visible"] for p in out["assigned"]] == ["1", "3"]
    assert all(p["cpus"] == () and "passed on as written" in p["note"] for p in out["assigned"])
    assert "one model" in out["note"]  # the GPUs have one name: which one does not change a row


def test_an_ambiguous_uuid_prefix_is_passed_on_as_written(stub) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "GPU-", "CUDA_DEVICE_ORDER": None}
    (only,) = stub(scenarios.gpu_plan, FOUR, env, [0, 1], 1)["assigned"]
    assert only["visible"] == "GPU-" and only["uuid"] is None


def test_a_gpu_without_affinity_information_is_not_pinned_and_says_why(stub) -> None:
    out = stub(scenarios.gpu_plan, {**FOUR, "ret.affinity": 3}, NO_ENV, [0, 1], 1)
    (only,) = out["assigned"]
    assert only["cpus"] == () and only["note"].startswith("CPUs not pinned: ")


def test_assign_never_gives_an_empty_share() -> None:
    plan = GpuPlan([Placement(f"GPU-{i}", i, f"GPU-{i}", "X", (0,)) for i in range(2)])
    out = assign(plan, 2)
    assert out[0].cpus == () and out[1].cpus == ()  # one CPU, two workers: neither pinned
    assert all("fewer CPUs" in (p.note or "") for p in out)
