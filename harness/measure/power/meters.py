"""Power and energy over a case's timed window: NVML on CUDA GPUs, RAPL on CPUs, else null.

The runner wraps its timed rounds::

    monitor = make_power_monitor(device, mode="auto", sample_hz=100.0)
    # lengthen the rounds so that the window lasts at least monitor.min_window_s
    monitor.start(); ...timed rounds...; reading = monitor.stop()
    row.update(reading.to_columns(rounds * batch_size))

Energy comes from a hardware counter read at start and stop (NVML's GPU energy field or its
total-energy counter, RAPL's package counters); a background thread samples power at
``sample_hz`` for the trace and the maximum. A counter moves in steps, so a window shorter than
``min_window_s`` (at least ``counter step / ENERGY_QUANTISATION_TARGET``: 2% error at most), or
a counter that did not move, gives null energy with the reason, never 0 J. Nothing here raises
because power cannot be measured: the monitor is then a ``NullPowerMonitor`` whose readings
say why (``power_source``).

Units: NVML gives mW and mJ, RAPL uJ; they are converted here, once, into W and J.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import InvalidInputError
from harness.measure.power import nvml, nvml_match, rapl
from harness.measure.power.monitor import Clock, NullPowerMonitor, PowerMonitor, SampledMonitor
from harness.measure.power.readers import Raw, read_nvml_power, read_rapl
from harness.measure.power.reading import (
    MW_PER_W,
    DeviceState,
    PowerReading,
    hold_integral,
    hold_mean,
)

if TYPE_CHECKING:
    import torch

_MJ_PER_J = 1000.0
_UJ_PER_J = 1_000_000.0
MAX_SAMPLE_HZ = 1000.0
DEFAULT_MIN_WINDOW_S = 1.0
# The energy of a window read from a counter that moves every `step` seconds is off by at most
# one step's energy (each read misses up to one step; the two misses partly cancel): a relative
# error of at most step / window at steady power. Windows are made long enough for 2%.
ENERGY_QUANTISATION_TARGET = 0.02
# RAPL's energy status counters update about every 1 ms (Intel SDM vol. 3B, 15.10.1): the step
# of their worst-case quantisation error.
RAPL_UPDATE_S = 0.001
# The records (power_reading.py) and the monitor base classes (monitor.py) are re-exported.
__all__ = [
    "Clock",
    "DeviceState",
    "NullPowerMonitor",
    "NvmlPowerMonitor",
    "PowerMonitor",
    "PowerReading",
    "RaplPowerMonitor",
    "make_power_monitor",
]


def measure_counter_step(
    read: Callable[[], int],
    *,
    changes: int = 3,
    timeout_s: float = 1.5,
    poll_s: float = 0.001,
) -> float | None:
    """Seconds between updates of a counter: ``read`` is polled every ``poll_s`` until it has
    changed ``changes`` times; the longest interval between two observed changes is returned
    (each change is seen within about ``poll_s``). None when it changed fewer times within
    ``timeout_s`` (a counter that stands still, or moves more slowly than that)."""
    end = time.perf_counter() + timeout_s
    last = read()
    moments: list[float] = []
    while len(moments) < changes and time.perf_counter() < end:
        time.sleep(poll_s)
        value = read()
        if value != last:
            moments.append(time.perf_counter())
            last = value
    if len(moments) < changes:
        return None
    return max(b - a for a, b in itertools.pairwise(moments))


class NvmlPowerMonitor(SampledMonitor):
    """An NVIDIA GPU through NVML: energy counter, instant (or averaged) power, state.

    Energy, by preference: the GPU-scope energy field (NVML_FI_DEV_ENERGY, scope GPU:
    ``energy_scope = "gpu"``); else the total-energy counter (``"module"`` on a Grace Hopper
    style C2C module, where it counts GPU, CPU and memory together; ``"gpu"`` elsewhere); else
    the power trace integrated (GPUs before Volta). The counter's update period is measured
    once per GPU and NVML session (``counter_step_s``, unless given), and ``min_window_s`` is
    raised to ``counter_step_s / ENERGY_QUANTISATION_TARGET``.
    """

    def __init__(
        self,
        device: nvml.NvmlDevice,
        *,
        sample_hz: float = 100.0,
        clock: Clock = time.perf_counter,
        min_window_s: float = DEFAULT_MIN_WINDOW_S,
        counter_step_s: float | None = None,
        sampler: str = "thread",
    ) -> None:
        super().__init__(
            sample_hz=sample_hz, clock=clock, min_window_s=min_window_s, sampler=sampler
        )
        self.device = device
        self._instant = _supported(device.instant_power_mw)
        if not self._instant and not _supported(device.power_usage_mw):
            raise nvml.NvmlUnavailable(
                f"{device.name} reports no power: neither the instant power field nor "
                "nvmlDeviceGetPowerUsage is supported by this GPU or driver"
            )
        self._energy: Callable[[], int] | None = None
        if _supported(device.gpu_energy_mj):
            self._energy, energy, self.energy_scope = (
                device.gpu_energy_mj,
                "gpu_energy_field",
                "gpu",
            )
        elif _supported(device.total_energy_mj):
            self._energy, energy = device.total_energy_mj, "energy_counter"
            self.energy_scope = "module" if device.is_c2c_module() else "gpu"
        else:
            energy, self.energy_scope = "trace_integral", "gpu"
        self._counter = self._energy is not None
        self.source = f"nvml:{energy}+{'instant_field' if self._instant else 'power_usage'}"
        self.counter_step_s: float | None = None
        self.counter_step_source: str | None = None
        if self._energy is not None:
            self._set_counter_step(counter_step_s)
        self._state0 = self._state1 = DeviceState()
        self._e0 = self._e1 = 0
        self._last: int | None = None
        self.dropped = 0  # reads of 0 mW or sporadic NOT_SUPPORTED, left out of the trace
        self._prepare_sampler()

    def _set_counter_step(self, given: float | None) -> None:
        """The counter's update period (given, measured, or assumed) and the window it needs."""
        assert self._energy is not None
        if given is not None:
            step, how = given, "given"
        else:
            cache = nvml.session_cache()
            key = f"counter_step_s:{self.device.uuid}:{self.source}"
            if key not in cache:
                cache[key] = measure_counter_step(self._energy)
            measured = cache[key]
            if isinstance(measured, float):
                step, how = measured, "measured"
            else:  # never an assumed step: the energy's error would be unknown (issue 22)
                step = None
                how = "not measured: the counter did not move 3 times in 1.5 s while timing it"
        self.counter_step_s, self.counter_step_source = step, how
        if step is not None:
            self.min_window_s = max(self.min_window_s, step / ENERGY_QUANTISATION_TARGET)

    def _begin(self) -> None:
        self._last, self.dropped = None, 0
        self._state0 = DeviceState.from_nvml(self.device.state())
        if self._energy is not None:
            self._e0 = self._energy()

    def _read(self) -> Raw:
        return read_nvml_power(self.device, self._instant)

    def reader_spec(self) -> dict[str, object]:
        return {
            "kind": "nvml",
            "library": nvml.library_path(),
            "uuid": self.device.uuid,
            "instant": self._instant,
        }

    def _ingest(self, now: float, raw: Raw) -> None:
        if raw[0] == "unsupported":
            self.dropped += 1  # NVML polled fast sometimes answers NOT_SUPPORTED once
            return
        _, mw, stamp = raw
        self._polls += 1
        if stamp == self._last:
            return
        self._last = stamp
        if mw <= 0:  # no real GPU draws 0 W: an invalid read
            self.dropped += 1
            return
        self._t.append(now)
        self._p.append(mw / MW_PER_W)

    def _end(self) -> None:
        if self._energy is not None:
            self._e1 = self._energy()
        self._state1 = DeviceState.from_nvml(self.device.state())

    def _finish(self, window_s: float, reading: PowerReading) -> PowerReading:
        reading.start, reading.end = self._state0, self._state1
        reading.energy_scope = self.energy_scope
        counter = "NVML power trace"
        if self._counter and self.counter_step_s is not None:
            counter = (
                f"NVML energy counter (it moves every {self.counter_step_s:.3f} s, "
                f"{self.counter_step_source}; a shorter window could err by more than "
                f"{ENERGY_QUANTISATION_TARGET:.0%})"
            )
        reason = self._window_reason(window_s, counter)
        if self._counter and self.counter_step_s is None:
            reason = (
                "the NVML energy counter's update period could not be measured (it did not "
                "move 3 times in 1.5 s): energy is not reported, its error would be unknown"
            )
        elif reason is None and self._counter:
            delta_mj = self._e1 - self._e0
            if delta_mj > 0:
                reading.energy_j = delta_mj / _MJ_PER_J
            else:
                reason = f"the NVML energy counter did not move over the {window_s:.3f} s window"
        elif reason is None and len(self._t):
            reading.energy_j = hold_integral(self._t, self._p, window_s)
        if reading.energy_j is not None and self._counter:
            reading.power_w_mean = reading.energy_j / window_s
            # one update's energy at the window's mean power, over the window's: a bound
            assert self.counter_step_s is not None
            reading.quantisation_rel = self.counter_step_s / window_s
        else:
            reading.power_w_mean = hold_mean(self._t, self._p, window_s)
        if len(self._p):
            reading.power_w_max = max(self._p)
        elif reason is None:
            reason = "no valid power reading in the window"
        reading.reason = reason
        return reading


