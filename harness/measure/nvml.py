"""NVML through nvidia-ml-py: loading, the one error mapping, device matching, raw readings.

Everything here speaks NVML's own units (mW, mJ, MHz, degrees C, bit masks); the power
monitor converts them once, when it builds a reading.

Loading: pynvml opens ``libnvidia-ml.so.1`` by name. ``init_nvml(library=PATH)`` (or the
environment variable ``CNNBENCH_NVML_LIBRARY``) first loads the library at PATH; a library whose
SONAME is ``libnvidia-ml.so.1`` is then the one pynvml's own load resolves to, because the
dynamic loader matches the SONAME of objects already loaded. The tests use this to put a
stand-in library (tests/nvml_stub) under the real bindings. ``init_nvml`` checks that pynvml
really got that library.

Matching: NVML numbers every GPU of the machine in PCI order; CUDA numbers only the GPUs in
``CUDA_VISIBLE_DEVICES`` (indices or UUIDs), by default fastest first. ``match_device`` finds the
NVML handle of a CUDA ordinal by UUID (torch's device properties), else by PCI bus id, else
through ``CUDA_VISIBLE_DEVICES``; an index is trusted only where it cannot be ambiguous.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Mapping
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
    """The process's one NVML initialisation (NVML is per process; init is reference counted)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = False
        self.preloaded: ctypes.CDLL | None = None

    def init(self, library: str | os.PathLike[str] | None) -> None:
        with self.lock:
            if self.active:
                return
            path = library if library is not None else os.environ.get(LIBRARY_ENV) or None
            if path is not None and self.preloaded is None:
                try:
                    self.preloaded = ctypes.CDLL(os.fspath(path))
                except OSError as err:
                    raise NvmlUnavailable(
                        f"NVML library {path} could not be loaded: {err}"
                    ) from err
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
class CudaIdentity:
    """How CUDA names one of its devices: UUID and PCI bus id, as far as torch tells."""

    uuid: str | None = None
    pci_bus_id: str | None = None


def torch_cuda_identity(index: int) -> CudaIdentity | None:
    """UUID and PCI bus id of CUDA device ``index`` from torch, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    bus, dev, dom = (getattr(props, f"pci_{k}_id", None) for k in ("bus", "device", "domain"))
    pci = None
    if isinstance(bus, int) and isinstance(dev, int) and isinstance(dom, int):
        pci = f"{dom:08X}:{bus:02X}:{dev:02X}.0"
    return CudaIdentity(uuid=str(uuid) if uuid is not None else None, pci_bus_id=pci)


def _bare_uuid(uuid: str) -> str:
    u = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if u.startswith(prefix):
            return u[len(prefix) :]
    return u


def _pci_key(bus_id: str) -> tuple[int, int, int] | None:
    try:
        dom, bus, rest = bus_id.strip().split(":")
        return int(dom, 16), int(bus, 16), int(rest.split(".")[0], 16)
    except ValueError:
        return None


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
        """The energy counter in mJ since the driver was loaded (Volta and newer)."""
        with nvml_errors("the total energy counter"):
            return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

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


def _describe(index: int, handle: object, matched_by: str) -> NvmlDevice:
    with nvml_errors(f"NVML device {index}"):
        uuid = pynvml.nvmlDeviceGetUUID(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        pci = pynvml.nvmlDeviceGetPciInfo(handle).busId
    pci = pci.decode() if isinstance(pci, bytes) else str(pci)
    return NvmlDevice(handle, index, uuid, name, pci, matched_by)


def list_devices() -> list[NvmlDevice]:
    """Every GPU NVML sees, in NVML's (PCI) order."""
    with nvml_errors("the NVML device list"):
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    return [_describe(i, h, "index") for i, h in enumerate(handles)]


def _mig_enabled(device: NvmlDevice) -> bool:
    try:
        with nvml_errors("the MIG mode"):
            current, _pending = pynvml.nvmlDeviceGetMigMode(device.handle)
    except NvmlUnavailable as err:
        if err.code in _OPTIONAL_CODES:  # GPUs before Ampere have no MIG
            return False
        raise
    return current == pynvml.NVML_DEVICE_MIG_ENABLE


