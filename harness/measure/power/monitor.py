"""The monitor interface: ``PowerMonitor``, the ``NullPowerMonitor`` that says why nothing is
measured, and ``SampledMonitor``, the background polling the NVML and RAPL monitors share.

Polling runs beside the timed work, so it is kept out of its way. A poll only reads the sensor
and records ``(time, raw reading)``; the readings are turned into the trace after the window
has closed. Where the polling runs is ``sampler``:

* ``"process"`` (the default of ``make_power_monitor``): a child process
  (harness/measure/sampler_process.py) started with the monitor, so the polls never take the
  timing process's GIL (a thread's poll, waking while a short step runs, delays it by the
  poll's Python work: the tail of sub-millisecond steps, benchmarks/bench_power_overhead.py);
* ``"thread"``: a thread of this process (needed with a clock other than time.perf_counter).

Either sleeps between polls (the thread in time.sleep, the child in select on its command
pipe) and runs at nice 19.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import weakref
from array import array
from collections.abc import Callable

from harness.core.errors import InvalidInputError
from harness.measure.power import nvml, rapl
from harness.measure.power.readers import Raw
from harness.measure.power.reading import PowerReading

Clock = Callable[[], float]
SAMPLERS = ("process", "thread")
_SLEEP_MAX_S = 0.05  # tick periods up to this are slept; longer ones wait on the stop Event


def _check_seconds(seconds: float) -> None:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise InvalidInputError(f"idle seconds must be a positive number, got {seconds!r}")


def lower_this_threads_priority() -> None:
    """Nice 19 for the calling thread only (Linux): where every core is busy with the work being
    measured, the sampler waits rather than preempting it. A late poll is stamped when it reads,
    so it is late, not wrong; energy comes from counters read at start and stop."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: as is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _release_child(child: object) -> None:
    from harness.measure.power.sampler import release

    release(child)  # type: ignore[arg-type]


class PowerMonitor:
    """Measures power over windows: ``start()``, the work, ``stop()`` -> ``PowerReading``.

    ``min_window_s`` is the shortest window whose energy is reported (0 when nothing is
    measured). Used as a context manager it starts on entry and leaves ``self.reading``.
    """

    source: str = "unavailable"
    min_window_s: float = 0.0
    sample_hz: float | None = None

    def __init__(self) -> None:
        self.reading: PowerReading | None = None
        self._idle_w: float | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> PowerReading:
        raise NotImplementedError

    def sample(self) -> None:
        """Take one power reading now, between start and stop (nothing to take here)."""

    def measure_idle(self, seconds: float) -> float | None:
        """Mean power in W over ``seconds`` of doing nothing (later readings carry it)."""
        _check_seconds(seconds)
        self.start()
        time.sleep(seconds)
        self._idle_w = self.stop().power_w_mean
        return self._idle_w

    def __enter__(self) -> PowerMonitor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reading = self.stop()


class NullPowerMonitor(PowerMonitor):
    """Measures nothing and says why: ``kind`` is ``unavailable`` or ``off``."""

    def __init__(self, reason: str, kind: str = "unavailable") -> None:
        super().__init__()
        self.reason = reason
        self.source = f"{kind}: {reason}"

    def start(self) -> None:
        pass

    def stop(self) -> PowerReading:
        return PowerReading(source=self.source, reason=self.reason)

    def measure_idle(self, seconds: float) -> float | None:
        _check_seconds(seconds)
        return None


