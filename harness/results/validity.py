"""Is a measured row trustworthy? The noise signals, their documented thresholds, one verdict.

Every ``ok`` row gets ``validity``:

* ``valid``: no signal crossed its threshold;
* ``noisy``: at least one did; ``validity_reason`` names each with its value ("CPU pressure 50%
  during the rounds (limit 10%)", "IQR 36% of the median (limit 25%)");
* ``invalid``: the timings are impossible (a median, sample or throughput that is not a finite
  positive number): nothing may be concluded from the row.

Rows that did not run (``oom``, ``error``, ``skipped``, ``crashed``) have no validity (null).
The thresholds are the constants below, and each is printed beside the value that crossed it.
They were set on a 2-core VM (figures in docs/ARCHITECTURE.md, "Trustworthy numbers"): a busy
neighbour process gives CPU pressure near 0.5 and 90-250 involuntary switches/s, a quiet
machine under 0.01 and under 100/s.

The assessment reads only row columns, so it decides a row measured now (the runner) and a row
read from an older file (``load_results`` assesses ok rows whose file predates the verdict,
from the signals it has: samples, IQR, load); it never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from harness.core.missing import is_missing

# Below 6 rounds no pair of order statistics covers the median with 95% probability.
MIN_ROUNDS = 6
# A quartile spread this wide means the distribution, not one step, is being measured.
IQR_REL_MAX = 0.25
# The median known to +-2.5%: two valid runs of one case should not differ by 5% from noise.
CI_HALF_WIDTH_REL_MAX = 0.025
# Share of the timed rounds during which some task waited for a CPU (/proc/pressure/cpu).
CPU_PRESSURE_MAX = 0.10
# Involuntary context switches per second of rounds; decides only where the kernel has no
# PSI (a quiet 2-core VM shows up to ~100/s from the kernel's own work).
INVOLUNTARY_SWITCHES_PER_S_MAX = 150.0
# The CPU ran a fixed probe this much slower (or 1/this faster) than its typical time on this
# host (harness.measure.noise): this VM's two states are 1.6-1.8x apart, each within 1.1x
# (benchmarks/bench_speed_states.py).
SPEED_PROBE_SLOW_MAX = 1.25
# 1-minute load average above the cores by this much: more runnable tasks than CPUs.
LOAD_ABOVE_CORES_MAX = 0.5
# GPU: SM clock falling by more than this share across the window; temperature rise in C.
SM_CLOCK_DROP_MAX = 0.10
TEMPERATURE_RISE_MAX_C = 15
# Clock-event reasons that slow a GPU below its normal boost (sw_power_cap is normal under load:
# it counts only through the clock drop).
THROTTLE_NOISY = (
    "hw_slowdown",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
)

THRESHOLDS: dict[str, float] = {
    "min_rounds": MIN_ROUNDS,
    "iqr_rel_max": IQR_REL_MAX,
    "ci_half_width_rel_max": CI_HALF_WIDTH_REL_MAX,
    "cpu_pressure_max": CPU_PRESSURE_MAX,
    "involuntary_switches_per_s_max": INVOLUNTARY_SWITCHES_PER_S_MAX,
    "speed_probe_slow_max": SPEED_PROBE_SLOW_MAX,
    "load_above_cores_max": LOAD_ABOVE_CORES_MAX,
    "sm_clock_drop_max": SM_CLOCK_DROP_MAX,
    "temperature_rise_max_c": TEMPERATURE_RISE_MAX_C,
}
RULE = (
    f"noisy when any of: fewer than {MIN_ROUNDS} rounds; IQR > {IQR_REL_MAX:.0%} of the "
    f"median; the median's 95% interval wider than +-{CI_HALF_WIDTH_REL_MAX:.1%}; CPU "
    f"pressure > {CPU_PRESSURE_MAX:.0%} of the rounds; > {INVOLUNTARY_SWITCHES_PER_S_MAX:g} "
    f"involuntary switches/s (without PSI); the CPU's speed probe > {SPEED_PROBE_SLOW_MAX:g}x "
    f"slower or faster than typical on the host; 1-minute load > cores + {LOAD_ABOVE_CORES_MAX:g}; "
    f"SM clock down > {SM_CLOCK_DROP_MAX:.0%}; temperature up > {TEMPERATURE_RISE_MAX_C:g} C; "
    "a thermal or hardware slowdown reason"
)


def _num(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if is_missing(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _samples(row: Mapping[str, Any]) -> np.ndarray | None:
    value = row.get("latency_s_samples")
    if value is None or (not hasattr(value, "__len__")) or isinstance(value, str):
        return None
    a = np.asarray([np.nan if v is None else v for v in value], dtype=np.float64)
    return a if a.size else None


def impossible(row: Mapping[str, Any], *, require: bool = True) -> str | None:
    """Why the row's timings cannot be real (None when they can): a median, throughput or
    sample that is not a finite positive number, or (with ``require``) no median at all."""
    for key in ("latency_s_median", "throughput_per_s"):
        v = _num(row, key)
        if v is None:
            if require and key == "latency_s_median":
                return f"{key} is missing in an ok row"
            continue
        if not math.isfinite(v) or v <= 0:
            return f"{key} is {v!r}: a time or rate must be a finite positive number"
    s = _samples(row)
    if s is not None and (not np.all(np.isfinite(s)) or np.any(s <= 0)):
        bad = s[~np.isfinite(s) | (s <= 0)][:3].tolist()
        return f"latency_s_samples holds impossible durations {bad}"
    return None


def median_ci(samples: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    With ``n`` sorted samples, ``[x_(l), x_(n+1-l)]`` (1-based) covers the median with
    probability ``1 - 2 * P(Binomial(n, 1/2) < l)``; ``l`` is the largest rank keeping that at
    least ``level``. Below 6 samples no pair reaches 95%, and the whole range is returned (its
    coverage, ``1 - 2**(1-n)``, is the best there is).
    """
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


