"""What else used the GPU during a case and what held its clocks down, from NVML, over the whole
timed window rather than two point reads (at batch 128-256 an H100 at its power cap swings more
than 10% from one instant to the next, so a start and an end read say little).

* **Other processes** (``look``, before and after a case's rounds): NVML's lists of the
  processes holding a context on the GPU (compute and graphics). This process is recognised by
  its pid (as this PID namespace and the outer ones write it, /proc/self/status ``NSpid``);
  where NVML lists PIDs of another namespace, one listed context is taken as this process's
  own and the source says so; where NVML lists none although this process holds a context,
  the count is unknown (null) and the source says why. The row keeps the most seen at once.
* **Clock-event time** (``window``): NVML's counters of the time the clocks were held down, per
  reason (power cap, software and hardware thermal slowdown, hardware power brake), read in one
  call at each end of a timed window: their differences over the window's length are the
  shares of the window each reason held. They are kept by the driver, so nothing is missed
  between two reads.
* **SM clock** (``window``): the driver's own buffer of SM clock samples taken during the
  window (nvmlDeviceGetSamples, NVML_PROCESSOR_CLK_SAMPLES): their minimum and median, and the
  share below 75% of the GPU's maximum SM clock, the rule NVBench uses to drop throttled
  samples (``--throttle-threshold``, default 75% of the device's clock rate).

Signals and thresholds: harness.core.signals (``gpu_signals``). A reading this GPU or driver
does not offer is null, never 0, and ``gpu_watch_source`` says what was read and what not.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.measure.power import nvml, nvml_match

# NVBench drops a sample taken while the SM clock is below this share of the device's clock
# (nvbench docs/cli_help.md, --throttle-threshold, default 75).
LOW_CLOCK_SHARE = 0.75
PROCESS_COLUMNS = ("gpu_foreign_processes", "gpu_foreign_memory_bytes")
WINDOW_COLUMNS = (
    "gpu_power_capped_share",
    "gpu_thermal_share",
    "gpu_power_brake_share",
    "sm_clock_mhz_min",
    "sm_clock_mhz_median",
    "sm_clock_low_share",
)
COLUMNS = (*PROCESS_COLUMNS, *WINDOW_COLUMNS, "gpu_watch_source")


def own_pids(status: Path = Path("/proc/self/status")) -> set[int]:
    """This process's pid in its own and every outer PID namespace /proc shows (``NSpid``)."""
    pids = {os.getpid()}
    with contextlib.suppress(OSError, ValueError):
        for line in status.read_text().splitlines():
            if line.startswith("NSpid:"):
                pids.update(int(p) for p in line.split()[1:])
    return pids


def foreign(
    listed: dict[int, int | None], mine: set[int], holds_context: bool
) -> tuple[int | None, int | None, str | None]:
    """(other processes, their GPU memory in bytes, a note) from one NVML process list
    (pid -> used bytes): ``mine`` are this process's pids, ``holds_context`` whether it has a
    CUDA context now. Unknown is None, with the note saying why."""
    others = {pid: used for pid, used in listed.items() if pid not in mine}
    if holds_context and len(others) == len(listed):
        if not listed:
            return (
                None,
                None,
                ("NVML lists no process, not even this one: process lists are not visible here"),
            )
        # PIDs of another namespace: one of them is this process, which one is not known
        note = "this process is not in NVML's list (another PID namespace): one context is its own"
        return len(listed) - 1, None, note
    used = [u for u in others.values() if u is not None]
    memory = sum(used) if len(used) == len(others) else None
    return len(others), memory, None


