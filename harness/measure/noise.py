"""The machine's noise during the timed rounds: what competed for the CPU while they ran.

``NoiseProbe`` is entered around the rounds (``measure_latency``'s ``window``) and yields the
signals harness.results.validity judges:

* ``load_avg_1m_end``: the 1-minute load average when the rounds ended (the runner records
  ``load_avg_1m`` as the case starts);
* ``cpu_pressure``: the share of the rounds' wall time during which some runnable task waited
  for a CPU, from the kernel's pressure-stall information (``/proc/pressure/cpu``, "some"
  total in microseconds); null where the kernel has no PSI. It reacts within the rounds,
  where the load average lags by a minute;
* ``involuntary_switches_per_s``: this process's involuntary context switches (the scheduler
  took a CPU from one of its threads) per second of rounds, from ``getrusage``.

Reading them costs two small file reads and two system calls per window, outside the timed
region. GPU signals (SM clock, temperature, throttle reasons) come with the power reading.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

PSI_CPU = Path("/proc/pressure/cpu")

try:
    import resource
except ImportError:  # not POSIX
    resource = None  # type: ignore[assignment]


def _psi_some_us() -> int | None:
    try:
        for line in PSI_CPU.read_text().splitlines():
            if line.startswith("some"):
                return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _involuntary_switches() -> int | None:
    if resource is None:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw)


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cpu_affinity() -> str | None:
    """The CPUs this process may run on, as ranges (``0-3,8``); None where unknown."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    ranges: list[str] = []
    start = prev = cpus[0] if cpus else None
    for cpu in [*cpus[1:], None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(ranges) or None


class NoiseProbe:
    """Context manager around the timed rounds; ``columns()`` after it is left."""

    def __init__(self) -> None:
        self._t0 = self._t1 = 0.0
        self._psi0 = self._psi1 = None
        self._ctx0 = self._ctx1 = None
        self._load_end: float | None = None

    def __enter__(self) -> NoiseProbe:
        self._psi0 = _psi_some_us()
        self._ctx0 = _involuntary_switches()
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._t1 = time.perf_counter()
        self._psi1 = _psi_some_us()
        self._ctx1 = _involuntary_switches()
        self._load_end = load_average()

    def columns(self) -> dict[str, Any]:
        elapsed = self._t1 - self._t0
        pressure = switches = None
        if elapsed > 0 and self._psi0 is not None and self._psi1 is not None:
            pressure = min(1.0, max(0.0, (self._psi1 - self._psi0) / 1e6 / elapsed))
        if elapsed > 0 and self._ctx0 is not None and self._ctx1 is not None:
            switches = (self._ctx1 - self._ctx0) / elapsed
        return {
            "load_avg_1m_end": self._load_end,
            "cpu_pressure": pressure,
            "involuntary_switches_per_s": switches,
        }