def _ci_half_width_rel(row: Mapping[str, Any]) -> float | None:
    median = _num(row, "latency_s_median")
    lo, hi = _num(row, "latency_s_median_ci_low"), _num(row, "latency_s_median_ci_high")
    if (lo is None or hi is None) and (s := _samples(row)) is not None and np.all(np.isfinite(s)):
        lo, hi = median_ci(s)
    if median is None or median <= 0 or lo is None or hi is None:
        return None
    return (hi - lo) / 2.0 / median


def noise_signals(row: Mapping[str, Any]) -> list[str]:
    """Each signal of the row that crossed its threshold, worded with its value and limit."""
    found: list[str] = []
    rounds = _num(row, "rounds")
    if rounds is not None and rounds < MIN_ROUNDS:
        found.append(
            f"only {rounds:.0f} round(s): too few for a 95% interval of the median "
            f"(needs {MIN_ROUNDS})"
        )
    median = _num(row, "latency_s_median")
    iqr = _num(row, "latency_s_iqr")
    if median and iqr is not None and iqr / median > IQR_REL_MAX:
        found.append(f"IQR {iqr / median:.0%} of the median (limit {IQR_REL_MAX:.0%})")
    half = _ci_half_width_rel(row)
    if half is not None and half > CI_HALF_WIDTH_REL_MAX:
        found.append(f"median's 95% interval +-{half:.1%} (limit +-{CI_HALF_WIDTH_REL_MAX:.1%})")
    psi = _num(row, "cpu_pressure")
    if psi is not None and psi > CPU_PRESSURE_MAX:
        found.append(
            f"CPU pressure {psi:.0%} of the rounds: other tasks waited for a CPU "
            f"(limit {CPU_PRESSURE_MAX:.0%})"
        )
    switches = _num(row, "involuntary_switches_per_s")
    if psi is None and switches is not None and switches > INVOLUNTARY_SWITCHES_PER_S_MAX:
        found.append(
            f"{switches:.0f} involuntary context switches/s "
            f"(limit {INVOLUNTARY_SWITCHES_PER_S_MAX:g})"
        )
    speed = _num(row, "speed_probe_ratio")
    if speed is not None and speed > SPEED_PROBE_SLOW_MAX:
        found.append(
            f"CPU running {speed:.2f}x slower than typical on this host (speed probe; "
            f"limit {SPEED_PROBE_SLOW_MAX:g}x)"
        )
    elif speed is not None and 0 < speed < 1 / SPEED_PROBE_SLOW_MAX:
        found.append(
            f"CPU running {1 / speed:.2f}x faster than typical on this host (speed probe; "
            f"limit {SPEED_PROBE_SLOW_MAX:g}x)"
        )
    cores = _num(row, "cpu_cores")
    if cores:
        loads = [v for v in (_num(row, "load_avg_1m"), _num(row, "load_avg_1m_end")) if v]
        if loads and max(loads) > cores + LOAD_ABOVE_CORES_MAX:
            found.append(
                f"load {max(loads):.1f} on {cores:.0f} cores "
                f"(limit cores + {LOAD_ABOVE_CORES_MAX:g})"
            )
    clk0, clk1 = _num(row, "sm_clock_mhz_start"), _num(row, "sm_clock_mhz_end")
    if clk0 and clk1 is not None and (clk0 - clk1) / clk0 > SM_CLOCK_DROP_MAX:
        found.append(f"SM clock fell {clk0:.0f} -> {clk1:.0f} MHz (limit {SM_CLOCK_DROP_MAX:.0%})")
    t0, t1 = _num(row, "temperature_c_start"), _num(row, "temperature_c_end")
    if t0 is not None and t1 is not None and t1 - t0 > TEMPERATURE_RISE_MAX_C:
        found.append(f"temperature rose {t0:.0f} -> {t1:.0f} C (limit +{TEMPERATURE_RISE_MAX_C} C)")
    reasons = row.get("throttle_reasons_end")
    if not is_missing(reasons):
        hit = [r for r in str(reasons).split(",") if r.strip() in THROTTLE_NOISY]
        if hit:
            found.append(f"GPU slowed down: {', '.join(hit)}")
    return found


