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
* ``speed_probe_ratio``: how this CPU runs a fixed piece of Python right before and right after the
  rounds, against this host's typical time for it: the ``TYPICAL_QUANTILE`` (20th percentile) of
  its last ``SPEED_HISTORY`` probes with this Python (kept in
  ``$XDG_CACHE_HOME/cnnbench/speed-probe.json`` so every run on the host shares one reference). Of
  the two probes, the ratio farther from 1 is kept (above 1: slower than typical). Virtual machines
  switch between speeds that no load figure shows: on this project's 2-core VM the same loop takes
  about 0.72 ms or 1.7x that, in spells from 0.1 s to about 10 s
  (``benchmarks/bench_speed_states.py`` measures the share of time in each state and the spell
  lengths). The reference is the fastest state the host holds at least a fifth of the time, not its
  fastest ever (a host whose usual state is the slow one, with short fast bursts, would otherwise
  call most cases noisy) and not its median (a host slow half the time would make either state
  "typical" by chance, and a case measured wholly in the slow state would pass). A case whose
  probes depart from it is flagged; since windows (harness.core.windows) the row's ratio is the
  median over the windows that give its value: a case timed wholly in a slow state is caught here.
  A host's first window takes ``SPEED_WARMUP`` probes (1.6 s) to found the reference.

Reading them costs two small file reads, two system calls and two probes (a few
milliseconds) per window, outside the timed samples. GPU signals (SM clock, temperature,
throttle reasons) come with the power reading.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
import warnings
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


SPEED_HISTORY = 256  # probes kept per host: the typical speed of the last few runs
TYPICAL_QUANTILE = 0.2  # a state held a fifth of the time is the host's own
SPEED_WARMUP = 16  # probes taken (SPEED_WARMUP_EVERY_S apart) when a host has fewer on record
# Spread over 1.6 s, so a host's first reference does not sit inside one speed state (this VM
# holds a state 0.1-10 s); once per host: the history is kept in the cache file.
SPEED_WARMUP_EVERY_S = 0.1
# A probe (20,000 iterations of CPython, best of 3) takes about 0.7 ms on a 2020s core: a
# stored time outside 1 us .. 1 s is no probe of this loop (a corrupt or foreign cache).
PROBE_PLAUSIBLE_S = (1e-6, 1.0)


