"""pytest-xdist: how many workers ``-n auto`` starts, each worker's device or cores, one model's
cases on one worker, and the controller's run id handed to every worker.

The hook functions are re-exported by harness.plugin.hooks (the plugin's entry point), so pytest
registers them with the plugin.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from harness.core.errors import InvalidInputError
from harness.plugin.state import STATE, State
from harness.run.grid import parse_threads
from harness.run.options import max_threads


def cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def cuda_count() -> int:
    """Visible CUDA devices (imports torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker per visible GPU on a GPU box, else one per CPU (one thread each,
    or the cores divided by --cnn-threads)."""
    device = str(config.getoption("cnn_device") or config.getini("cnn_device"))
    if device != "cpu" and cuda_count():
        return cuda_count()
    threads = parse_threads(config.getoption("cnn_threads") or None, max_threads()) or (1,)
    return max(1, len(cpus()) // max(threads))


def configure_controller(config: pytest.Config, state: State) -> None:
    """The controller: as many workers as GPUs or cores allow, one run id for all."""
    from harness.results.store import check_writable, new_run_id

    n = int(config.getoption("numprocesses"))
    if state.device.startswith("cuda"):
        gpus = cuda_count()
        if n > gpus:
            raise pytest.UsageError(
                f"-n {n} asks for more workers than the {gpus} visible GPU(s): each worker needs "
                "a GPU of its own (timing and the board's energy counter are per GPU); use -n "
                f"{gpus} or -n auto"
            )
    else:
        mine = cpus()
        if n > len(mine):
            raise pytest.UsageError(
                f"-n {n} asks for more workers than the {len(mine)} CPU(s) this process may use: "
                "each worker is pinned to cores of its own; use -n auto or fewer workers"
            )
    state.workers = n
    state.run_id = new_run_id()
    if state.results_dir is not None:
        try:
            check_writable(state.results_dir)
        except InvalidInputError as exc:
            raise pytest.UsageError(str(exc)) from None


def configure_worker(config: pytest.Config, state: State) -> None:
    """A worker: the controller's run, its own GPU or its own cores (threads to match)."""
    info = config.workerinput  # type: ignore[attr-defined]
    state.worker = str(info["workerid"])
    state.workers = int(info["workercount"])
    state.run_id = info.get("cnnbench_run_id")
    state.started = float(info.get("cnnbench_started", state.started))
    index = int(state.worker.removeprefix("gw") or 0)
    if state.device.startswith("cuda"):
        import torch

        state.cuda_index = index
        torch.cuda.set_device(index)
    else:
        all_cpus = cpus()
        share = len(all_cpus) // state.workers
        mine = all_cpus[index * share : (index + 1) * share]
        os.sched_setaffinity(0, mine)
        if state.grid.threads is None and "threads" not in state.overrides:
            state.overrides["threads"] = len(mine)
            state.options = None  # resolved again with the worker's threads


# A case's pytest id starts with its model, then the input shape and batch: "resnet50-3x224x224-b8-"
_CASE_MODEL = re.compile(r"\[(?P<model>.+?)-\d+(?:x\d+)+-b\d+-[^\]]*\]$")


def model_of(nodeid: str) -> str | None:
    """The model in a case's test id (None for any other test)."""
    match = _CASE_MODEL.search(nodeid)
    return match["model"] if match else None


def groups_of(nodeids: list[str]) -> dict[str, int]:
    """The model groups of a collection (harness.run.schedule.model_groups over the cases'
    models in order): the controller's scheduler and every worker compute the same."""
    from harness.run.schedule import model_groups
    from harness.run.sweep import BLOCK_CASES

    models = [m for n in nodeids if (m := model_of(n)) is not None]
    return model_groups(models, BLOCK_CASES)


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

    class ModelScheduling(LoadScopeScheduling):
        _groups: dict[str, int] | None = None

        def _split_scope(self, nodeid: str) -> str:
            model = model_of(nodeid)
            if model is None:
                return nodeid
            if self._groups is None:
                self._groups = groups_of(list(self.collection or ()))
            return f"cnnbench-group:{self._groups.get(model, model)}"

    return ModelScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist (controller side): every worker writes into the controller's run."""
    state = node.config.stash[STATE]
    node.workerinput["cnnbench_run_id"] = state.run_id
    node.workerinput["cnnbench_started"] = state.started