def assess(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(validity, validity_reason)`` of a row; ``(None, None)`` for a case that did not run."""
    if row.get("status") != "ok":
        return None, None
    why = impossible(row)
    if why is not None:
        return "invalid", why
    signals = noise_signals(row)
    if signals:
        return "noisy", "; ".join(signals)
    return "valid", None


def usable(validity: Any) -> bool:
    """Whether a row may decide a verdict: only ``valid`` ones may."""
    return not is_missing(validity) and validity == "valid"


# The columns ``assess`` reads.
SIGNAL_COLUMNS = (
    "status", "schema_version", "rounds", "latency_s_median", "throughput_per_s",
    "latency_s_samples", "latency_s_iqr", "latency_s_median_ci_low", "latency_s_median_ci_high",
    "cpu_pressure", "involuntary_switches_per_s", "speed_probe_ratio", "cpu_cores",
    "load_avg_1m", "load_avg_1m_end",
    "sm_clock_mhz_start", "sm_clock_mhz_end", "temperature_c_start", "temperature_c_end",
    "throttle_reasons_end",
)  # fmt: skip


def _impossible_mask(df: pd.DataFrame) -> pd.Series:
    """Rows whose median, throughput or any sample is not a finite positive number (vectorised:
    a directory of 50,000 cases is checked in well under a second)."""
    bad = pd.Series(False, index=df.index)
    for key in ("latency_s_median", "throughput_per_s"):
        if key in df:
            v = pd.to_numeric(df[key], errors="coerce").astype("float64")
            bad |= ~(np.isfinite(v.to_numpy(na_value=np.nan)) & (v.fillna(0) > 0).to_numpy())
    if "latency_s_samples" in df:
        arr = pa.array(df["latency_s_samples"], from_pandas=True)
        if pa.types.is_list(arr.type) and len(arr):
            flat = pc.list_flatten(arr).cast(pa.float64())  # views: no copy of the samples
            wrong = pc.or_kleene(pc.invert(pc.is_finite(flat)), pc.less_equal(flat, 0.0))
            parents = pc.filter(pc.list_parent_indices(arr), wrong).to_numpy()
            rows = np.zeros(len(df), dtype=bool)
            rows[parents] = True
            bad |= pd.Series(rows, index=df.index)
    return bad


def assess_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Fill ``validity`` where a file predates it and mark impossible timings ``invalid``.

    Ok rows without a verdict (files of schema version 2 and older) are assessed from the
    signals they carry (samples, IQR, load), the reason saying so; an ok row whose timings are
    impossible is ``invalid`` whatever its file says. Returns ``df`` changed in place.
    """
    if df.empty or "status" not in df:
        return df
    for col in ("validity", "validity_reason"):
        if col not in df:
            df[col] = pd.Series(pd.NA, index=df.index, dtype="string")
    ok = df["status"].astype("string").eq("ok").fillna(False)
    impossible_rows = ok & _impossible_mask(df)
    unassessed = ok & df["validity"].isna() & ~impossible_rows
    todo = df.index[unassessed | impossible_rows]
    if not len(todo):
        return df
    columns = [c for c in SIGNAL_COLUMNS if c in df]
    records = df.loc[todo, columns].to_dict("records")  # only what the verdict reads
    validities, reasons = [], []
    for i, row in zip(todo, records, strict=True):
        validity, reason = assess(row)
        if unassessed[i]:
            version = row.get("schema_version")
            origin = "" if is_missing(version) else f" (schema version {int(version)} file)"
            reason = f"assessed on load{origin}" + (f": {reason}" if reason else "")
        validities.append(validity)
        reasons.append(reason)
    df.loc[todo, "validity"] = pd.array(validities, dtype=df["validity"].dtype)
    df.loc[todo, "validity_reason"] = pd.array(reasons, dtype=df["validity_reason"].dtype)
    return df
