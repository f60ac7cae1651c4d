"""Power and energy over a case's window (docs/POWER.md): the monitor interface and the
sampler (``monitor``, ``sampler``), the readings (``reading``), the sources (``nvml`` with the
CUDA-to-NVML match, ``rapl``), the readers a sampler polls (``readers``) and the factory with
the NVML and RAPL monitors (``meters``)."""

from __future__ import annotations

from harness.measure.power.meters import (
    Clock,
    DeviceState,
    NullPowerMonitor,
    NvmlPowerMonitor,
    PowerMonitor,
    PowerReading,
    RaplPowerMonitor,
    make_power_monitor,
)

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
