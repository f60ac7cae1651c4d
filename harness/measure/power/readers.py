"""One poll of a power source, and the poller rebuilt from a monitor's spec in the sampler's
child process (harness.measure.power.sampler): NVML's power fields, RAPL's package counters.

Imports neither torch nor the monitors, so the sampler child starts light and the monitors
(harness.measure.power.meters) and the sampler both depend on it, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.core.errors import InvalidInputError
from harness.measure.power import nvml, nvml_match, rapl

Raw = tuple  # one poll's raw reading: ("ok", ...), or a marker the monitor's _ingest knows


def read_nvml_power(device: nvml.NvmlDevice, instant: bool) -> Raw:
    """One poll of a GPU's power: ``("ok", mW, stamp)`` (the stamp is the instant field's
    timestamp, or the value itself for nvmlDeviceGetPowerUsage, which has none: a repeated value
    is then taken as the same sensor update), ``("unsupported",)`` for a sporadic
    NOT_SUPPORTED; an error that ends sampling raises ``NvmlUnavailable``."""
    try:
        if instant:
            mw, stamp = device.instant_power_mw()
        else:
            mw = stamp = device.power_usage_mw()
    except nvml.NvmlUnavailable as err:
        if not err.unsupported:
            raise
        return ("unsupported",)
    return ("ok", mw, stamp)


def read_rapl(zones: list[rapl.RaplZone]) -> Raw:
    """One poll of the RAPL package counters: ``("ok", [uJ, ...])``, ``("torn",)`` for a read
    that failed midway (the next poll covers the interval); no permission raises
    ``RaplUnavailable``."""
    try:
        return ("ok", [zone.read_uj() for zone in zones])
    except PermissionError as err:
        raise rapl.RaplUnavailable(f"RAPL counter became unreadable: {err}") from err
    except (OSError, ValueError):
        return ("torn",)


def reader_from_spec(spec: dict[str, object]) -> Callable[[], Raw]:
    """The ``_read`` of a monitor, rebuilt from its ``reader_spec()`` (in the sampler's child
    process): NVML initialised from the same library and the GPU found by UUID, or the same
    RAPL files."""
    if spec["kind"] == "nvml":
        library = spec["library"]
        nvml.init_nvml(None if library is None else str(library))
        uuid = spec["uuid"]
        device = next((d for d in nvml_match.list_devices() if d.uuid == uuid), None)
        if device is None:
            raise nvml.NvmlUnavailable(f"the sampler process finds no NVML device {uuid}")
        instant = bool(spec["instant"])
        return lambda: read_nvml_power(device, instant)
    if spec["kind"] == "rapl":
        zones = [rapl.RaplZone(str(n), Path(str(p)), int(m)) for n, p, m in spec["zones"]]  # type: ignore[attr-defined]
        return lambda: read_rapl(zones)
    raise InvalidInputError(f"unknown power reader {spec['kind']!r}")
