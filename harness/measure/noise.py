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
  took a CPU from one of its threads) per second of rounds, from ``getrusage``;
* ``speed_probe_ratio``: how much slower than its best this CPU runs a fixed piece of Python
  right before and right after the rounds (the slower of the two), against the fastest time of
  the same probe ever seen on this host with this Python (kept in
  ``$XDG_CACHE_HOME/cnnbench/speed-probe.json``). Virtual machines switch between speeds that
  no load figure shows: on this project's 2-core VM the same loop takes 0.73 ms or 1.3 ms,
  flipping every few seconds, so two runs of one case land 1.7x apart with tight intervals
  each. A case measured in the slow state is flagged (and measured again). On a host's first
  run the best seen so far is the reference, so the flag is conservative until a fast state
  has been seen.

Reading them costs two small file reads, two system calls and two probes (a few
milliseconds) per window, outside the timed samples. GPU signals (SM clock, temperature,
throttle reasons) come with the power reading.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import sys
import tempfile
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


PROBE_LOOPS = 20_000  # about 0.8 ms of CPython on a 2020s core
PROBE_REPEATS = 3


def _probe_once(n: int = PROBE_LOOPS) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def speed_probe() -> float:
    """Seconds this CPU takes, at best of ``PROBE_REPEATS``, for a fixed pure-Python loop."""
    best = float("inf")
    timer = time.perf_counter
    for _ in range(PROBE_REPEATS):
        t0 = timer()
        _probe_once()
        best = min(best, timer() - t0)
    return best


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "cnnbench" / "speed-probe.json"


def _cache_key() -> str:
    return f"{socket.gethostname()}|{platform.python_implementation()} {sys.version.split()[0]}"


class SpeedReference:
    """The fastest probe seen on this host (this process's and the cache file's); a faster
    probe is written back (atomically; a cache that cannot be written is kept in memory)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or _cache_file()
        self.best: float | None = None
        with contextlib.suppress(OSError, ValueError, TypeError):
            value = json.loads(self.path.read_text()).get(_cache_key())
            if isinstance(value, (int, float)) and value > 0:
                self.best = float(value)

    def ratio(self, seconds: float) -> float:
        """``seconds`` over the best seen (1.0 when it is the best), recording a new best."""
        if self.best is None or seconds < self.best:
            self.best = seconds
            self._save()
        return seconds / self.best

    def _save(self) -> None:
        with contextlib.suppress(OSError, ValueError, TypeError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            if not isinstance(data, dict):
                data = {}
            known = data.get(_cache_key())
            if isinstance(known, (int, float)) and 0 < known < (self.best or 0):
                self.best = float(known)  # another process saw faster meanwhile
                return
            data[_cache_key()] = self.best
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".speed-probe-")
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)


_REFERENCE: SpeedReference | None = None


def speed_reference() -> SpeedReference:
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = SpeedReference()
    return _REFERENCE


class NoiseProbe:
    """Context manager around the timed rounds; ``columns()`` after it is left."""

    def __init__(self) -> None:
        self._t0 = self._t1 = 0.0
        self._psi0 = self._psi1 = None
        self._ctx0 = self._ctx1 = None
        self._load_end: float | None = None
        self._speed: list[float] = []

    def __enter__(self) -> NoiseProbe:
        self._speed = [speed_probe()]
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
        self._speed.append(speed_probe())

    def columns(self) -> dict[str, Any]:
        elapsed = self._t1 - self._t0
        pressure = switches = None
        if elapsed > 0 and self._psi0 is not None and self._psi1 is not None:
            pressure = min(1.0, max(0.0, (self._psi1 - self._psi0) / 1e6 / elapsed))
        if elapsed > 0 and self._ctx0 is not None and self._ctx1 is not None:
            switches = (self._ctx1 - self._ctx0) / elapsed
        reference = speed_reference()
        ratios = [reference.ratio(p) for p in self._speed]
        return {
            "load_avg_1m_end": self._load_end,
            "cpu_pressure": pressure,
            "involuntary_switches_per_s": switches,
            "speed_probe_ratio": max(ratios) if ratios else None,
        }
