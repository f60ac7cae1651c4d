"""The GPU's noise signals over a timed window, from the columns harness.measure.gpu_watch
writes (NVML's process lists, clock-event time counters and SM clock samples). Each is
``(kind, value, limit, text)``; harness.core.signals makes them ``Signal``s and owns the
verdict. Torch-free."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.core.missing import is_missing
from harness.core.missing import number as _num

# Another process with a context on the GPU: CUDA time-slices the contexts of different
# processes on one GPU (without MPS), so one that computes takes whole slices of the window,
# and NVML cannot tell an idle context from a busy one (optimum-benchmark refuses to measure
# with another process on the device).
FOREIGN_PROCESSES_MAX = 0
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

Found = tuple[str, float, float, str]


def gpu_window_signals(
    row: Mapping[str, Any], *, slowdown_share_max: float, low_share_max: float
) -> list[Found]:
    """Other processes on the GPU, thermal slowdown or power brake over more than
    ``slowdown_share_max`` of the window, SM clock samples below 75% of the maximum in more
    than ``low_share_max`` of it."""
    found: list[Found] = []
    others = _num(row, "gpu_foreign_processes")
    if others is not None and others > FOREIGN_PROCESSES_MAX:
        memory = _num(row, "gpu_foreign_memory_bytes")
        held = f", holding {memory / 2**30:.1f} GiB" if memory is not None else ""
        text = f"{others:.0f} other process(es) on the GPU{held}: they share it"
        found.append(("foreign_process", others, FOREIGN_PROCESSES_MAX, text))
    for kind, column, what in (
        ("gpu_thermal", "gpu_thermal_share", "thermal slowdown"),
        ("gpu_power_brake", "gpu_power_brake_share", "hardware power brake"),
    ):
        share = _num(row, column)
        if share is not None and share > slowdown_share_max:
            text = f"GPU in {what} {share:.1%} of the window (limit {slowdown_share_max:.1%})"
            found.append((kind, share, slowdown_share_max, text))
    low = _num(row, "sm_clock_low_share")
    if low is not None and low > low_share_max:
        lowest = _num(row, "sm_clock_mhz_min")
        at = f", down to {lowest:.0f} MHz" if lowest is not None else ""
        text = (
            f"SM clock below 75% of its maximum in {low:.1%} of the window{at} "
            f"(limit {low_share_max:.1%})"
        )
        found.append(("sm_clock_low", low, low_share_max, text))
    return found + _point_reads(row)


def _point_reads(row: Mapping[str, Any]) -> list[Found]:
    """Rows without NVML's window readings (older files, a driver without them): two point
    reads, at the start and the end of the rounds."""
    found: list[Found] = []
    clk0, clk1 = _num(row, "sm_clock_mhz_start"), _num(row, "sm_clock_mhz_end")
    if _num(row, "sm_clock_low_share") is not None:
        clk0 = None  # the driver's samples decide
    if clk0 and clk1 is not None and (clk0 - clk1) / clk0 > SM_CLOCK_DROP_MAX:
        text = f"SM clock fell {clk0:.0f} -> {clk1:.0f} MHz (limit {SM_CLOCK_DROP_MAX:.0%})"
        found.append(("sm_clock_drop", (clk0 - clk1) / clk0, SM_CLOCK_DROP_MAX, text))
    if _num(row, "gpu_thermal_share") is not None:
        return found
    t0, t1 = _num(row, "temperature_c_start"), _num(row, "temperature_c_end")
    if t0 is not None and t1 is not None and t1 - t0 > TEMPERATURE_RISE_MAX_C:
        text = f"temperature rose {t0:.0f} -> {t1:.0f} C (limit +{TEMPERATURE_RISE_MAX_C} C)"
        found.append(("temperature_rise", t1 - t0, TEMPERATURE_RISE_MAX_C, text))
    reasons = row.get("throttle_reasons_end")
    if not is_missing(reasons):
        hit = [r for r in str(reasons).split(",") if r.strip() in THROTTLE_NOISY]
        if hit:
            found.append(("gpu_slowdown", len(hit), 0, f"GPU slowed down: {', '.join(hit)}"))
    return found