def _mig_reason(what: str) -> str:
    return (
        f"{what} is a MIG instance; NVML reports power and energy only for the whole GPU, "
        "which other instances share; measure on a GPU with MIG disabled"
    )


def match_device(
    cuda_index: int, identity: CudaIdentity | None, env: Mapping[str, str] | None = None
) -> NvmlDevice:
    """The NVML device behind CUDA ordinal ``cuda_index`` of this process.

    By UUID, else PCI bus id (both from ``identity``), else through ``CUDA_VISIBLE_DEVICES``
    in ``env`` (default: os.environ). Raises ``NvmlUnavailable`` when the match is not certain
    or the GPU is in MIG mode.
    """
    env = os.environ if env is None else env
    cuda = f"cuda:{cuda_index}"
    devices = list_devices()
    found: NvmlDevice | None = None
    if identity is not None and identity.uuid:
        want = _bare_uuid(identity.uuid)
        found = next((d for d in devices if _bare_uuid(d.uuid) == want), None)
        if found is None:
            if any(_mig_enabled(d) for d in devices):
                raise NvmlUnavailable(_mig_reason(f"{cuda} (UUID {identity.uuid})"))
            raise NvmlUnavailable(f"no NVML device has the UUID of {cuda} ({identity.uuid})")
        found = _with_match(found, "uuid")
    elif identity is not None and identity.pci_bus_id:
        key = _pci_key(identity.pci_bus_id)
        found = next((d for d in devices if _pci_key(d.pci_bus_id) == key), None)
        if found is None:
            raise NvmlUnavailable(f"no NVML device has the PCI bus id of {cuda}")
        found = _with_match(found, "pci_bus_id")
    else:
        found = _match_visible(cuda_index, devices, env)
    if _mig_enabled(found):
        raise NvmlUnavailable(_mig_reason(f"{cuda} on {found.name} ({found.uuid}, MIG mode on)"))
    return found


def _with_match(device: NvmlDevice, matched_by: str) -> NvmlDevice:
    return dataclasses.replace(device, matched_by=matched_by)


def _match_visible(
    cuda_index: int, devices: list[NvmlDevice], env: Mapping[str, str]
) -> NvmlDevice:
    cuda = f"cuda:{cuda_index}"
    visible = env.get("CUDA_VISIBLE_DEVICES")
    entries = None if visible is None else [e.strip() for e in visible.split(",") if e.strip()]
    if entries is not None and cuda_index >= len(entries):
        raise NvmlUnavailable(
            f"{cuda} is not among the {len(entries)} device(s) of CUDA_VISIBLE_DEVICES={visible!r}"
        )
    entry = str(cuda_index) if entries is None else entries[cuda_index]
    if entry.upper().startswith("MIG-"):
        raise NvmlUnavailable(_mig_reason(f"{cuda} ({entry} in CUDA_VISIBLE_DEVICES)"))
    if not entry.isdigit():  # a UUID, or a unique prefix of one, as CUDA accepts
        want = _bare_uuid(entry)
        hits = [d for d in devices if _bare_uuid(d.uuid).startswith(want)]
        if len(hits) != 1:
            what = "no" if not hits else "more than one"
            raise NvmlUnavailable(f"{what} NVML device matches {entry!r} of CUDA_VISIBLE_DEVICES")
        return _with_match(hits[0], "uuid (CUDA_VISIBLE_DEVICES)")
    ordinal = int(entry)
    pci_order = env.get("CUDA_DEVICE_ORDER", "").upper() == "PCI_BUS_ID"
    if not pci_order and len(devices) > 1:
        raise NvmlUnavailable(
            f"cannot tell which NVML device is {cuda}: without torch's device UUID, a CUDA index "
            "follows CUDA's fastest-first order, not NVML's PCI order; set "
            "CUDA_DEVICE_ORDER=PCI_BUS_ID or list GPU UUIDs in CUDA_VISIBLE_DEVICES"
        )
    if ordinal >= len(devices):
        raise NvmlUnavailable(f"{cuda} maps to GPU {ordinal}, but NVML sees {len(devices)} GPU(s)")
    how = "index (CUDA_DEVICE_ORDER=PCI_BUS_ID)" if pci_order else "index (the only GPU)"
    return _with_match(devices[ordinal], how)
