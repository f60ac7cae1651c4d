"""Synchronised step timing: first call apart, uncounted warm-up, calibrated rounds, raw samples.

Every duration is in seconds, taken with ``time.perf_counter``. On CUDA each timed step ends in
``torch.cuda.synchronize(device)`` (and the device is synchronised once before the first timed
round), so a step that only *launches* kernels is timed until they have finished. On the CPU the
step is timed as given, with nothing wrapped around it, so the per-round overhead is one
``perf_counter`` call and a list store (well under a microsecond).

The statistics are derived from the raw samples, which are kept (``latency_s_samples``);
percentiles use numpy's ``"linear"`` method (Hyndman & Fan type 7, numpy's default), and a p99
from fewer than 100 samples is flagged ``p99_reliable = False``.

Rounds continue until the median is known well enough (``ci_target``) or a time cap is reached
(see ``measure_latency``). This module knows nothing of pytest: the plugin hands the samples to
pytest-benchmark afterwards, so its statistics and files hold exactly these samples.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.core.errors import InvalidInputError
from harness.core.settings import check_all
from harness.core.stats import MIN_SAMPLES_FOR_CI, half_width_rel, median_ci, summarize

Step = Callable[[], object]


# --- devices and threads ---------------------------------------------------------------------


def as_device(device: torch.device | str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidInputError(
            f"{device!r} is not a torch device: use 'cpu', 'cuda' or 'cuda:N'"
        ) from e


def _cuda_sync(device: torch.device) -> Callable[[], None]:
    """``torch.cuda.synchronize`` bound to ``device``; a typed error where CUDA is unusable."""
    if not torch.cuda.is_available():
        raise InvalidInputError(
            f"device {str(device)!r} asked for, but CUDA is not available here "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}): "
            "run on device 'cpu', or install a CUDA build of torch and the NVIDIA driver"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise InvalidInputError(
            f"device {str(device)!r} asked for, but only {count} CUDA device(s) are visible: "
            f"use an index below {count} (or check CUDA_VISIBLE_DEVICES)"
        )

    def sync() -> None:
        torch.cuda.synchronize(device)

    return sync


def _noop() -> None:
    return None


def cuda_sync_fn(device: torch.device | str) -> Callable[[], None]:
    """A callable that waits for all work queued on ``device``: a no-op on CPU.

    Raises InvalidInputError for a CUDA device when CUDA is not available (or the index does not
    exist), and for device types the harness does not time (anything but cpu, cuda, mps).
    """
    dev = as_device(device)
    if dev.type == "cpu":
        return _noop
    if dev.type == "cuda":
        return _cuda_sync(dev)
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise InvalidInputError("device 'mps' asked for, but MPS is not available here")
        return torch.mps.synchronize
    raise InvalidInputError(
        f"device type {dev.type!r} is not supported for timing: use 'cpu', 'cuda[:N]' or 'mps'"
    )


def timing_method(device: torch.device | str) -> str:
    """How rounds on ``device`` are timed, as recorded in the ``timing_method`` column."""
    dev = as_device(device)
    return "perf_counter" if dev.type == "cpu" else f"perf_counter+{dev.type}.synchronize"


def cudnn_benchmark_state() -> bool | None:
    """``torch.backends.cudnn.benchmark`` where cuDNN is usable, else None (nothing to record)."""
    if not (torch.cuda.is_available() and torch.backends.cudnn.is_available()):
        return None
    return bool(torch.backends.cudnn.benchmark)


@contextmanager
def fixed_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous count after.

    ``n=None`` leaves the count alone. Yields the intra-op thread count in force (the
    ``cpu_threads`` column).
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidInputError(f"thread count must be a positive integer or None; got {n!r}")
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


# --- timing ---------------------------------------------------------------------------------

STOP_REASONS = ("target", "time_cap", "max_rounds", "min_rounds")
# After the planned minimum, each further batch adds this share of the rounds so far, so the
# interval is checked O(log n) times however many rounds a fast step needs.
BATCH_GROWTH = 0.25


def run_rounds(step: Step, rounds: int) -> list[float]:
    """Call ``step`` ``rounds`` times; one ``perf_counter`` duration (s) per call, nothing else
    inside the timed region."""
    timer = time.perf_counter
    out = [0.0] * rounds
    for i in range(rounds):
        t0 = timer()
        step()
        out[i] = timer() - t0
    return out


def synced(step: Step, sync: Callable[[], None]) -> Step:
    """The step followed by ``sync``; the step itself, unwrapped, when there is nothing to wait
    for (CPU), so no extra Python call is timed."""
    if sync is _noop:
        return step

    def synced_step() -> object:
        out = step()
        sync()
        return out

    return synced_step


def plan_rounds(
    per_call_s: float,
    *,
    min_rounds: int,
    min_time_s: float,
    max_rounds: int | None,
    max_time_s: float | None,
) -> int:
    """Rounds to measure at least: ``max(min_rounds, ceil(min_time_s / per_call_s))``, then
    capped by ``max_rounds`` and by ``floor(max_time_s / per_call_s)``; never fewer than one.

    ``max_time_s`` bounds slow cases and may cut below ``min_rounds`` (the result then says how
    few rounds it has, and p99 is flagged).
    """
    per_call_s = max(per_call_s, 1e-9)
    rounds = max(min_rounds, math.ceil(min_time_s / per_call_s))
    if max_rounds is not None:
        rounds = min(rounds, max_rounds)
    if max_time_s is not None:
        rounds = min(rounds, math.floor(max_time_s / per_call_s))
    return max(1, rounds)


def median_interval(samples: np.ndarray) -> tuple[float, float]:
    """The 95% distribution-free confidence interval of the median (order statistics)."""
    return median_ci(samples, 0.95)


def ci_reached(samples: np.ndarray, target: float) -> bool:
    """Whether the median's 95% interval is within +-``target`` (a share) of the median (never
    with fewer than ``MIN_SAMPLES_FOR_CI`` samples: there is no 95% interval then)."""
    if samples.size < MIN_SAMPLES_FOR_CI:  # no 95% interval exists yet
        return False
    lo, hi = median_interval(samples)
    half = half_width_rel(lo, hi, float(np.median(samples)))
    return half is not None and half <= target


@dataclass
class TimingResult:
    """What one timed measurement produced: every sample kept, statistics derived on demand.

    ``samples_s``: one duration per measured round, in order (s). ``first_call_s``: the very
    first call, cold, timed on its own (s). ``warmup_rounds``: uncounted calls between the two.
    ``method``: how rounds were timed. ``calibrated_rounds``: the minimum the plan asked for.
    ``stop_reason``: why the rounds stopped (``STOP_REASONS``). ``ci_target``: the half-width
    of the median's interval aimed at, as a share of the median (None: no target).
    ``cudnn_benchmark``: ``torch.backends.cudnn.benchmark`` during the rounds (None off CUDA).
    """

    samples_s: np.ndarray
    first_call_s: float
    warmup_rounds: int
    method: str
    calibrated_rounds: int
    stop_reason: str = "min_rounds"
    ci_target: float | None = None
    cudnn_benchmark: bool | None = field(default=None)

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return summarize(self.samples_s)

    def to_columns(self) -> dict[str, object]:
        """Result-schema columns: the statistics, the median's interval, why the rounds stopped,
        the first call, warm-up, method and the raw samples."""
        lo, hi = median_interval(self.samples_s)
        return {
            **self.summary(),
            "latency_s_median_ci_low": lo,
            "latency_s_median_ci_high": hi,
            "ci_target": self.ci_target,
            "stop_reason": self.stop_reason,
            "latency_s_first": float(self.first_call_s),
            "warmup_rounds": int(self.warmup_rounds),
            "timing_method": self.method,
            "latency_s_samples": [float(s) for s in self.samples_s],
            "cudnn_benchmark": self.cudnn_benchmark,
        }


def measure_latency(
    step: Step,
    *,
    device: torch.device | str,
    warmup_rounds: int = 3,
    warmup_time_s: float = 0.0,
    min_rounds: int = 5,
    min_time_s: float = 0.5,
    max_rounds: int | None = None,
    max_time_s: float | None = None,
    ci_target: float | None = None,
    window: Callable[[], AbstractContextManager[object]] | None = None,
) -> TimingResult:
    """Time ``step`` (a callable doing one forward, or one training step) on ``device``.

    1. The first call is timed on its own (synchronised before and after): ``first_call_s``.
    2. Warm-up: at least ``warmup_rounds`` calls and at least ``warmup_time_s`` seconds, not
       counted; the fastest of them is the per-call estimate (the first call's when there is no
       warm-up), so one slow warm-up call cannot leave the rounds short of ``min_time_s``.
    3. The planned minimum: ``plan_rounds`` (at least ``min_rounds`` and ``min_time_s``, capped
       by ``max_rounds`` / ``max_time_s``).
    4. Stability: with a ``ci_target``, rounds go on in growing batches until the 95%
       distribution-free interval of the median (order statistics) is within +-``ci_target``
       of the median (``stop_reason = "target"``), or until one more batch would pass
       ``max_time_s`` (``"time_cap"``) or ``max_rounds`` (``"max_rounds"``). Without a target
       the planned minimum is all (``"min_rounds"``; ``"time_cap"`` when the cap cut it).
    Every round is timed alone: ``perf_counter`` around the bare step on the CPU, around the
    step and a device synchronisation elsewhere (the device is synchronised once before the
    first round). The garbage collector is collected before and paused during the rounds (as
    ``timeit`` does), so a collection of unrelated objects is not billed to one step.
    ``window`` (a context manager factory: the power monitor, the noise probe) is entered right
    before the first measured round and left right after the last.

    Inputs must already be on the device and the model in the wanted mode (the caller's job).
    """
    if not callable(step):
        raise InvalidInputError(f"step must be a callable taking no arguments; got {step!r}")
    check_all(
        warmup_rounds=warmup_rounds,
        warmup_time_s=warmup_time_s,
        min_rounds=min_rounds,
        min_time_s=min_time_s,
        max_rounds=max_rounds,
        max_time_s=max_time_s,
        ci_target=ci_target,
    )
    if max_rounds is not None and max_rounds < min_rounds:
        raise InvalidInputError(
            f"max_rounds ({max_rounds}) is below min_rounds ({min_rounds}): raise max_rounds or "
            "lower min_rounds"
        )
    target = ci_target or None
    sync = cuda_sync_fn(device)
    timed_step = synced(step, sync)
    timer = time.perf_counter

    sync()
    t0 = timer()
    step()
    sync()
    first_call_s = timer() - t0

    warm: list[float] = []
    warm_start = timer()
    while len(warm) < warmup_rounds or timer() - warm_start < warmup_time_s:
        t0 = timer()
        timed_step()
        warm.append(timer() - t0)
    estimate = min(warm) if warm else first_call_s

    planned = plan_rounds(
        estimate,
        min_rounds=min_rounds,
        min_time_s=min_time_s,
        max_rounds=max_rounds,
        max_time_s=max_time_s,
    )
    cut = planned < min_rounds or (
        max_time_s is not None and planned * max(estimate, 1e-9) > max_time_s * 0.999
    )
    cudnn_state = cudnn_benchmark_state() if as_device(device).type == "cuda" else None

    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    samples: list[float] = []
    try:
        with window() if window is not None else nullcontext():
            sync()
            started = timer()
            samples += run_rounds(timed_step, planned)
            reason = "time_cap" if cut else "min_rounds"
            while target is not None:
                arr = np.asarray(samples)
                if ci_reached(arr, target):
                    reason = "target"
                    break
                batch = max(1, math.ceil(len(samples) * BATCH_GROWTH))
                per_call = float(np.median(arr))
                if max_rounds is not None:
                    if len(samples) >= max_rounds:
                        reason = "max_rounds"
                        break
                    batch = min(batch, max_rounds - len(samples))
                if max_time_s is not None:
                    left = max_time_s - (timer() - started)
                    batch = min(batch, math.floor(left / max(per_call, 1e-9)))
                    if batch < 1:
                        reason = "time_cap"
                        break
                samples += run_rounds(timed_step, batch)
    finally:
        if gc_was_enabled:
            gc.enable()

    arr = np.asarray(samples, dtype=np.float64)
    summarize(arr)  # validates: finite, positive
    return TimingResult(
        samples_s=arr,
        first_call_s=first_call_s,
        warmup_rounds=len(warm),
        method=timing_method(device),
        calibrated_rounds=planned,
        stop_reason=reason,
        ci_target=target,
        cudnn_benchmark=cudnn_state,
    )
