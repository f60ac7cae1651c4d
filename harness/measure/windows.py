"""Timing a case in windows: calibrate once (first call, warm-up, the per-call estimate), plan
the windows, time each window on its own. harness.run.schedule decides when each window runs
(interleaved with other cases); harness.core.windows judges them together.

Every duration is in seconds on ``clock`` (``time.perf_counter``; a test injects a simulated
clock). On CUDA each timed call ends in a synchronise (harness.measure.timing).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from harness.core.errors import InvalidInputError
from harness.core.settings import check_all
from harness.core.stats import summarize
from harness.core.windows import window_plan  # noqa: F401 (the plan, with the windows)
from harness.measure.timing import (
    Step,
    as_device,
    cuda_sync_fn,
    cudnn_benchmark_state,
    synced,
    timing_method,
)

Clock = Callable[[], float]


@dataclass
class Calibration:
    """What happened before a case's windows: the first call (cold, timed alone), the uncounted
    warm-up calls, and the per-call estimate the windows are planned from (the fastest warm-up
    call: one slow call must not shorten the windows)."""

    first_call_s: float
    warmup_rounds: int
    estimate_s: float
    method: str
    cudnn_benchmark: bool | None = None


def calibrate(
    step: Step,
    *,
    device: torch.device | str,
    warmup_rounds: int = 3,
    warmup_time_s: float = 0.0,
    clock: Clock = time.perf_counter,
) -> Calibration:
    """The first call, timed on its own (synchronised before and after), then at least
    ``warmup_rounds`` calls and ``warmup_time_s`` seconds of warm-up, not counted."""
    if not callable(step):
        raise InvalidInputError(f"step must be a callable taking no arguments; got {step!r}")
    check_all(warmup_rounds=warmup_rounds, warmup_time_s=warmup_time_s)
    sync = cuda_sync_fn(device)
    timed_step = synced(step, sync)
    sync()
    t0 = clock()
    step()
    sync()
    first = clock() - t0
    warm: list[float] = []
    warm_start = clock()
    while len(warm) < warmup_rounds or clock() - warm_start < warmup_time_s:
        t0 = clock()
        timed_step()
        warm.append(clock() - t0)
    dev = as_device(device)
    return Calibration(
        first_call_s=first,
        warmup_rounds=len(warm),
        estimate_s=min(warm) if warm else first,
        method=timing_method(dev),
        cudnn_benchmark=cudnn_benchmark_state() if dev.type == "cuda" else None,
    )


def time_window(
    step: Step,
    rounds: int,
    *,
    device: torch.device | str,
    warmup: int = 0,
    clock: Clock = time.perf_counter,
    around: Callable[[], AbstractContextManager[object]] | None = None,
) -> tuple[float, np.ndarray]:
    """One window: ``warmup`` uncounted calls (the caches another case's window left cold),
    then ``rounds`` timed calls; ``around`` (the noise probe) is entered right before the
    first timed call and left right after the last. The garbage collector is paused over the
    window (it was collected once when the case was opened). -> (start on ``clock``, samples)."""
    if rounds < 1:
        raise InvalidInputError(f"a window needs at least one round, got {rounds}")
    sync = cuda_sync_fn(device)
    timed_step = synced(step, sync)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    out = [0.0] * rounds
    try:
        for _ in range(warmup):
            timed_step()
        with around() if around is not None else nullcontext():
            sync()
            started = clock()
            for i in range(rounds):
                t0 = clock()
                timed_step()
                out[i] = clock() - t0
    finally:
        if gc_was_enabled:
            gc.enable()
    arr = np.asarray(out, dtype=np.float64)
    summarize(arr)  # validates: finite, positive
    return started, arr