class SampledMonitor(PowerMonitor):
    """Power polled at ``sample_hz`` between ``start`` and ``stop``, in a thread or a child
    process (``sampler``).

    Subclasses read their hardware in ``_begin`` (at start), ``_read`` (one poll: return the raw
    reading, raise ``NvmlUnavailable``/``RaplUnavailable`` when sampling must end), ``_end`` (at
    stop); after the window, ``_ingest`` turns each raw reading, in time order, into the trace
    (``_t``/``_p``) and ``_finish`` builds the reading. ``reader_spec`` tells the child process
    how to make the same ``_read``. A fatal error on the way makes the reading null with its
    reason.
    """

    def __init__(
        self, *, sample_hz: float, clock: Clock, min_window_s: float, sampler: str = "thread"
    ) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise InvalidInputError(
                f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}"
            )
        if sampler == "process" and clock is not time.perf_counter:
            raise InvalidInputError(
                "the process sampler stamps its polls with time.perf_counter; "
                "use sampler='thread' with another clock"
            )
        self.sample_hz = sample_hz
        self.min_window_s = min_window_s
        self.sampler = sampler
        self._clock = clock
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: object | None = None  # sampler_process.ChildSampler, started on first use
        self._running = False
        self._raw: list[tuple[float, Raw]] = []
        self._t = array("d")
        self._p = array("d")
        self._t0 = 0.0
        self._polls = 0
        self._fatal: str | None = None
        self._open = False  # between start and stop: samples belong to the window
        self.sampler_cpu_s = 0.0  # CPU time (s) the sampler (thread or child) used in the window
        self.sampler_note: str | None = None  # why the sampler is not the one asked for

    # subclass hooks
    def _begin(self) -> None: ...
    def _read(self) -> Raw:
        raise NotImplementedError

    def _ingest(self, now: float, raw: Raw) -> None: ...
    def _end(self) -> None: ...
    def _finish(self, window_s: float, reading: PowerReading) -> PowerReading:
        raise NotImplementedError

    def reader_spec(self) -> dict[str, object]:
        """What a child process needs to make this monitor's ``_read`` (JSON-serialisable)."""
        raise NotImplementedError

    def _prepare_sampler(self) -> None:
        """Start the child process of the ``process`` sampler (subclasses call this at the end
        of ``__init__``, so that it is spawned before any window, not inside one). A child
        that cannot start leaves the thread sampler in charge, with the reason in
        ``sampler_note``."""
        if self.sampler != "process" or self._child is not None:
            return
        from harness.measure.power.sampler import SamplerUnavailable, acquire

        try:
            self._child = acquire(self.reader_spec(), self.sample_hz)
            # given back once: by close(), or when this monitor is collected
            self._child_release = weakref.finalize(self, _release_child, self._child)
        except SamplerUnavailable as err:
            self.sampler, self.sampler_note = "thread", f"thread (process failed: {err.reason})"

    def start(self) -> None:
        if self._running:
            raise RuntimeError("PowerMonitor.start() called twice without stop()")
        self._raw, self._t, self._p = [], array("d"), array("d")
        self._polls, self._fatal = 0, None
        self._stop_event.clear()
        if self.sampler == "process":
            self._begin_child()  # polling from before the window opens
        self._guarded(self._begin)
        self._t0 = self._clock()
        self._open = True
        self._running = True
        self.sample()
        if self.sampler == "thread":
            self._thread = threading.Thread(target=self._run, name="cnnbench-power", daemon=True)
            self._thread.start()

    def _begin_child(self) -> None:
        from harness.measure.power.sampler import SamplerUnavailable

        self._prepare_sampler()
        if self._child is None:  # it could not start: the thread polls instead
            return
        try:
            self._child.begin()  # type: ignore[attr-defined]
        except SamplerUnavailable as err:
            self.sampler_note = f"the sampler process failed ({err.reason}): trace from start/stop"
            self._child.close()  # type: ignore[attr-defined]  # broken: never handed out again

    def stop(self) -> PowerReading:
        if not self._running:
            raise RuntimeError("PowerMonitor.stop() called without start()")
        with self._lock:  # close the window first: collecting the polls is not part of it
            self._record(self._clock())
            t_end = self._clock()
            window_s = t_end - self._t0
            self._open = False
            self._guarded(self._end)
        self._running = False
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._thread = None
        elif self._child is not None:
            self._collect_child(t_end)
        self._ingest_all()
        if self._fatal is not None:
            return PowerReading(
                source=f"unavailable: {self._fatal}",
                window_s=window_s,
                sample_hz=self.sample_hz,
                polls=self._polls,
                reason=self._fatal,
            )
        base = PowerReading(
            source=self.source,
            window_s=window_s,
            trace=list(zip(self._t, self._p, strict=True)),
            sample_hz=self.sample_hz,
            polls=self._polls,
            power_w_idle=self._idle_w,
        )
        return self._finish(window_s, base)

    def _collect_child(self, t_end: float) -> None:
        from harness.measure.power.sampler import SamplerUnavailable

        try:
            polls, cpu_s = self._child.end()  # type: ignore[attr-defined]
        except SamplerUnavailable as err:
            # The energy (counters read here) stands; the trace keeps this process's polls.
            self.sampler_note = f"the sampler process failed ({err.reason}): trace from start/stop"
            self._child.close()  # type: ignore[attr-defined]  # broken: never handed out again
            return
        self.sampler_cpu_s = cpu_s
        for t, raw in polls:
            if self._t0 <= t <= t_end:  # the child polls a little before and after the window
                self._raw.append((t, tuple(raw)))

    def _ingest_all(self) -> None:
        """The window's raw readings, in time order, into the trace."""
        for t, raw in sorted(self._raw, key=lambda r: r[0]):
            if raw[0] == "fatal":
                if self._fatal is None:
                    self._fatal = str(raw[1])
                break
            self._ingest(t - self._t0, raw)
        self._raw = []

    def close(self) -> None:
        """Give the child process back (also done when the monitor is collected): the next
        monitor of the same device uses it."""
        if self._child is not None:
            self._child_release()
            self._child = None

    def sample(self) -> None:
        """Take one power reading now (the thread calls this at ``sample_hz``)."""
        with self._lock:
            if self._open:
                self._record(self._clock())

    def _record(self, now: float) -> None:
        """One poll: the raw reading and when it was taken (processed after the window)."""
        if self._fatal is not None:
            return
        try:
            raw = self._read()
        except (nvml.NvmlUnavailable, rapl.RaplUnavailable) as err:
            raw = ("fatal", err.reason)
        self._raw.append((now, raw))

    def _guarded(self, call: Callable[[], None]) -> None:
        try:
            call()
        except (nvml.NvmlUnavailable, rapl.RaplUnavailable) as err:
            if self._fatal is None:  # the first failure is the one that explains
                self._fatal = err.reason

    def _run(self) -> None:
        cpu0 = time.thread_time()
        lower_this_threads_priority()
        period = 1.0 / self.sample_hz
        now, stopped = time.perf_counter, self._stop_event.is_set
        # time.sleep is one syscall; Event.wait builds a lock per call. Slow rates wait on the
        # Event so that stop() need not wait a whole period for the thread to notice.
        pause = time.sleep if period <= _SLEEP_MAX_S else self._stop_event.wait
        next_t = now() + period
        while True:
            delay = next_t - now()
            if delay > 0:
                pause(delay)
            if stopped():
                break
            self.sample()
            if self._raw and self._raw[-1][1][0] == "fatal":
                break
            next_t += period
            late = now() - next_t
            if late > 0:  # a stall (the machine was busy): skip the missed ticks, keep the phase
                next_t += (late // period + 1) * period
        self.sampler_cpu_s = time.thread_time() - cpu0

    def _window_reason(self, window_s: float, counter: str) -> str | None:
        if window_s < self.min_window_s:
            return (
                f"window {window_s:.3f} s is shorter than the {self.min_window_s:g} s minimum "
                f"for the {counter}; energy is not reported (lengthen the timed rounds)"
            )
        return None
