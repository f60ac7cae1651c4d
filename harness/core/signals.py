"""Is a measured row trustworthy? The noise signals, typed, with their documented thresholds,
and the one verdict every consumer reads.

Every ``ok`` row gets ``validity``:

* ``valid``: no signal crossed its threshold;
* ``noisy``: at least one did; each is a ``Signal`` (its kind, value and limit) and
  ``validity_reason`` is their texts ("CPU pressure 50% during the rounds (limit 10%)");
* ``invalid``: the timings are impossible (a median, sample or throughput that is not a finite
  positive number): nothing may be concluded from the row.

Rows that did not run (``oom``, ``error``, ``skipped``, ``crashed``) have no validity (null).
The thresholds are the constants below, each printed beside the value that crossed it, and
``RULE`` states them all in one sentence (the summary and the report print it). They were set
on a 2-core VM: a busy neighbour process gives CPU pressure near 0.5 and 90-250 involuntary
switches/s, a quiet machine under 0.01 and under 100/s.

The assessment reads only row columns, so it decides a row measured now (the runner) and a row
read from an older file (``harness.results.validity.assess_frame``); it imports neither torch
nor pandas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.core import windows as win
from harness.core.gpu_signals import (
    FOREIGN_PROCESSES_MAX,
    SM_CLOCK_DROP_MAX,
    TEMPERATURE_RISE_MAX_C,
    THROTTLE_NOISY,  # noqa: F401 (re-exported)
    gpu_window_signals,
)
from harness.core.missing import is_missing
from harness.core.missing import number as _num
from harness.core.stats import MIN_SAMPLES_FOR_CI, half_width_rel, median_ci

# Fewer rounds than this have no 95% interval of the median (harness.core.stats).
MIN_ROUNDS = MIN_SAMPLES_FOR_CI
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
# GPU point reads (older rows): SM_CLOCK_DROP_MAX, TEMPERATURE_RISE_MAX_C, THROTTLE_NOISY
# (harness.core.gpu_signals).

# Between windows (harness.core.windows): at least this many, and all but one in five of
# them within AGREE_REL of the fastest window.
MIN_WINDOWS = win.MIN_WINDOWS
AGREE_REL = win.AGREE_REL

# GPU over the timed window (harness.measure.gpu_watch, harness.core.gpu_signals), for rows
# that have these columns (the two point reads above decide only older rows): another process
# on the GPU (FOREIGN_PROCESSES_MAX), and:
# Thermal slowdown or the hardware power brake for more than this share of the window: a HW
# slowdown cuts the clocks by a factor of 2 or more (nvml.h, nvmlClocksEventReasonHwSlowdown),
# so the steps in it take >= 2x and the window's mean rises by >= that share; beyond the
# precision the row claims for its median (CI_HALF_WIDTH_REL_MAX) it is not the GPU's speed.
GPU_SLOWDOWN_SHARE_MAX = CI_HALF_WIDTH_REL_MAX
# The driver's SM clock samples below 75% of the GPU's maximum clock (NVBench drops samples
# taken below its --throttle-threshold, default 75% of the device's clock) in more than this
# share of the window: the same precision argument (a step at < 75% clock takes > 1.33x).
SM_CLOCK_LOW_SHARE_MAX = CI_HALF_WIDTH_REL_MAX

THRESHOLDS: dict[str, float] = {
    "min_windows": MIN_WINDOWS,
    "window_agree_rel": AGREE_REL,
    "min_rounds": MIN_ROUNDS,
    "iqr_rel_max": IQR_REL_MAX,
    "ci_half_width_rel_max": CI_HALF_WIDTH_REL_MAX,
    "cpu_pressure_max": CPU_PRESSURE_MAX,
    "involuntary_switches_per_s_max": INVOLUNTARY_SWITCHES_PER_S_MAX,
    "speed_probe_slow_max": SPEED_PROBE_SLOW_MAX,
    "load_above_cores_max": LOAD_ABOVE_CORES_MAX,
    "sm_clock_drop_max": SM_CLOCK_DROP_MAX,
    "temperature_rise_max_c": TEMPERATURE_RISE_MAX_C,
    "foreign_processes_max": FOREIGN_PROCESSES_MAX,
    "gpu_slowdown_share_max": GPU_SLOWDOWN_SHARE_MAX,
    "sm_clock_low_share_max": SM_CLOCK_LOW_SHARE_MAX,
}
RULE = (
    f"noisy when any of: fewer than {MIN_WINDOWS} windows, or fewer than all but one in five "
    f"of them within {AGREE_REL:.0%} of the fastest window (the row's value is the median of "
    f"those windows' medians; its interval resamples windows, then samples); fewer than "
    f"{MIN_ROUNDS} rounds in them; IQR > {IQR_REL_MAX:.0%} of the "
    f"median; the median's 95% interval wider than +-{CI_HALF_WIDTH_REL_MAX:.1%}; CPU "
    f"pressure > {CPU_PRESSURE_MAX:.0%} of the rounds; > {INVOLUNTARY_SWITCHES_PER_S_MAX:g} "
    f"involuntary switches/s (without PSI); the CPU's speed probe > {SPEED_PROBE_SLOW_MAX:g}x "
    f"slower or faster than typical on the host; 1-minute load > cores + {LOAD_ABOVE_CORES_MAX:g}; "
    f"another process on the GPU; thermal slowdown or power brake > "
    f"{GPU_SLOWDOWN_SHARE_MAX:.1%} of the window, or SM clock samples below 75% of its maximum "
    f"in > {SM_CLOCK_LOW_SHARE_MAX:.1%} of it (NVML's counters and samples; rows without them: "
    f"SM clock down > {SM_CLOCK_DROP_MAX:.0%}, temperature up > {TEMPERATURE_RISE_MAX_C:g} C, a "
    "thermal or hardware slowdown reason at the end)"
)


@dataclass(frozen=True)
class Signal:
    """One noise signal that crossed its threshold: ``kind`` (one of ``SIGNAL_KINDS``), the
    ``value`` measured and the ``limit`` it crossed, in the signal's own unit, and the words a
    person reads."""

    kind: str
    value: float
    limit: float
    text: str

    def __str__(self) -> str:
        return self.text


SIGNAL_KINDS = (
    "too_few_windows",
    "windows_disagree",
    "too_few_rounds",
    "iqr",
    "median_interval",
    "cpu_pressure",
    "involuntary_switches",
    "cpu_slower",
    "cpu_faster",
    "load",
    "sm_clock_drop",
    "temperature_rise",
    "gpu_slowdown",
    "foreign_process",
    "gpu_thermal",
    "gpu_power_brake",
    "sm_clock_low",
)


@dataclass(frozen=True)
class Verdict:
    """``validity`` (valid, noisy, invalid; None for a case that did not run), the signals that
    made it noisy, and ``reason``: their texts joined (or why the timings are impossible)."""

    validity: str | None
    signals: tuple[Signal, ...] = ()
    reason: str | None = None

    def kinds(self) -> set[str]:
        return {s.kind for s in self.signals}


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


def row_windows(row: Mapping[str, Any]) -> win.Windows | None:
    """The row's samples by window (harness.core.windows); None without finite samples. A row
    from before windows (no ``latency_s_window_ids``) is one window."""
    s = _samples(row)
    if s is None or not np.all(np.isfinite(s)) or np.any(s <= 0):
        return None
    ids = row.get("latency_s_window_ids")
    if ids is None or isinstance(ids, str) or not hasattr(ids, "__len__") or len(ids) != s.size:
        ids = None
    try:
        return win.split(s, ids)
    except (TypeError, ValueError):
        return None


def window_signals(row: Mapping[str, Any], windows: win.Windows | None) -> list[Signal]:
    """Between-window signals: too few windows, or too few of them agreeing with the fastest
    (the text names the spread: "windows disagree: 1.38x between the fastest and slowest
    window"). Rows without window ids (files before windows) have none."""
    if windows is None or not _windowed(row):
        return []
    found: list[Signal] = []
    count = windows.count
    if count < MIN_WINDOWS:
        found.append(
            Signal(
                "too_few_windows",
                float(count),
                float(MIN_WINDOWS),
                f"only {count} window(s): no between-window check (needs {MIN_WINDOWS})",
            )
        )
        return found
    agree = int(windows.agreeing().sum())
    need = win.needed(count)
    if agree < need:
        found.append(
            Signal(
                "windows_disagree",
                windows.spread(),
                1.0 + AGREE_REL,
                f"windows disagree: {windows.spread():.2f}x between the fastest and slowest "
                f"window; {agree} of {count} within {AGREE_REL:.0%} of the fastest "
                f"(needs {need})",
            )
        )
    return found


def left_out(windows: win.Windows | None) -> str | None:
    """The windows that do not speak for a valid row, in words ("1 of 5 windows 1.70x slower
    than the fastest, left out"); None when every window agrees."""
    if windows is None or windows.count < 2:
        return None
    mask = windows.agreeing()
    out = int((~mask).sum())
    if not out:
        return None
    worst = float(windows.medians[~mask].max() / windows.medians.min())
    return (
        f"{out} of {windows.count} window(s) up to {worst:.2f}x slower than the fastest, "
        "left out of the value"
    )


def _ci_half_width_rel(row: Mapping[str, Any]) -> float | None:
    lo, hi = _num(row, "latency_s_median_ci_low"), _num(row, "latency_s_median_ci_high")
    if (lo is None or hi is None) and (s := _samples(row)) is not None and np.all(np.isfinite(s)):
        lo, hi = median_ci(s)
    return half_width_rel(lo, hi, _num(row, "latency_s_median"))


def noise_signals(row: Mapping[str, Any]) -> list[Signal]:
    """Each signal of the row that crossed its threshold, with its value, limit and words."""
    found: list[Signal] = []

    def add(kind: str, value: float, limit: float, text: str) -> None:
        found.append(Signal(kind, float(value), float(limit), text))

    windows = row_windows(row)
    found += window_signals(row, windows)
    rounds = _num(row, "rounds")
    iqr = _num(row, "latency_s_iqr")
    if windows is not None and windows.count > 1:
        # the windows that speak for the row: their rounds and their spread
        kept = windows.agreeing_samples()
        rounds = float(kept.size)
        q1, q3 = np.percentile(kept, [25, 75])
        iqr = float(q3 - q1)
    if rounds is not None and rounds < MIN_ROUNDS:
        add(
            "too_few_rounds",
            rounds,
            MIN_ROUNDS,
            f"only {rounds:.0f} round(s): too few for a 95% interval of the median "
            f"(needs {MIN_ROUNDS})",
        )
    median = _num(row, "latency_s_median")
    if median and iqr is not None and iqr / median > IQR_REL_MAX:
        add(
            "iqr",
            iqr / median,
            IQR_REL_MAX,
            f"IQR {iqr / median:.0%} of the median (limit {IQR_REL_MAX:.0%})",
        )
    half = _ci_half_width_rel(row)
    if half is not None and half > CI_HALF_WIDTH_REL_MAX:
        add(
            "median_interval",
            half,
            CI_HALF_WIDTH_REL_MAX,
            f"median's 95% interval +-{half:.1%} (limit +-{CI_HALF_WIDTH_REL_MAX:.1%})",
        )
    psi = _num(row, "cpu_pressure")
    if psi is not None and psi > CPU_PRESSURE_MAX:
        add(
            "cpu_pressure",
            psi,
            CPU_PRESSURE_MAX,
            f"CPU pressure {psi:.0%} of the rounds: other tasks waited for a CPU "
            f"(limit {CPU_PRESSURE_MAX:.0%})",
        )
    switches = _num(row, "involuntary_switches_per_s")
    if psi is None and switches is not None and switches > INVOLUNTARY_SWITCHES_PER_S_MAX:
        add(
            "involuntary_switches",
            switches,
            INVOLUNTARY_SWITCHES_PER_S_MAX,
            f"{switches:.0f} involuntary context switches/s "
            f"(limit {INVOLUNTARY_SWITCHES_PER_S_MAX:g})",
        )
    speed = _num(row, "speed_probe_ratio")
    if speed is not None and speed > SPEED_PROBE_SLOW_MAX:
        add(
            "cpu_slower",
            speed,
            SPEED_PROBE_SLOW_MAX,
            f"CPU running {speed:.2f}x slower than typical on this host (speed probe; "
            f"limit {SPEED_PROBE_SLOW_MAX:g}x)",
        )
    elif speed is not None and 0 < speed < 1 / SPEED_PROBE_SLOW_MAX:
        add(
            "cpu_faster",
            1 / speed,
            SPEED_PROBE_SLOW_MAX,
            f"CPU running {1 / speed:.2f}x faster than typical on this host (speed probe; "
            f"limit {SPEED_PROBE_SLOW_MAX:g}x)",
        )
    cores = _num(row, "cpu_cores")
    if cores:
        loads = [v for v in (_num(row, "load_avg_1m"), _num(row, "load_avg_1m_end")) if v]
        if loads and max(loads) > cores + LOAD_ABOVE_CORES_MAX:
            add(
                "load",
                max(loads),
                cores + LOAD_ABOVE_CORES_MAX,
                f"load {max(loads):.1f} on {cores:.0f} cores "
                f"(limit cores + {LOAD_ABOVE_CORES_MAX:g})",
            )
    found.extend(gpu_signals(row))
    return found


def gpu_signals(row: Mapping[str, Any]) -> list[Signal]:
    """The GPU's signals over the timed window (harness.core.gpu_signals): other processes,
    slowdown time, low clocks."""
    found = gpu_window_signals(
        row, slowdown_share_max=GPU_SLOWDOWN_SHARE_MAX, low_share_max=SM_CLOCK_LOW_SHARE_MAX
    )
    return [Signal(kind, float(v), float(limit), text) for kind, v, limit, text in found]


def verdict(row: Mapping[str, Any]) -> Verdict:
    """The row's verdict: None for a case that did not run, ``invalid`` for impossible timings,
    ``noisy`` with its signals, else ``valid``."""
    if row.get("status") != "ok":
        return Verdict(None)
    why = impossible(row)
    if why is not None:
        return Verdict("invalid", reason=why)
    signals = tuple(noise_signals(row))
    if signals:
        return Verdict("noisy", signals, "; ".join(s.text for s in signals))
    # a valid row still says which windows it left out of its value (the machine's other state)
    return Verdict("valid", reason=left_out(row_windows(row)) if _windowed(row) else None)


def _windowed(row: Mapping[str, Any]) -> bool:
    """Whether the row's samples carry their windows (schema version 4 and later)."""
    ids = row.get("latency_s_window_ids")
    return ids is not None and not isinstance(ids, (str, float)) and len(ids) > 0


def assess(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(validity, validity_reason)`` of a row (``verdict``'s two columns)."""
    v = verdict(row)
    return v.validity, v.reason


def usable(validity: Any) -> bool:
    """Whether a row may decide a verdict: only ``valid`` ones may."""
    return not is_missing(validity) and validity == "valid"


# The columns ``assess`` reads.
SIGNAL_COLUMNS = (
    "status",
    "schema_version",
    "rounds",
    "latency_s_window_ids",
    "latency_s_median",
    "throughput_per_s",
    "latency_s_samples",
    "latency_s_iqr",
    "latency_s_median_ci_low",
    "latency_s_median_ci_high",
    "cpu_pressure",
    "involuntary_switches_per_s",
    "speed_probe_ratio",
    "cpu_cores",
    "load_avg_1m",
    "load_avg_1m_end",
    "sm_clock_mhz_start",
    "sm_clock_mhz_end",
    "temperature_c_start",
    "temperature_c_end",
    "throttle_reasons_end",
    "gpu_foreign_processes",
    "gpu_foreign_memory_bytes",
    "gpu_thermal_share",
    "gpu_power_brake_share",
    "sm_clock_low_share",
    "sm_clock_mhz_min",
)