class RaplPowerMonitor(SampledMonitor):
    """CPU package energy from RAPL counters (summed over packages)."""

    def __init__(
        self,
        zones: list[rapl.RaplZone],
        *,
        sample_hz: float = 100.0,
        clock: Clock = time.perf_counter,
        min_window_s: float = DEFAULT_MIN_WINDOW_S,
        sampler: str = "thread",
    ) -> None:
        super().__init__(
            sample_hz=sample_hz, clock=clock, min_window_s=min_window_s, sampler=sampler
        )
        self.zones = zones
        n = len(zones)
        self.source = f"rapl:package_counter({n} package{'s' if n != 1 else ''})"
        self._last: list[int] | None = None
        self._last_t = 0.0
        self._acc_uj = 0
        self._prepare_sampler()

    def _begin(self) -> None:
        self._last, self._acc_uj = None, 0

    def _read(self) -> Raw:
        return read_rapl(self.zones)

    def reader_spec(self) -> dict[str, object]:
        return {
            "kind": "rapl",
            "zones": [[z.name, str(z.energy_path), z.max_energy_range_uj] for z in self.zones],
        }

    def _ingest(self, now: float, raw: Raw) -> None:
        if raw[0] == "torn":
            return  # a torn read: the next poll covers the interval
        values = list(raw[1])
        self._polls += 1
        if self._last is None:
            self._last, self._last_t = values, now
            return
        delta = sum(
            rapl.counter_delta_uj(b, a, z.max_energy_range_uj)
            for b, a, z in zip(self._last, values, self.zones, strict=True)
        )
        if delta == 0:
            return  # the counters have not moved since the last poll: keep the interval open
        self._acc_uj += delta
        if now > self._last_t:
            self._t.append(now)
            self._p.append(delta / _UJ_PER_J / (now - self._last_t))
        self._last, self._last_t = values, now

    def _finish(self, window_s: float, reading: PowerReading) -> PowerReading:
        reading.energy_scope = "package"
        reason = self._window_reason(window_s, "RAPL energy counters")
        if self._acc_uj > 0 and window_s > 0:  # the counters move every ~1 ms: a mean even so
            reading.power_w_mean = self._acc_uj / _UJ_PER_J / window_s
            if reason is None:
                reading.energy_j = self._acc_uj / _UJ_PER_J
                reading.quantisation_rel = RAPL_UPDATE_S / window_s
        elif reason is None:
            reason = f"the RAPL counters did not move over the {window_s:.3f} s window"
        if len(self._p):
            reading.power_w_max = max(self._p)
        reading.reason = reason
        return reading


