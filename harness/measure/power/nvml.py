"""NVML through nvidia-ml-py: loading, the one error mapping, the readings of one GPU.

Everything here speaks NVML's own units (mW, mJ, MHz, degrees C, bit masks); the power
monitor converts them once, when it builds a reading.

Loading: pynvml opens ``libnvidia-ml.so.1`` by name. ``init_nvml(library=PATH)`` (or the
environment variable ``CNNBENCH_NVML_LIBRARY``) first loads the library at PATH; a library whose
SONAME is ``libnvidia-ml.so.1`` is then the one pynvml's own load resolves to, because the
dynamic loader matches the SONAME of objects already loaded. The tests use this to put a
stand-in library (tests/nvml_stub) under the real bindings. ``init_nvml`` checks that pynvml
really got that library.

Which NVML device a CUDA device is: harness/measure/nvml_match.py.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pynvml

LIBRARY_ENV = "CNNBENCH_NVML_LIBRARY"
_OFF_HINT = "or pass --cnn-power=off"


class NvmlUnavailable(Exception):
    """NVML cannot give what was asked; ``reason`` says why and how to fix it."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    @property
    def unsupported(self) -> bool:
        """True for errors that leave one optional reading null (not supported, no permission,
        function missing in this driver), False for those that stop the measurement."""
        return self.code in _OPTIONAL_CODES


_REASONS: dict[int, str] = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: (
        "NVML library not found (no NVIDIA driver on this machine); "
        f"install the NVIDIA driver {_OFF_HINT}"
    ),
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: (
        f"the NVIDIA kernel driver is not loaded; load it (nvidia-smi should work) {_OFF_HINT}"
    ),
    pynvml.NVML_ERROR_NOT_SUPPORTED: "{what} is not supported by this GPU or driver",
    pynvml.NVML_ERROR_NO_PERMISSION: (
        "no permission to read {what} (NVML_ERROR_NO_PERMISSION); "
        f"run with access to the GPU's device files {_OFF_HINT}"
    ),
    pynvml.NVML_ERROR_GPU_IS_LOST: (
        "the GPU fell off the bus while reading {what} (NVML_ERROR_GPU_IS_LOST); "
        "check the machine (Xid errors in dmesg) and reset the GPU"
    ),
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: (
        "the driver's NVML has no function for {what} (driver too old); update the driver"
    ),
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "NVML and the kernel driver differ in version (driver updated without a reboot?); "
        "reboot or reload the driver"
    ),
    pynvml.NVML_ERROR_UNINITIALIZED: "NVML was not initialised when reading {what}",
    pynvml.NVML_ERROR_INSUFFICIENT_POWER: (
        "the GPU lacks external power (NVML_ERROR_INSUFFICIENT_POWER); check its power cables"
    ),
}


def nvml_reason(err: pynvml.NVMLError, what: str) -> str:
    """The one place that turns an NVML error into a reason a user can act on."""
    code = getattr(err, "value", None)
    template = _REASONS.get(code) if isinstance(code, int) else None
    if template is None:
        return f"NVML error while reading {what}: {err} (code {code})"
    return template.format(what=what)


@contextlib.contextmanager
def nvml_errors(what: str) -> Iterator[None]:
    """Run NVML calls; an ``NVMLError`` leaves as ``NvmlUnavailable`` with its mapped reason."""
    try:
        yield
    except pynvml.NVMLError as err:
        raise NvmlUnavailable(nvml_reason(err, what), getattr(err, "value", None)) from err


