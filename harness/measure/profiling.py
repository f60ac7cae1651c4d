"""Steps run under torch.profiler, leaving nothing attached afterwards: the profile of
harness.measure.layer_times.

torch.profiler's CPU activity detaches when the profile stops. Its CUDA activity goes through
CUPTI, which Kineto (torch 2.13) leaves attached after the profile unless ``TEARDOWN_CUPTI=1``:
every later case in the same process then runs with CUPTI's callbacks, +10-20% on
launch-bound steps (pytorch#144455; Kineto made teardown the default only later, for CUDA
12.6+). The profile sets it for its own stop (``cupti_detached_after``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from harness.measure.timing import cuda_sync_fn

STEP_PREFIX = "cnnbench.step#"
# How layer_time_source begins for a profile through CUPTI.
CUPTI_SOURCE = "torch.profiler CUDA activity (CUPTI)"


def profiled_through_cupti(row: dict[str, Any]) -> bool:
    """Whether a case's row was profiled through CUPTI: a process that runs more cases after
    it is replaced (harness.run.isolation), whatever Kineto does with ``TEARDOWN_CUPTI``."""
    return str(row.get("layer_time_source") or "").startswith(CUPTI_SOURCE)


def quiet_kineto() -> None:
    """Kineto prints ``profiler_start`` / ``profiler_stop`` lines on stderr at every start; level
    6 silences them. Read once, when the profiler first starts; a user's own setting wins."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")


TEARDOWN_ENV = "TEARDOWN_CUPTI"


@contextlib.contextmanager
def cupti_detached_after(device: torch.device) -> Iterator[None]:
    """On a GPU, have Kineto tear CUPTI down when the profile stops (``TEARDOWN_CUPTI=1``, read
    when the profiler stops; torch 2.13 leaves CUPTI attached otherwise, and every later case in
    the process runs with its callbacks: +10-20% on launch-bound steps, pytorch#144455). Safe
    here: the harness profiles no CUDA graphs (the reason torch itself sets it to 0). The
    variable is as before afterwards."""
    if device.type != "cuda":
        yield
        return
    before = os.environ.get(TEARDOWN_ENV)
    os.environ[TEARDOWN_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TEARDOWN_ENV, None)
        else:
            os.environ[TEARDOWN_ENV] = before


def profile_steps(
    step: Callable[[], object],
    steps: int,
    device: torch.device,
    begin_step: Callable[..., None],
) -> tuple[list[Any], list[float]]:
    """Run ``steps`` profiled steps (the first also records the calls); returns the profiler's
    events and each step's wall time."""
    from torch._C._profiler import _RecordFunctionFast
    from torch.profiler import ProfilerActivity, profile

    quiet_kineto()
    sync = cuda_sync_fn(device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    walls: list[float] = []
    sync()
    with (
        cupti_detached_after(device),
        profile(activities=activities, record_shapes=False, with_stack=False) as prof,
    ):
        for k in range(steps):
            begin_step(record=k == 0)
            t0 = time.perf_counter()
            with _RecordFunctionFast(f"{STEP_PREFIX}{k}"):
                step()
                sync()
            walls.append(time.perf_counter() - t0)
    return list(prof.events()), walls