def _supported(read: Callable[[], object]) -> bool:
    try:
        read()
    except nvml.NvmlUnavailable as err:
        if err.unsupported:
            return False
        raise
    return True


def _parse_device(device: torch.device | str) -> tuple[str, int | None]:
    text = str(device).strip().lower()
    kind, _, index = text.partition(":")
    if not kind.isalpha() or (index and not index.isdigit()):
        raise InvalidInputError(f"device {device!r} is not a device like 'cpu' or 'cuda:0'")
    return kind, int(index) if index else None


def _current_cuda_index() -> int:
    import torch

    return torch.cuda.current_device() if torch.cuda.is_available() else 0


def make_power_monitor(
    device: torch.device | str,
    *,
    mode: str = "auto",
    sample_hz: float = 100.0,
    min_window_s: float = DEFAULT_MIN_WINDOW_S,
    nvml_library: str | Path | None = None,
    powercap_root: str | Path | None = None,
    cuda_identity: Callable[[int], nvml_match.CudaIdentity | None] = nvml_match.torch_cuda_identity,
    clock: Clock = time.perf_counter,
    counter_step_s: float | None = None,
    sampler: str | None = None,
) -> PowerMonitor:
    """The monitor for ``device``: NVML on CUDA, RAPL on CPU, else one that says why not.

    ``mode`` is ``auto`` or ``off``; ``sample_hz`` the trace rate in Hz (0 < hz <= 1000);
    ``min_window_s`` the shortest window whose energy is reported, in s (an NVML monitor raises
    it to ``counter_step_s / ENERGY_QUANTISATION_TARGET``; ``counter_step_s``, the energy
    counter's update period, is measured when None). ``sampler`` is where power is polled
    during a window: ``process`` (a child process: its polls never hold this process's GIL) or
    ``thread``; None: ``process`` with the default clock, ``thread`` with any other (a child
    stamps its polls with time.perf_counter). A child that cannot start falls back to the
    thread, saying so in ``monitor.sampler_note``. ``nvml_library``
    (default ``$CNNBENCH_NVML_LIBRARY``, else the driver's libnvidia-ml.so.1) and
    ``powercap_root`` (default ``$CNNBENCH_POWERCAP_ROOT``, else /sys/class/powercap) point at
    other sources; ``cuda_identity`` and ``clock`` replace torch's device query and
    time.perf_counter (for tests).
    """
    if mode not in ("auto", "off"):
        raise InvalidInputError(f"power mode must be 'auto' or 'off', got {mode!r}")
    ok_hz = isinstance(sample_hz, (int, float)) and 0 < sample_hz <= MAX_SAMPLE_HZ
    if not ok_hz:
        raise InvalidInputError(
            f"power sample rate must be in (0, {MAX_SAMPLE_HZ:g}] Hz, got {sample_hz!r}"
        )
    if not (isinstance(min_window_s, (int, float)) and 0 <= min_window_s < math.inf):
        raise InvalidInputError(f"min_window_s must be >= 0 seconds, got {min_window_s!r}")
    kind, index = _parse_device(device)
    if mode == "off":
        return NullPowerMonitor("disabled by --cnn-power=off", kind="off")
    options = {
        "sample_hz": float(sample_hz),
        "clock": clock,
        "min_window_s": float(min_window_s),
        "sampler": sampler or ("process" if clock is time.perf_counter else "thread"),
    }
    if kind == "cuda":
        try:
            nvml.init_nvml(nvml_library)
            cuda_index = _current_cuda_index() if index is None else index
            try:
                identity = cuda_identity(cuda_index)
            except RuntimeError:  # torch could not query the device: match without its UUID
                identity = None
            found = nvml_match.match_device(cuda_index, identity)
            return NvmlPowerMonitor(found, counter_step_s=counter_step_s, **options)
        except nvml.NvmlUnavailable as err:
            return NullPowerMonitor(err.reason)
    if kind == "cpu":
        root = Path(powercap_root or os.environ.get(rapl.ROOT_ENV) or rapl.POWERCAP_ROOT)
        try:
            return RaplPowerMonitor(rapl.find_package_zones(root), **options)
        except rapl.RaplUnavailable as err:
            return NullPowerMonitor(err.reason)
    return NullPowerMonitor(f"no power source for {kind} devices (NVML covers cuda, RAPL cpu)")
