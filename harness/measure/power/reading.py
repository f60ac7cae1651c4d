"""The record of one power window (``PowerReading``) and its result columns.

Written by the monitors in ``harness.measure.power.meters``; the runner turns it into the
``cases`` row (``to_columns``) and the ``power`` table (``trace_frame``). Units: W, J, s, MHz,
degrees C.
"""

from __future__ import annotations

import operator
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.core.errors import InvalidInputError
from harness.measure.power.nvml import decode_clock_event_reasons

if TYPE_CHECKING:
    import pandas as pd

MW_PER_W = 1000.0


@dataclass(frozen=True)
class DeviceState:
    """Clocks (MHz), temperature (C), power limit (W) and clock-event reasons at one moment."""

    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    temperature_c: int | None = None
    power_limit_w: float | None = None
    throttle_reasons: str | None = None

    @classmethod
    def from_nvml(cls, raw: dict[str, int | None]) -> DeviceState:
        limit_mw, mask = raw.get("power_limit_mw"), raw.get("clock_event_mask")
        return cls(
            sm_clock_mhz=raw.get("sm_clock_mhz"),
            mem_clock_mhz=raw.get("mem_clock_mhz"),
            temperature_c=raw.get("temperature_c"),
            power_limit_w=None if limit_mw is None else limit_mw / MW_PER_W,
            throttle_reasons=None if mask is None else decode_clock_event_reasons(mask),
        )


@dataclass
class PowerReading:
    """What one window measured; ``reason`` says why whatever is null is null."""

    source: str
    window_s: float | None = None
    energy_j: float | None = None
    power_w_mean: float | None = None
    power_w_max: float | None = None
    trace: list[tuple[float, float]] = field(default_factory=list)  # (s since start, W)
    sample_hz: float | None = None
    polls: int = 0  # power reads made; len(trace) counts only distinct readings
    start: DeviceState | None = None
    end: DeviceState | None = None
    power_w_idle: float | None = None
    reason: str | None = None
    energy_scope: str | None = None  # what energy_j covers: gpu, module, package
    quantisation_rel: float | None = None  # the energy's worst-case error from the counter step

    def to_columns(self, samples_processed: int) -> dict[str, object]:
        """The schema's power columns for a window that processed ``samples_processed`` samples."""
        try:
            n = operator.index(samples_processed)
        except TypeError:
            n = 0
        if n <= 0 or isinstance(samples_processed, bool):
            raise InvalidInputError(
                f"samples_processed must be a positive integer (rounds * batch_size), "
                f"got {samples_processed!r}"
            )
        e = self.energy_j
        start, end = self.start or DeviceState(), self.end or DeviceState()
        limit = start.power_limit_w if start.power_limit_w is not None else end.power_limit_w
        return {
            "power_w_mean": self.power_w_mean,
            "power_w_max": self.power_w_max,
            "power_w_idle": self.power_w_idle,
            "energy_j_total": e,
            "energy_j_per_sample": None if e is None else e / n,
            "samples_per_j": None if e is None else n / e,
            "energy_window_s": self.window_s,
            "energy_quantisation_rel": None if e is None else self.quantisation_rel,
            "energy_scope": None if e is None else self.energy_scope,
            "power_samples": None if self.window_s is None else len(self.trace),
            "power_sample_hz": self.sample_hz,
            "power_polls": None if self.window_s is None else self.polls,
            "power_source": self.source,
            "power_reason": self.reason,
            "sm_clock_mhz_start": start.sm_clock_mhz,
            "sm_clock_mhz_end": end.sm_clock_mhz,
            "mem_clock_mhz_start": start.mem_clock_mhz,
            "mem_clock_mhz_end": end.mem_clock_mhz,
            "temperature_c_start": start.temperature_c,
            "temperature_c_end": end.temperature_c,
            "power_limit_w": limit,
            "throttle_reasons_start": start.throttle_reasons,
            "throttle_reasons_end": end.throttle_reasons,
        }

    def trace_frame(self) -> pd.DataFrame | None:
        """The trace as rows of the ``power`` table (t_s, power_w); None without a trace."""
        if not self.trace:
            return None
        import pandas as pd

        t_s, power_w = zip(*self.trace, strict=True)
        return pd.DataFrame({"t_s": list(t_s), "power_w": list(power_w)}, dtype="float64")


def hold_mean(t: array, p: array, end: float) -> float | None:
    """Time-weighted mean (W) of samples held until the next one, over [t[0], end]."""
    if not len(t):
        return None
    span = end - t[0]
    return hold_integral(t, p, end) / span if span > 0 else p[-1]


def hold_integral(t: array, p: array, end: float) -> float:
    """Integral in W*s (J) of samples held until the next one (the last until ``end``)."""
    total = 0.0
    for i in range(len(t)):
        stop = t[i + 1] if i + 1 < len(t) else end
        total += p[i] * max(0.0, stop - t[i])
    return total
