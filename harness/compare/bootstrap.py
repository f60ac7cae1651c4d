"""Bootstrap of medians and of their ratio, drawn exactly without building the resamples."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


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


def log_median_ratio_draws(
    baseline: np.ndarray, candidate: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_resamples`` bootstrap draws of log(median(candidate) / median(baseline)), the two
    samples resampled independently."""
    cand = bootstrap_medians(candidate, n_resamples, rng)
    return np.log(cand / bootstrap_medians(baseline, n_resamples, rng))


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
