"""The windows of a row: what a case's timing says once it was measured in several windows
spread over time, torch-free (the runner, the verdict, compare and claims read it).

A case is timed in windows (harness.run.schedule), interleaved with other cases, so a machine
that changes speed for seconds at a time (a VM's host, a GPU at its power cap) shows up as
windows that disagree, where one long window sat inside one state and looked tight. Kalibera
and Jones ("Rigorous benchmarking in reasonable time", ISMM 2013) call this the higher level
of a hierarchical experiment: its variance dominates, and only repetitions at that level
measure it. Every sample keeps its window (``latency_s_window_ids``).

The rule, stated once (``WINDOWS_RULE``):

* a window's value is the median of its samples;
* windows *agree* when their medians lie within ``AGREE_REL`` (5%) of the fastest window's;
* the row's central value (``latency_s_median``) is the median of the agreeing windows'
  medians: the fastest state the machine showed, confirmed by several windows at different
  times (noise on a benchmark only ever adds time: a slower window is the machine, not the
  step). Windows that do not agree are named in ``validity_reason`` and left out of it;
* a row can be valid only when at least ``needed(windows)`` windows agree (all but one in
  five: 4 of 5, 8 of 10) and at least ``MIN_WINDOWS`` were measured: a minority of slow
  windows is the machine's other state, a majority is no state at all;
* the interval is a hierarchical percentile bootstrap of that central value: windows
  resampled with replacement, then the samples within each (drawn exactly, in O(1) per
  window), the agreeing set chosen again in every resample.

A row without window ids (files before schema version 4) is one window: its central value is
its samples' median and its interval the bootstrap of that median.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two windows whose medians differ by more than this are two states of the machine. The
# reproducibility target is 5% (two valid runs of a case should not differ by more).
AGREE_REL = 0.05
# Fewer windows than this give no between-window check at all.
MIN_WINDOWS = 3
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95

WINDOWS_RULE = (
    f"the row's value is the median of the window medians within {AGREE_REL:.0%} of the "
    f"fastest window; valid needs at least {MIN_WINDOWS} windows and all but one in five of "
    f"them within {AGREE_REL:.0%} of the fastest (4 of 5); its 95% interval resamples "
    "windows, then samples within them"
)


def needed(windows: int) -> int:
    """Windows that must agree with the fastest for a valid row: all but one in five."""
    return max(MIN_WINDOWS, windows - windows // 5)


@dataclass(frozen=True)
class Windows:
    """A row's samples grouped by window: ``groups[i]`` (sorted) has median ``medians[i]``;
    ``ids[i]`` is its window id. Windows are in the order of their ids."""

    ids: np.ndarray
    groups: tuple[np.ndarray, ...]
    medians: np.ndarray

    @property
    def count(self) -> int:
        return len(self.groups)

    def agreeing(self) -> np.ndarray:
        """Mask of the windows within ``AGREE_REL`` of the fastest window."""
        return agreeing_mask(self.medians)

    def central(self) -> float:
        """The row's value: the median of the agreeing windows' medians."""
        return float(np.median(self.medians[self.agreeing()]))

    def spread(self) -> float:
        """Slowest window median / fastest (1.0 for one window)."""
        return float(self.medians.max() / self.medians.min())

    def agreeing_samples(self) -> np.ndarray:
        mask = self.agreeing()
        return np.concatenate([g for g, keep in zip(self.groups, mask, strict=True) if keep])


def split(samples: Sequence[float] | np.ndarray, window_ids: Sequence[int] | None) -> Windows:
    """Group ``samples`` by ``window_ids`` (None or empty: one window)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("a row's windows need at least one sample")
    if window_ids is None or len(window_ids) == 0:
        ids = np.zeros(x.size, dtype=np.int64)
    else:
        ids = np.asarray(window_ids, dtype=np.int64)
        if ids.shape != x.shape:
            raise ValueError(
                f"{x.size} samples but {ids.size} window ids: each sample needs its window"
            )
    order = np.argsort(ids, kind="stable")
    ids_sorted, x_sorted = ids[order], x[order]
    unique, starts = np.unique(ids_sorted, return_index=True)
    bounds = [*starts[1:], x.size]
    groups = tuple(np.sort(x_sorted[a:b]) for a, b in zip(starts, bounds, strict=True))
    medians = np.array([float(np.median(g)) for g in groups])
    return Windows(unique, groups, medians)