def plausible_probe(value: object) -> bool:
    """Whether ``value`` can be a probe time in seconds: a finite float in
    ``PROBE_PLAUSIBLE_S`` (not a bool, not a string, not infinite, zero or negative)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and PROBE_PLAUSIBLE_S[0] <= value <= PROBE_PLAUSIBLE_S[1]


class SpeedReference:
    """This host's typical probe time: the ``TYPICAL_QUANTILE`` of its last ``SPEED_HISTORY``
    probes (this process's and the cache file's). Probes are written back at most every few seconds
    (atomically, merged with what other processes wrote; a cache that cannot be written is kept
    in memory)."""

    SAVE_EVERY_S = 5.0

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or _cache_file()
        self._drop = False  # a corrupt entry is replaced, not merged with, on the next save
        self.recent: list[float] = self._stored()
        self._new: list[float] = []
        self._saved_at = 0.0

    def _stored(self) -> list[float]:
        """This host's stored probes; a cache holding anything but plausible probe times (a
        corrupt file, Infinity, true) is dropped whole, with one warning, and rebuilt."""
        try:
            value = json.loads(self.path.read_text()).get(_cache_key())
        except (OSError, ValueError, TypeError, AttributeError):
            return []
        if value is None or value == [] or plausible_probe(value):  # a first-version cache held
            return []  # one float (the fastest probe): read as no history
        if isinstance(value, list) and all(plausible_probe(v) for v in value):
            return [float(v) for v in value][-SPEED_HISTORY:]
        shown = repr(value)[:60]
        warnings.warn(
            f"cnnbench: the speed-probe cache {self.path} holds values that are no probe time "
            f"({shown}): dropped; this host's reference is measured again",
            UserWarning,
            stacklevel=2,
        )
        self._drop = True
        return []

    def typical(self) -> float:
        """The probe time below which the host's fastest fifth of recent probes lie (the
        lower nearest rank): its fast state when it holds one a fifth of the time or more."""
        values = sorted(self.recent)
        return values[int(TYPICAL_QUANTILE * (len(values) - 1))]

    def ratio(self, seconds: float) -> float | None:
        """``seconds`` over the typical time (before ``seconds`` joins the history); None for
        a probe time that cannot be one (it joins nothing)."""
        if not plausible_probe(seconds):
            return None
        if len(self.recent) < SPEED_WARMUP:
            for _ in range(SPEED_WARMUP - len(self.recent)):
                self._add(speed_probe())
                time.sleep(SPEED_WARMUP_EVERY_S)
        typical = self.typical()
        self._add(seconds)
        return seconds / typical

    def _add(self, seconds: float) -> None:
        self.recent = [*self.recent, seconds][-SPEED_HISTORY:]
        self._new.append(seconds)
        if time.monotonic() - self._saved_at >= self.SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        self._saved_at = time.monotonic()
        if not self._new:
            return
        with contextlib.suppress(OSError, ValueError, TypeError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            if not isinstance(data, dict):
                data = {}
            known = data.get(_cache_key())
            known = (
                [v for v in known if plausible_probe(v)]
                if isinstance(known, list) and not self._drop
                else []
            )
            self._drop = False
            data[_cache_key()] = [*known, *self._new][-SPEED_HISTORY:]
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".speed-probe-")
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)
            self._new = []


_REFERENCE: SpeedReference | None = None


def speed_reference() -> SpeedReference:
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = SpeedReference()
        atexit.register(_REFERENCE.save)
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

    def record(self) -> dict[str, Any]:
        """The window's raw measures (``aggregate`` turns those of several windows into a
        row's columns): its length, CPU stall and involuntary switches (None where the OS
        has no such counter), the speed probe's ratio, the load when it ended."""
        elapsed = self._t1 - self._t0
        stall = switches = None
        if self._psi0 is not None and self._psi1 is not None:
            stall = max(0.0, (self._psi1 - self._psi0) / 1e6)
        if self._ctx0 is not None and self._ctx1 is not None:
            switches = self._ctx1 - self._ctx0
        reference = speed_reference()
        ratios = [r for p in self._speed if (r := reference.ratio(p)) is not None]
        return {
            "elapsed_s": elapsed,
            "stall_s": stall,
            "switches": switches,
            "speed_probe_ratio": max(ratios, key=lambda r: max(r, 1 / r)) if ratios else None,
            "load_avg_1m_end": self._load_end,
        }

    def columns(self) -> dict[str, Any]:
        return aggregate([self.record()])


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The noise columns of a row from its windows' records: CPU pressure and switches per
    second over the windows' summed time, the speed probe's median ratio (a single window's
    farther-from-1 probe when there is one), the load when the last window ended."""
    elapsed = sum(r["elapsed_s"] for r in records)
    stalls = [r["stall_s"] for r in records]
    switches = [r["switches"] for r in records]
    ratios = sorted(r["speed_probe_ratio"] for r in records if r["speed_probe_ratio"] is not None)
    pressure = rate = None
    if elapsed > 0 and records and all(v is not None for v in stalls):
        pressure = min(1.0, max(0.0, sum(stalls) / elapsed))
    if elapsed > 0 and records and all(v is not None for v in switches):
        rate = sum(switches) / elapsed
    probe = None
    if ratios:
        mid = len(ratios) // 2
        probe = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
    return {
        "load_avg_1m_end": records[-1]["load_avg_1m_end"] if records else None,
        "cpu_pressure": pressure,
        "involuntary_switches_per_s": rate,
        "speed_probe_ratio": probe,
    }
