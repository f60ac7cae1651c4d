"""pytest-xdist: how many workers ``-n auto`` starts, each worker's GPU or cores, one model's
cases on one worker, the controller's run id handed to every worker, and a worker that dies.

Placement. The controller plans once (harness.measure.gpus): on a GPU box one GPU per worker,
named by UUID through NVML (never by CUDA, which the controller and the workers leave alone),
within the outer ``CUDA_VISIBLE_DEVICES``, with the CPUs of the GPU's NUMA node (split between
workers whose GPUs share one); on a CPU, equal shares of this process's CPUs. The plan has one
*slot* per worker. Each worker that starts gets a free slot (``pytest_configure_node``) and
sets ``CUDA_VISIBLE_DEVICES`` to its GPU before anything in it initialises CUDA (its isolation
children inherit it), then pins its CPUs; it never creates a CUDA context itself, and sees its
GPU as ``cuda:0``. A worker that dies frees its slot (``pytest_testnodedown``), so the
replacement xdist starts (``gw2`` after ``gw0`` died) takes the dead one's GPU and cores.

A dead worker's case. Before each case a worker notes the case it runs in its part directory
(``<worker>.inflight.json``); when a worker dies during a case, the controller writes that case
as a ``crashed`` row into the run (``pytest_handlecrashitem``), and the sweep goes on.

The hook functions are re-exported by harness.plugin.hooks (the plugin's entry point), so pytest
registers them with the plugin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import InvalidInputError
from harness.plugin.state import STATE, State
from harness.run.grid import parse_threads
from harness.run.options import max_threads

INFLIGHT = "{worker}.inflight.json"


def cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cuda_works() -> bool:
    from harness.measure.devices import cuda_unavailable_reason

    return cuda_unavailable_reason() is None


def gpu_plan() -> Any:
    """The GPUs this process may use (harness.measure.gpus.GpuPlan), named through NVML; where
    NVML cannot list them but CUDA works, the CUDA indices passed on as written."""
    from harness.measure import gpus
    from harness.measure.power.nvml import NvmlUnavailable

    try:
        return gpus.plan_gpus(cpus=cpus())
    except NvmlUnavailable as err:
        import torch

        why = f"GPUs placed by CUDA index, CPUs not pinned: NVML: {err.reason}"
        places = [gpus.Placement(str(i), note=why) for i in range(torch.cuda.device_count())]
        return gpus.GpuPlan(places, why)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker per visible GPU on a GPU box, else one per CPU (one thread each,
    or the cores divided by --cnn-threads)."""
    device = str(config.getoption("cnn_device") or config.getini("cnn_device"))
    if device != "cpu" and _cuda_works():
        return max(1, len(gpu_plan().placements))
    threads = parse_threads(config.getoption("cnn_threads") or None, max_threads()) or (1,)
    return max(1, len(cpus()) // max(threads))


def configure_controller(config: pytest.Config, state: State) -> None:
    """The controller: as many workers as GPUs or cores allow, a slot for each, one run id."""
    from harness.measure import gpus
    from harness.results.store import check_writable, new_run_id

    n = int(config.getoption("numprocesses"))
    if state.device.startswith("cuda"):
        plan = gpu_plan()
        visible = len(plan.placements)
        if n > visible:
            raise pytest.UsageError(
                f"-n {n} asks for more workers than the {visible} visible GPU(s): each worker "
                "needs a GPU of its own (timing and the board's energy counter are per GPU); "
                f"use -n {visible} or -n auto"
            )
        state.placements = gpus.assign(plan, n)
    else:
        mine = cpus()
        if n > len(mine):
            raise pytest.UsageError(
                f"-n {n} asks for more workers than the {len(mine)} CPU(s) this process may use: "
                "each worker is pinned to cores of its own; use -n auto or fewer workers"
            )
        most = max(state.grid.threads or (1,))
        if most > len(mine) // n:  # threads that share a core time each other's waits
            raise pytest.UsageError(
                f"-n {n} with --cnn-threads={most}: each worker is pinned to "
                f"{len(mine) // n} of the {len(mine)} CPU(s) this process may use, so "
                f"{most} threads would share them; pass --cnn-threads of at most "
                f"{len(mine) // n}, or fewer workers"
            )
        state.placements = [gpus.Placement("", cpus=gpus.split_cpus(mine, n, i)) for i in range(n)]
    state.free_slots = list(range(n))
    state.workers = n
    state.run_id = new_run_id()
    if state.results_dir is not None:
        try:
            check_writable(state.results_dir)
        except InvalidInputError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist (controller side), for every worker it starts, a replacement included: the run,
    and a free slot (the lowest: a replacement gets the dead worker's)."""
    state = node.config.stash[STATE]
    node.workerinput["cnnbench_run_id"] = state.run_id
    node.workerinput["cnnbench_started"] = state.started
    if not state.placements:
        return
    slot = state.free_slots.pop(0) if state.free_slots else len(state.slot_of)
    slot %= len(state.placements)
    state.slot_of[node.gateway.id] = slot
    node.workerinput["cnnbench_slot"] = slot
    node.workerinput["cnnbench_placement"] = dataclasses.asdict(state.placements[slot])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist (controller side): a worker ended (done or dead); its slot is free again."""
    state = node.config.stash.get(STATE, None)
    if state is None:
        return
    if error is not None:
        state.node_errors[str(node.gateway.id)] = str(error)
    slot = state.slot_of.pop(node.gateway.id, None)
    if slot is not None and slot not in state.free_slots:
        state.free_slots.append(slot)
        state.free_slots.sort()


def place_worker(config: pytest.Config, state: State) -> None:
    """A worker, before anything in it touches CUDA: its GPU (``CUDA_VISIBLE_DEVICES``, which
    its isolation children inherit) and its CPUs, from the controller's slot."""
    from harness.measure import gpus

    info = config.workerinput  # type: ignore[attr-defined]
    state.worker = str(info["workerid"])
    state.workers = int(info["workercount"])
    state.run_id = info.get("cnnbench_run_id")
    state.started = float(info.get("cnnbench_started", state.started))
    raw = info.get("cnnbench_placement")
    if raw is None:
        return
    placement = gpus.Placement(**{**raw, "cpus": tuple(raw.get("cpus") or ())})
    state.placement = placement
    if placement.visible:
        os.environ["CUDA_VISIBLE_DEVICES"] = placement.visible
    if placement.cpus:  # never an empty set: an unpinned worker keeps the CPUs it has
        os.sched_setaffinity(0, placement.cpus)


def configure_worker(config: pytest.Config, state: State) -> None:
    """A worker after its device was resolved (on its own GPU, ``cuda:0``): on a CPU, its
    cases run at its cores' thread count, which their case key records (unless
    --cnn-threads says otherwise)."""
    placement = getattr(state, "placement", None)
    if state.device.startswith("cuda") or placement is None or not placement.cpus:
        return
    if state.grid.threads is None and "threads" not in state.overrides:
        state.grid = dataclasses.replace(state.grid, threads=(len(placement.cpus),))
        state.options = None  # resolved again with the worker's threads
        state.resolve()


# -- one model per worker ----------------------------------------------------------------------

# A case's pytest id starts with its model, then the input shape and batch: "resnet50-3x224x224-b8-"
_CASE_MODEL = re.compile(r"\[(?P<model>.+?)-\d+(?:x\d+)+-b\d+-[^\]]*\]$")


def model_of(nodeid: str) -> str | None:
    """The model in a case's test id (None for any other test)."""
    match = _CASE_MODEL.search(nodeid)
    return match["model"] if match else None


def groups_of(nodeids: list[str], block_cases: int) -> dict[str, int]:
    """The model groups of a collection (harness.run.schedule.model_groups over the cases'
    models in order): the controller's scheduler and every worker compute the same."""
    from harness.run.schedule import model_groups

    models = [m for n in nodeids if (m := model_of(n)) is not None]
    return model_groups(models, block_cases)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """One group of models on one worker: a model's cases stay together (the out-of-memory
    memo and model reuse stay valid) and so do the models a worker interleaves in one block
    (consecutive models up to a block's cases: harness.run.schedule.model_groups).

    pytest-xdist's ``loadgroup`` cannot do it under pytest 9 (it renames ``item._nodeid``,
    which pytest 9 no longer reads), so the harness groups by the model in the case's id with
    xdist's own scope scheduler; any other test is a group of its own.
    """
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    from harness.plugin.settings import block_cases

    class ModelScheduling(LoadScopeScheduling):
        _groups: dict[str, int] | None = None

        def _split_scope(self, nodeid: str) -> str:
            model = model_of(nodeid)
            if model is None:
                return nodeid
            if self._groups is None:
                self._groups = groups_of(list(self.collection or ()), block_cases(config))
            return f"cnnbench-group:{self._groups.get(model, model)}"

        def remove_node(self, node: Any) -> str | None:
            """A worker left; if it died during a case, that case is done (its row says
            ``crashed``) and only its model's other pending cases go back to the queue.
            (xdist's scope scheduler would queue the case that killed the worker again, to kill
            the next one, and queue its finished units too, which then wait forever.)"""
            workload = self.assigned_work.pop(node)
            crashed = next(
                (nodeid for unit in workload.values() for nodeid, done in unit.items()
                 if not done),
                None,
            )  # fmt: skip
            if crashed is None:
                return None
            for scope, unit in workload.items():
                if crashed in unit:
                    unit[crashed] = True
                if not all(unit.values()):
                    self.workqueue[scope] = unit
            for other in self.assigned_work:
                self._reschedule(other)
            return crashed

    return ModelScheduling(config, log)


# -- a worker that dies during a case ----------------------------------------------------------


def _inflight_path(state: State, worker: str) -> Path | None:
    if state.results_dir is None or state.run_id is None:
        return None
    from harness.results.parts import parts_dir

    return parts_dir(state.results_dir, state.run_id) / INFLIGHT.format(worker=worker)


@contextlib.contextmanager
def _inflight(state: State, case: Any, test_name: str) -> Iterator[None]:
    """While a worker runs ``case``: a note of it in the run's part directory, for the
    controller to write as a ``crashed`` row should this worker die."""
    path = _inflight_path(state, state.worker)
    if path is not None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            note = {"case": dataclasses.asdict(case), "test_name": test_name}
            path.write_text(json.dumps(note))
    try:
        yield
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Iterator[None]:
    """A worker notes the case it is about to run (see ``_inflight``)."""
    from harness.core.spec import Case

    state = item.config.stash.get(STATE, None)
    case = getattr(getattr(item, "callspec", None), "params", {}).get("cnn_case")
    if state is None or state.role != "worker" or not isinstance(case, Case):
        yield
        return
    with _inflight(state, case, item.nodeid.split("[")[0]):
        yield


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: Any, sched: Any) -> None:
    """xdist (controller side): a worker died while running ``crashitem``; the case it noted
    becomes a ``crashed`` row of the run (the sweep goes on with a replacement worker)."""
    node = getattr(report, "node", None)
    state = node.config.stash.get(STATE, None) if node is not None else None
    if state is None:
        return
    worker = str(node.gateway.id)
    path = _inflight_path(state, worker)
    if path is None or not path.exists():
        return
    try:
        note = json.loads(path.read_text())
        path.unlink()
    except (OSError, ValueError):
        return
    _write_crashed_row(state, worker, note, state.node_errors.get(worker))


def _write_crashed_row(state: State, worker: str, note: dict, error: str | None) -> None:
    """The dead worker's case as a ``crashed`` row, written into the run by the controller."""
    from datetime import datetime, timezone

    from harness.core.spec import Case
    from harness.measure.env import collect_environment
    from harness.results.store import ResultWriter
    from harness.run.outcome import base_row
    from harness.run.sweep import RUN_FACT_COLUMNS

    case = Case(**note["case"])
    host = collect_environment("cpu")
    row = base_row(case, {k: host.get(k) for k in RUN_FACT_COLUMNS})
    why = f"the xdist worker {worker} died while running the case"
    row.update(
        status="crashed",
        error=f"{why} ({error})" if error else why,
        isolation=state.isolate,
        worker=worker,
        test_name=note.get("test_name"),
        timestamp_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    with contextlib.suppress(OSError):
        writer = ResultWriter(
            state.results_dir, state.run_id, name=f"{worker}-crashed", join=True, merge=False
        )
        writer.add_case(row)
        writer.finish()  # merge=False: closes its streams; the controller merges the run