def agreeing_mask(medians: np.ndarray) -> np.ndarray:
    m = np.asarray(medians, dtype=np.float64)
    return m <= m.min() * (1.0 + AGREE_REL)


# --- the plan ------------------------------------------------------------------------------


def window_plan(
    estimate_s: float,
    *,
    windows: int,
    min_rounds: int,
    min_time_s: float,
    max_time_s: float | None,
) -> tuple[int, int]:
    """``(windows, rounds per window)`` for a step of about ``estimate_s`` seconds.

    The rounds wanted: at least ``min_rounds``, ``min_time_s`` seconds and one per window, no
    more than ``max_time_s`` allows (at least one). Spread over ``windows`` windows of equal
    rounds; a step so slow that a window holds one round gets as many one-round windows as the
    rounds wanted (more windows, the better the between-window check); fewer rounds than
    windows give fewer windows (the cap left no more)."""
    est = max(estimate_s, 1e-9)
    wanted = max(min_rounds, math.ceil(min_time_s / est), windows)
    cap = None if max_time_s is None else max(1, math.floor(max_time_s / est))
    if cap is not None:
        wanted = min(wanted, cap)
    if wanted < 2 * windows:  # one round a window
        return wanted, 1
    per_window = math.ceil(wanted / windows)
    if cap is not None:
        per_window = min(per_window, max(1, cap // windows))
    return windows, per_window


# --- the bootstrap -------------------------------------------------------------------------


def bootstrap_medians(
    samples: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Medians of ``n_resamples`` bootstrap resamples of ``samples``, drawn exactly, in O(B).

    The k-th smallest of n indices drawn uniformly from 0..n-1 is ``floor(n * U_(k))`` with
    ``U_(k) ~ Beta(k, n + 1 - k)``, the k-th order statistic of n uniforms; given it, the next
    one is ``U_(k) + (1 - U_(k)) * Beta(1, n - k)``. So the resampled median is drawn without
    building the resamples, the same distribution as resampling (tests check it).
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    if n == 1:
        return np.full(n_resamples, x[0])
    k = (n + 1) // 2
    u = rng.beta(k, n + 1 - k, size=n_resamples)
    lo = np.minimum((u * n).astype(np.int64), n - 1)
    if n % 2:
        return x[lo]
    # Beta(1, m) by inversion of its CDF 1 - (1 - x)^m: 1 - V^(1/m), V uniform (same law,
    # a third of the time of a beta draw)
    u2 = u + (1.0 - u) * (1.0 - rng.random(n_resamples) ** (1.0 / (n - k)))
    hi = np.minimum((u2 * n).astype(np.int64), n - 1)
    return (x[lo] + x[hi]) / 2.0


def _agreeing_median_rows(m: np.ndarray) -> np.ndarray:
    """Per row of ``m`` (resamples x windows): the median of the values within ``AGREE_REL``
    of the row's smallest."""
    s = np.sort(m, axis=1)
    count = (s <= s[:, :1] * (1.0 + AGREE_REL)).sum(axis=1)
    rows = np.arange(s.shape[0])
    lo = s[rows, (count - 1) // 2]
    hi = s[rows, count // 2]
    return (lo + hi) / 2.0


def central_draws(windows: Windows, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` hierarchical bootstrap draws of the row's central value: the windows
    resampled with replacement, each drawn window's samples resampled (its median drawn
    exactly), then the median of the drawn windows within ``AGREE_REL`` of the fastest."""
    w = windows.count
    if w == 1:
        return bootstrap_medians(windows.groups[0], n_resamples, rng)
    pick = rng.integers(0, w, size=(n_resamples, w))
    m = np.empty((n_resamples, w))
    for j, group in enumerate(windows.groups):
        where = pick == j
        hits = int(where.sum())
        if hits:
            m[where] = bootstrap_medians(group, hits, rng)
    return _agreeing_median_rows(m)


def interval(
    windows: Windows,
    *,
    level: float = BOOTSTRAP_LEVEL,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """The central value's percentile bootstrap interval at ``level`` (hierarchical: see
    ``central_draws``). A fixed ``seed``: the same samples give the same interval."""
    draws = central_draws(windows, n_resamples, np.random.default_rng(seed))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def time_spread_s(starts_s: Sequence[float] | None) -> float | None:
    """Seconds from the first window's start to the last's (None without starts)."""
    if starts_s is None or len(starts_s) == 0:
        return None
    values = [float(s) for s in starts_s if s is not None and math.isfinite(float(s))]
    return max(values) - min(values) if values else None