class GpuWatch:
    """The NVML facts of one case on one GPU (see the module docstring). ``look()`` before and
    after the rounds; ``with watch.window():`` around each timed window, then
    ``window_columns()`` for that window; ``process_columns()`` for the case. Inactive (no
    columns, no source) off CUDA; without NVML every column is null and the source says why."""

    def __init__(
        self,
        device: nvml.NvmlDevice | None,
        reason: str | None = None,
        *,
        holds_context: Any = None,
        mine: set[int] | None = None,
    ) -> None:
        self.device = device
        self.reason = reason
        self.active = device is not None or reason is not None
        self._holds_context = holds_context or (lambda: True)
        self._mine = own_pids() if mine is None else mine
        self._max_sm: int | None = None
        self._seen: list[tuple[int | None, int | None]] = []
        self._notes: dict[str, str] = {}
        self._window: dict[str, Any] = {}

    @classmethod
    def for_device(cls, device: Any) -> GpuWatch:
        """The watch of a torch device: NVML's GPU matched to it by UUID (nvml_match)."""
        if getattr(device, "type", "cpu") != "cuda":
            return cls(None)
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            nvml.init_nvml()
            found = nvml_match.match_device(index, nvml_match.torch_cuda_identity(index))
        except nvml.NvmlUnavailable as err:
            return cls(None, err.reason)
        return cls(found, holds_context=torch.cuda.is_initialized)

    def _try(self, what: str, read: Any) -> Any:
        if self.device is None:
            return None
        try:
            return read()
        except nvml.NvmlUnavailable as err:
            self._notes[what] = err.reason
            return None

    # -- other processes ---------------------------------------------------------------------

    def look(self) -> None:
        """One look at the processes on the GPU."""
        listed = self._try("processes", lambda: self.device.processes())
        if listed is None:
            return
        count, memory, note = foreign(listed, self._mine, bool(self._holds_context()))
        if note:
            self._notes["processes"] = note
        self._seen.append((count, memory))

    def process_columns(self, looks: int = 2) -> dict[str, Any]:
        """The most other processes seen at one of the last ``looks`` looks (before and after
        one measurement), and their memory then."""
        if not self.active:
            return {}
        known = [s for s in self._seen[-looks:] if s[0] is not None]
        if not known:
            return dict.fromkeys(PROCESS_COLUMNS)
        count, memory = max(known, key=lambda s: (s[0], s[1] or 0))
        return {"gpu_foreign_processes": count, "gpu_foreign_memory_bytes": memory}

    # -- one timed window ----------------------------------------------------------------------

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        """Read the clock-event counters at both ends and the SM clock samples in between."""
        start = self._try("clock-event counters", lambda: self.device.throttle_ns())
        t0 = time.perf_counter()
        try:
            yield
        finally:
            wall_s = time.perf_counter() - t0
            end = self._try("clock-event counters", lambda: self.device.throttle_ns())
            self._window = self._shares(start, end, wall_s)
            since = start[1] if start is not None else None
            samples = None
            if since is not None:
                samples = self._try("SM clock samples", lambda: self.device.sm_clock_samples(since))
            self._window.update(self._clock(samples))

    def _shares(self, start: Any, end: Any, wall_s: float) -> dict[str, Any]:
        out = dict.fromkeys(WINDOW_COLUMNS[:3])
        if start is None or end is None:
            return out
        (c0, t0), (c1, t1) = start, end
        span_us = (t1 - t0) if t0 is not None and t1 is not None and t1 > t0 else wall_s * 1e6
        if span_us <= 0:
            return out

        def share(*names: str) -> float | None:
            deltas = [
                c1[n] - c0[n] for n in names if c0.get(n) is not None and c1.get(n) is not None
            ]
            return None if not deltas else min(1.0, max(deltas) / 1e3 / span_us)

        if all(v is None for v in c0.values()):
            self._notes["clock-event counters"] = "not counted by this GPU or driver"
        out["gpu_power_capped_share"] = share("sw_power_cap")
        out["gpu_thermal_share"] = share("sw_thermal_slowdown", "hw_thermal_slowdown")
        out["gpu_power_brake_share"] = share("hw_power_brake_slowdown")
        return out

    def _clock(self, samples: list[tuple[int, int]] | None) -> dict[str, Any]:
        out = dict.fromkeys(WINDOW_COLUMNS[3:])
        if not samples:
            if samples == [] and self.device is not None:
                self._notes.setdefault("SM clock samples", "the driver held no SM clock sample")
            return out
        mhz = [m for _, m in samples]
        out["sm_clock_mhz_min"] = min(mhz)
        out["sm_clock_mhz_median"] = int(statistics.median(mhz))
        if self._max_sm is None:
            self._max_sm = self._try("maximum SM clock", lambda: self.device.max_sm_clock_mhz())
        if self._max_sm:
            low = sum(m < LOW_CLOCK_SHARE * self._max_sm for m in mhz)
            out["sm_clock_low_share"] = low / len(mhz)
        return out

    def window_columns(self) -> dict[str, Any]:
        """The last window's shares and clocks (null where not read)."""
        if not self.active:
            return {}
        return {**dict.fromkeys(WINDOW_COLUMNS), **self._window, "gpu_watch_source": self.source}

    @property
    def source(self) -> str | None:
        """What was read and what not, and why."""
        if not self.active:
            return None
        if self.device is None:
            return f"not read: {self.reason}"
        text = (
            f"NVML on GPU {self.device.index} ({self.device.uuid}): process lists before and "
            "after the rounds, clock-event time counters and SM clock samples over each window"
        )
        if self._notes:
            text += "; " + "; ".join(f"{what}: {why}" for what, why in self._notes.items())
        return text


def over_windows(windows: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """A row's GPU window columns from those of the windows that speak for it (each with its
    length in seconds): the shares weighted by time (the share of their summed time), the SM
    clock's minimum over all, the median of the windows' medians; a column no window read is
    null. The source is the last window's (it names every note so far)."""
    out: dict[str, Any] = dict.fromkeys(WINDOW_COLUMNS)
    if not windows:
        return out
    for column in ("gpu_power_capped_share", "gpu_thermal_share", "gpu_power_brake_share",
                   "sm_clock_low_share"):  # fmt: skip
        known = [(w[column], s) for w, s in windows if w.get(column) is not None]
        total = sum(s for _, s in known)
        if known:
            out[column] = (
                sum(v * s for v, s in known) / total if total > 0 else max(v for v, _ in known)
            )
    lows = [w["sm_clock_mhz_min"] for w, _ in windows if w.get("sm_clock_mhz_min") is not None]
    mids = [
        w["sm_clock_mhz_median"] for w, _ in windows if w.get("sm_clock_mhz_median") is not None
    ]
    out["sm_clock_mhz_min"] = min(lows) if lows else None
    out["sm_clock_mhz_median"] = int(statistics.median(mids)) if mids else None
    out["gpu_watch_source"] = windows[-1][0].get("gpu_watch_source")
    return out
