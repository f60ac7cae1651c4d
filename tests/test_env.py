"""harness.measure.env: the environment record's columns, facts read from the system (not
invented), git state of a real temporary repository, and GPU facts matched to NVML by UUID."""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import harness
from harness.core.errors import InvalidInputError
from harness.core.schema import column_names
from harness.measure import env as env_mod
from harness.measure.env import (
    ENV_COLUMNS,
    RUN_FACTS,
    collect_environment,
    cpu_model,
    git_state,
    machine_info,
    ram_bytes,
)
from tests.nvml_stub import scenarios
from tests.nvml_stub.fixtures import spawn_pool, stub_dir, stub_lib

__all__ = ["stub_dir", "stub_lib"]  # fixtures
GPU_COLUMNS = ("gpu_uuid", "gpu_index", "gpu_pci_bus_id", "gpu_memory_bytes", "driver_version")


def test_cpu_record_has_exactly_the_schema_columns() -> None:
    env = collect_environment("cpu", threads=1)
    assert tuple(env) == ENV_COLUMNS
    assert set(ENV_COLUMNS) <= set(column_names("cases"))
    for col in GPU_COLUMNS:
        assert env[col] is None
    assert env["cudnn_benchmark"] is None
    assert env["device_name"] == env["cpu_model"] == cpu_model()
    assert env["cpu_cores"] == os.cpu_count()
    assert env["cpu_threads"] == 1
    assert env["torch_version"] == torch.__version__
    assert env["cuda_version"] == torch.version.cuda
    assert env["python_version"] == platform.python_version()
    assert env["harness_version"] == harness.__version__
    assert env["host"] == platform.node()
    assert env["command_line"] == shlex.join(sys.argv)


def test_threads_default_to_torch_current_count() -> None:
    assert collect_environment("cpu")["cpu_threads"] == torch.get_num_threads()


def test_cpu_model_from_proc_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    )
    assert cpu_model(info) == "Intel(R) Xeon(R) Platinum 8480+"


def test_cpu_model_without_a_model_line_is_not_invented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nCPU part\t: 0xd0c\n")
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_model(info) is None
    assert cpu_model(tmp_path / "missing") is None


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="needs /proc/meminfo")
def test_ram_matches_proc_meminfo() -> None:
    kib = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    assert ram_bytes() == kib * 1024


def test_ram_falls_back_to_meminfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sysconf(name: str) -> int:
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", no_sysconf)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384 kB\nMemFree:         1000 kB\n")
    assert ram_bytes(meminfo) == 16384 * 1024
    assert ram_bytes(tmp_path / "missing") is None


# --- git -------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "proj"
    r.mkdir()
    _git(r, "init", "-q", "-b", "main")
    (r / "suite.py").write_text("x = 1\n")
    _git(r, "add", "suite.py")
    _git(r, "commit", "-q", "-m", "first")
    return r


def test_git_state_of_a_clean_then_dirty_checkout(repo: Path) -> None:
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert git_state(repo) == (head, False)
    (repo / "suite.py").write_text("x = 2\n")
    assert git_state(repo) == (head, True)
    _git(repo, "checkout", "-q", "--", "suite.py")
    (repo / "new_suite.py").write_text("")  # untracked: may be what ran
    assert git_state(repo) == (head, True)


def test_git_state_reads_the_cwd_by_default(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / ".")
    commit = collect_environment("cpu")["git_commit"]
    assert commit == (repo / ".git" / "refs" / "heads" / "main").read_text().strip()


def test_git_state_outside_a_repo_or_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_state(lone) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert git_state(repo) == (None, None)


# --- GPU -------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_cuda_without_cuda_is_a_typed_error() -> None:
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        collect_environment("cuda")


def test_bad_device() -> None:
    with pytest.raises(InvalidInputError):
        collect_environment("gpu0")


