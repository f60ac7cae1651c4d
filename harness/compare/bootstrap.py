"""Bootstrap of the rows' values and of their ratio: hierarchical (windows, then samples within
them: harness.core.windows), each window's median drawn exactly without building the
resamples."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness.core.windows import Windows, bootstrap_medians, central_draws, split

__all__ = ["bootstrap_medians", "log_median_ratio_draws", "quantiles", "sample_array"]


def log_median_ratio_draws(
    baseline: np.ndarray,
    candidate: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    baseline_windows: np.ndarray | None = None,
    candidate_windows: np.ndarray | None = None,
) -> np.ndarray:
    """``n_resamples`` bootstrap draws of log(value(candidate) / value(baseline)), the two
    sides resampled independently and hierarchically: windows with replacement, then the
    samples within each (harness.core.windows.central_draws), the value being the median of
    the windows that agree with the fastest, the row's ``latency_s_median``. Samples without
    window ids (files before schema version 4) are one window: the plain bootstrap of their
    median, as before."""
    cand = central_draws(_windows(candidate, candidate_windows), n_resamples, rng)
    base = central_draws(_windows(baseline, baseline_windows), n_resamples, rng)
    return np.log(cand / base)


def _windows(samples: np.ndarray, ids: np.ndarray | None) -> Windows:
    if ids is not None and len(ids) != len(samples):
        ids = None  # a mismatched id list (a hand-edited file): one window
    return split(samples, ids)


def sample_array(value: Any) -> np.ndarray | None:
    """A list column's cell -> the finite samples as an array, or None when there are none."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    a = np.asarray([v for v in value if v is not None], dtype=np.float64)
    a = a[np.isfinite(a)]
    return a if len(a) else None


def quantiles(draws: np.ndarray, levels: list[float]) -> list[float]:
    """numpy's default ("linear", Hyndman & Fan type 7) quantiles of ``draws`` at ``levels``,
    by partitioning around the ranks needed (several times faster than np.quantile here)."""
    n = len(draws)
    ranks = [q * (n - 1) for q in levels]
    idx = sorted({min(math.floor(r) + d, n - 1) for r in ranks for d in (0, 1)})
    part = np.partition(draws, idx)
    out = []
    for r in ranks:
        lo = math.floor(r)
        hi = min(lo + 1, n - 1)
        out.append(float(part[lo] + (part[hi] - part[lo]) * (r - lo)))
    return out
