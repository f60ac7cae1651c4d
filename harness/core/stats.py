"""Statistics of timing samples, torch-free: the summary of a set of durations, the median's
distribution-free confidence interval (order statistics) and the interval's half-width relative
to the median. The one implementation each: the runner, the verdict, the summary, the
progress line and the report all call these.

Percentiles use numpy's ``"linear"`` method (Hyndman & Fan type 7, numpy's default); a p99
from fewer than 100 samples is flagged ``p99_reliable = False``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.core.errors import InvalidInputError

# numpy is imported by the functions that use it: the pytest plugin imports this module (for
# half_width_rel) in every pytest run of the environment, CNN suites or not.

PERCENTILE_METHOD = "linear"
P99_MIN_SAMPLES = 100
# Below 6 samples no pair of order statistics covers the median with 95% probability.
MIN_SAMPLES_FOR_CI = 6


def summarize(samples_s: Sequence[float]) -> dict[str, float | int | bool | str | None]:
    """Statistics of step durations in seconds, keyed by their result-schema column names.

    ``latency_s_stddev`` is the sample standard deviation (ddof=1) and is None for a single
    sample (it is undefined there, not 0). Percentiles (p25/p75 for the IQR, p90, p99) use
    numpy's ``"linear"`` method; ``p99_reliable`` is False below 100 samples.
    """
    import numpy as np

    a = np.asarray(samples_s, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise InvalidInputError(
            f"summarize needs a flat, non-empty sequence of durations in seconds; got shape "
            f"{a.shape}: measure at least one round"
        )
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise InvalidInputError(
            "durations must be finite and > 0 seconds; got "
            f"{a[~np.isfinite(a) | (a <= 0)][:5].tolist()}: check the timer that produced them"
        )
    p25, p75, p90, p99 = np.percentile(a, [25, 75, 90, 99], method=PERCENTILE_METHOD)
    return {
        "latency_s_median": float(np.median(a)),
        "latency_s_mean": float(a.mean()),
        "latency_s_stddev": float(a.std(ddof=1)) if a.size > 1 else None,
        "latency_s_min": float(a.min()),
        "latency_s_max": float(a.max()),
        "latency_s_iqr": float(p75 - p25),
        "latency_s_p90": float(p90),
        "latency_s_p99": float(p99),
        "p99_reliable": bool(a.size >= P99_MIN_SAMPLES),
        "rounds": int(a.size),
        "percentile_method": PERCENTILE_METHOD,
    }


def median_ci(samples: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    With ``n`` sorted samples, ``[x_(l), x_(n+1-l)]`` (1-based) covers the median with
    probability ``1 - 2 * P(Binomial(n, 1/2) < l)``; ``l`` is the largest rank keeping that at
    least ``level``. Below 6 samples no pair reaches 95%, and the whole range is returned (its
    coverage, ``1 - 2**(1-n)``, is the best there is).
    """
    import numpy as np

    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = x.size
    if n == 0:
        raise ValueError("median_ci needs at least one sample")
    alpha = 1.0 - level
    # log P(Bin(n, 1/2) = k) for k = 0 .. ceil(n/2) - 1, by the ratio of successive terms
    k = np.arange((n + 1) // 2, dtype=np.float64)
    steps = np.log((n - k[:-1]) / (k[:-1] + 1)) if k.size > 1 else np.empty(0)
    log_pmf = -n * math.log(2.0) + np.concatenate(([0.0], np.cumsum(steps)))
    cdf = np.cumsum(np.exp(log_pmf))  # P(Bin <= k)
    # [x_(k+1), x_(n-k)] covers the median with probability 1 - 2 P(Bin <= k)
    ok = np.flatnonzero(2 * cdf <= alpha)
    rank = int(ok[-1]) + 1 if ok.size else 1  # 1-based lower rank
    return float(x[rank - 1]), float(x[n - rank])


def half_width_rel(low: object, high: object, median: object) -> float | None:
    """The half-width of the interval ``[low, high]`` as a share of ``median``; None when any
    is missing or the median is not positive."""
    try:  # None, NaN and pandas' NA are missing (float(pd.NA) raises TypeError)
        lo, hi, m = float(low), float(high), float(median)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(m)) or m <= 0:
        return None
    return (hi - lo) / 2.0 / m