# CUDA is faked (two devices, the current one 1), NVML is the stand-in library under the real
# nvidia-ml-py, in a spawned process: matching goes through harness.measure.power.nvml_match.
H100 = {"name": "NVIDIA H100 80GB HBM3", "total_memory": 85_045_231_616}
UUIDS = ["GPU-aaaa0000-0000-4000-8000-000000000000", "GPU-bbbb1111-1111-4111-8111-111111111111",
         "GPU-cccc2222-2222-4222-8222-222222222222"]  # fmt: skip
PCI = ["00000000:17:00.0", "00000000:65:00.0", "00000000:CA:00.0"]
THREE = {"devices": 3, **{f"dev{i}.uuid": u for i, u in enumerate(UUIDS)},
         **{f"dev{i}.pci": p for i, p in enumerate(PCI)}}  # fmt: skip
NO_CUDA_ENV = {"CUDA_VISIBLE_DEVICES": None, "CUDA_DEVICE_ORDER": None}


@pytest.fixture(scope="module")
def pool():
    with spawn_pool() as p:
        yield p


@pytest.fixture
def facts(pool, stub_lib: str, tmp_path: Path):
    def _facts(config: dict, props: dict, env: dict | None = None, lib: str | None = None) -> dict:
        path = tmp_path / "stub.conf"
        path.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        args = (lib or stub_lib, str(path), env or NO_CUDA_ENV, {**H100, **props})
        return pool.submit(scenarios.env_facts, *args).result(timeout=120)

    return _facts


def test_gpu_facts_matched_to_nvml_by_uuid_not_by_index(facts) -> None:
    # torch's bare UUID of cuda:1 is NVML's third GPU: its index 2, its bus, its driver
    out = facts(THREE, {"uuid": UUIDS[2].removeprefix("GPU-")})
    assert out == {
        "device_name": H100["name"],
        "gpu_uuid": UUIDS[2],
        "gpu_index": 2,
        "gpu_pci_bus_id": PCI[2],
        "gpu_memory_bytes": H100["total_memory"],
        "driver_version": "stub-1.0",
    }


def test_without_a_uuid_the_pci_bus_id_of_torch_matches(facts) -> None:
    out = facts(THREE, {"uuid": None, "pci_domain_id": 0, "pci_bus_id": 0x65, "pci_device_id": 0})
    assert (out["gpu_uuid"], out["gpu_index"]) == (UUIDS[1], 1)


def test_mig_uuid_is_written_with_nvmls_mig_prefix(facts) -> None:
    # In MIG mode CUDA (so torch) reports the instance's UUID; NVML names it MIG-<uuid>
    out = facts({**THREE, "dev0.mig": 1}, {"uuid": "dddd3333-3333-4333-8333-333333333333"})
    assert out["gpu_uuid"] == "MIG-dddd3333-3333-4333-8333-333333333333"
    assert out["gpu_index"] is None and out["driver_version"] == "stub-1.0"


def test_gpu_facts_without_nvml_are_torchs_not_guessed(facts) -> None:
    props = {"uuid": "eeee4444", "pci_domain_id": 0, "pci_bus_id": 0x65, "pci_device_id": 0}
    out = facts({"ret.init": 9}, props)  # the driver is not loaded
    assert out["gpu_uuid"] == "GPU-eeee4444"  # torch's, written as a GPU's
    assert out["gpu_pci_bus_id"] == "00000000:65:00.0"  # torch's
    assert out["gpu_index"] is None and out["driver_version"] is None


def test_proc_driver_version_parse(tmp_path: Path) -> None:
    f = tmp_path / "version"
    f.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )
    assert env_mod._proc_driver_version(f) == "535.104.05"
    f.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release\n")
    assert env_mod._proc_driver_version(f) == "570.86.15"
    assert env_mod._proc_driver_version(tmp_path / "missing") is None


# --- pytest-benchmark's machine_info ---------------------------------------------------------


def test_machine_info_holds_the_machine_facts_only() -> None:
    env = collect_environment("cpu", threads=1)
    info = machine_info(env)
    assert set(info) == set(ENV_COLUMNS) - RUN_FACTS
    assert {"git_commit", "command_line", "cpu_threads"} <= RUN_FACTS
    for k, v in info.items():
        assert v == env[k]
        assert v is None or isinstance(v, (str, int))