class _Session:
    """The process's one NVML initialisation (NVML is per process; init is reference counted).

    ``cache`` holds facts measured about devices while NVML is up (the energy counter's update
    period, by UUID); shutting NVML down forgets them.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = False
        self.preloaded: ctypes.CDLL | None = None
        self.preloaded_path: str | None = None
        self.cache: dict[str, object] = {}

    def init(self, library: str | os.PathLike[str] | None) -> None:
        raw = library if library is not None else os.environ.get(LIBRARY_ENV) or None
        path = None if raw is None else os.path.realpath(os.fspath(raw))
        with self.lock:
            if path is not None and self.preloaded_path not in (None, path):
                raise NvmlUnavailable(
                    f"this process has already loaded the NVML library {self.preloaded_path}; "
                    f"it cannot switch to {path} (one NVML library per process)"
                )
            if self.active:
                return
            if path is not None and self.preloaded is None:
                try:
                    self.preloaded = ctypes.CDLL(path)
                except OSError as err:
                    raise NvmlUnavailable(
                        f"NVML library {path} could not be loaded: {err}"
                    ) from err
                self.preloaded_path = path
            with nvml_errors("the NVML library"):
                pynvml.nvmlInit()
            loaded = pynvml.nvmlLib
            if self.preloaded is not None and getattr(loaded, "_handle", None) != getattr(
                self.preloaded, "_handle", None
            ):
                pynvml.nvmlShutdown()
                raise NvmlUnavailable(
                    f"pynvml did not load the NVML library at {path}: its SONAME must be "
                    "libnvidia-ml.so.1 and no other NVML library may be loaded before it"
                )
            self.active = True

    def shutdown(self) -> None:
        with self.lock:
            self.cache.clear()
            if self.active:
                self.active = False
                with contextlib.suppress(pynvml.NVMLError):  # already gone: nothing to do
                    pynvml.nvmlShutdown()


_SESSION = _Session()
atexit.register(_SESSION.shutdown)


def init_nvml(library: str | os.PathLike[str] | None = None) -> None:
    """Initialise NVML once per process (optionally from the library file ``library``).

    Raises ``NvmlUnavailable`` with the reason (no driver, no permission, ...).
    """
    _SESSION.init(library)


def shutdown_nvml() -> None:
    """Shut NVML down; the next ``init_nvml`` initialises it again (and re-reads the stub)."""
    _SESSION.shutdown()


def library_path() -> str | None:
    """The NVML library file this process loaded by path (``init_nvml(library=...)`` or
    ``$CNNBENCH_NVML_LIBRARY``), or None for the driver's own."""
    return _SESSION.preloaded_path


def session_cache() -> dict[str, object]:
    """A dict for facts measured about devices in this NVML session (cleared at shutdown)."""
    return _SESSION.cache


# -- clock-event (throttle) reasons ------------------------------------------------------------

CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (pynvml.nvmlClocksEventReasonGpuIdle, "gpu_idle"),
    (pynvml.nvmlClocksEventReasonApplicationsClocksSetting, "applications_clocks_setting"),
    (pynvml.nvmlClocksEventReasonSwPowerCap, "sw_power_cap"),
    (pynvml.nvmlClocksEventReasonHwSlowdown, "hw_slowdown"),
    (pynvml.nvmlClocksEventReasonSyncBoost, "sync_boost"),
    (pynvml.nvmlClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown"),
    (pynvml.nvmlClocksEventReasonHwThermalSlowdown, "hw_thermal_slowdown"),
    (pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"),
    (pynvml.nvmlClocksEventReasonDisplayClockSetting, "display_clock_setting"),
)


def decode_clock_event_reasons(mask: int) -> str:
    """NVML's clock-event (throttle) bit mask as comma-separated names; ``none`` for 0."""
    names = [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]
    known = 0
    for bit, _ in CLOCK_EVENT_REASONS:
        known |= bit
    if mask & ~known:
        names.append(f"unknown_0x{mask & ~known:x}")
    return ",".join(names) if names else "none"


# -- devices -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NvmlDevice:
    """One GPU as NVML sees it, and the calls the power monitor makes on it (NVML units)."""

    handle: object
    index: int
    uuid: str
    name: str
    pci_bus_id: str
    matched_by: str

    def instant_power_mw(self) -> tuple[int, int]:
        """Instant power (NVML_FI_DEV_POWER_INSTANT, GPU scope) in mW and its timestamp in us."""
        field = (pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_POWER_SCOPE_GPU)
        with nvml_errors("the instant power field"):
            value = pynvml.nvmlDeviceGetFieldValues(self.handle, [field])[0]
            if value.nvmlReturn != pynvml.NVML_SUCCESS:
                raise pynvml.NVMLError(value.nvmlReturn)
        return _field_int(value), int(value.timestamp)

    def power_usage_mw(self) -> int:
        """nvmlDeviceGetPowerUsage in mW (a 1 s average on Ampere except GA100, and newer)."""
        with nvml_errors("the power usage"):
            return int(pynvml.nvmlDeviceGetPowerUsage(self.handle))

    def total_energy_mj(self) -> int:
        """The energy counter in mJ since the driver was loaded (Volta and newer). On a Grace
        Hopper module it counts the whole module (GPU, CPU, memory): see ``is_c2c_module``."""
        with nvml_errors("the total energy counter"):
            return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def gpu_energy_mj(self) -> int:
        """The GPU-only energy in mJ since the driver was loaded: field NVML_FI_DEV_ENERGY (191)
        with scope NVML_POWER_SCOPE_GPU (nvml.h: "Same as NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
        for the GPU"; scope 1 would be the module). Drivers without the field answer
        NOT_SUPPORTED."""
        field = (pynvml.NVML_FI_DEV_ENERGY, pynvml.NVML_POWER_SCOPE_GPU)
        with nvml_errors("the GPU energy field"):
            value = pynvml.nvmlDeviceGetFieldValues(self.handle, [field])[0]
            if value.nvmlReturn != pynvml.NVML_SUCCESS:
                raise pynvml.NVMLError(value.nvmlReturn)
        return _field_int(value)

    def is_c2c_module(self) -> bool:
        """True on a GPU joined to its CPU by NVLink-C2C in one module (Grace Hopper, Grace
        Blackwell): ``nvmlDeviceGetC2cModeInfoV().isC2cEnabled``, the test zeus uses. A GPU or
        driver without the query (NOT_SUPPORTED, or a driver that predates it) is a discrete
        GPU."""
        try:
            with nvml_errors("the C2C mode"):
                info = pynvml.nvmlDeviceGetC2cModeInfoV(self.handle)
        except NvmlUnavailable as err:
            if err.unsupported:
                return False
            raise
        return bool(info.isC2cEnabled)

    def state(self) -> dict[str, int | None]:
        """SM and memory clocks (MHz), temperature (C), power limit (mW), clock-event mask.

        Each is None where this GPU or driver does not report it; a lost GPU raises.
        """
        calls: dict[str, Callable[[], int]] = {
            "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(
                self.handle, pynvml.NVML_CLOCK_SM
            ),
            "mem_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(
                self.handle, pynvml.NVML_CLOCK_MEM
            ),
            "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(
                self.handle, pynvml.NVML_TEMPERATURE_GPU
            ),
            "power_limit_mw": lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(self.handle),
            "clock_event_mask": self._clock_event_mask,
        }
        out: dict[str, int | None] = {}
        for key, call in calls.items():
            try:
                with nvml_errors(key):
                    out[key] = int(call())
            except NvmlUnavailable as err:
                if err.code not in _OPTIONAL_CODES:
                    raise
                out[key] = None
        return out

    def _clock_event_mask(self) -> int:
        try:
            return pynvml.nvmlDeviceGetCurrentClocksEventReasons(self.handle)
        except pynvml.NVMLError_FunctionNotFound:  # drivers before R535 use the old name
            return pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(self.handle)

    # -- what else runs on the GPU and what held it back (harness.measure.gpu_watch) -----------

    def cpu_affinity(self, n_cpus: int) -> list[int]:
        """The CPUs nearest the GPU (its NUMA node's, nvmlDeviceGetCpuAffinity), of CPUs
        0..``n_cpus``-1."""
        words = max(1, (int(n_cpus) + 63) // 64)
        with nvml_errors("the GPU's CPU affinity"):
            mask = pynvml.nvmlDeviceGetCpuAffinity(self.handle, words)
        return [64 * w + b for w in range(words) for b in range(64) if (int(mask[w]) >> b) & 1]

    def processes(self) -> dict[int, int | None]:
        """The processes holding a context on the GPU (compute and graphics lists): pid ->
        used GPU memory in bytes (None where the driver cannot say)."""
        out: dict[int, int | None] = {}
        with nvml_errors("the GPU's running processes"):
            for listing in (_compute_processes, pynvml.nvmlDeviceGetGraphicsRunningProcesses_v3):
                for p in listing(self.handle):
                    used = getattr(p, "usedGpuMemory", None)
                    known = out.get(int(p.pid))
                    out[int(p.pid)] = used if known is None else max(known, used or 0)
        return out

    def throttle_ns(self) -> tuple[dict[str, int | None], int | None]:
        """NVML's clock-event time counters (ns since the driver loaded, per reason) in one
        call, and the reading's timestamp (us since 1970); a reason this driver does not count
        is None."""
        with nvml_errors("the clock-event time counters"):
            values = pynvml.nvmlDeviceGetFieldValues(
                self.handle, [field for field, _ in THROTTLE_COUNTERS]
            )
        out: dict[str, int | None] = {}
        stamp = None
        for (_, name), value in zip(THROTTLE_COUNTERS, values, strict=True):
            if value.nvmlReturn == pynvml.NVML_SUCCESS:
                out[name] = _field_int(value)
                stamp = int(value.timestamp) if stamp is None else max(stamp, value.timestamp)
            elif value.nvmlReturn in _OPTIONAL_CODES:
                out[name] = None
            else:
                raise NvmlUnavailable(
                    nvml_reason(pynvml.NVMLError(value.nvmlReturn), f"the {name} counter"),
                    value.nvmlReturn,
                )
        return out, stamp

    def sm_clock_samples(self, since_us: int) -> list[tuple[int, int]]:
        """The driver's SM clock samples (us since 1970, MHz) taken after ``since_us``
        (nvmlDeviceGetSamples, NVML_PROCESSOR_CLK_SAMPLES); [] when it holds none."""
        try:
            with nvml_errors("the SM clock samples"):
                _, samples = pynvml.nvmlDeviceGetSamples(
                    self.handle, pynvml.NVML_PROCESSOR_CLK_SAMPLES, int(since_us)
                )
        except NvmlUnavailable as err:
            if err.code == pynvml.NVML_ERROR_NOT_FOUND:
                return []
            raise
        return [(int(s.timeStamp), int(s.sampleValue.uiVal)) for s in samples]

    def max_sm_clock_mhz(self) -> int:
        """The GPU's highest SM clock (nvmlDeviceGetMaxClockInfo), MHz."""
        with nvml_errors("the maximum SM clock"):
            return int(pynvml.nvmlDeviceGetMaxClockInfo(self.handle, pynvml.NVML_CLOCK_SM))


def _compute_processes(handle: object) -> list:
    """The compute list (_v3, else _v2 on drivers before it)."""
    try:
        return pynvml.nvmlDeviceGetComputeRunningProcesses_v3(handle)
    except pynvml.NVMLError_FunctionNotFound:
        return pynvml.nvmlDeviceGetComputeRunningProcesses_v2(handle)


# NVML's clock-event time counters, ns the clocks were held down for each reason (nvml.h:
# NVML_FI_DEV_CLOCKS_EVENT_REASON_*; the sw power cap one is NVML_FI_DEV_PERF_POLICY_POWER).
THROTTLE_COUNTERS: tuple[tuple[int, str], ...] = (
    (pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP, "sw_power_cap"),
    (pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN, "sw_thermal_slowdown"),
    (pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN, "hw_thermal_slowdown"),
    (pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake_slowdown"),
)


# Errors that make one optional reading null without stopping the measurement.
_OPTIONAL_CODES = frozenset(
    {
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_NO_PERMISSION,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_INVALID_ARGUMENT,
    }
)


def _field_int(value: pynvml.c_nvmlFieldValue_t) -> int:
    kind = value.valueType
    if kind == pynvml.NVML_VALUE_TYPE_DOUBLE:
        return round(value.value.dVal)
    if kind == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG:
        return int(value.value.ulVal)
    if kind == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
        return int(value.value.ullVal)
    if kind == pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        return int(value.value.sllVal)
    if kind == pynvml.NVML_VALUE_TYPE_SIGNED_INT:
        return int(value.value.siVal)
    return int(value.value.uiVal)


def describe(index: int, handle: object, matched_by: str) -> NvmlDevice:
    """The ``NvmlDevice`` of NVML index ``index`` (UUID, name and PCI bus id read from NVML)."""
    with nvml_errors(f"NVML device {index}"):
        uuid = pynvml.nvmlDeviceGetUUID(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        pci = pynvml.nvmlDeviceGetPciInfo(handle).busId
    pci = pci.decode() if isinstance(pci, bytes) else str(pci)
    return NvmlDevice(handle, index, uuid, name, pci, matched_by)
