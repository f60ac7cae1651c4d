"""The monitor interface: ``PowerMonitor``, the ``NullPowerMonitor`` that says why nothing is
measured, and ``SampledMonitor``, the background sampling thread the NVML and RAPL monitors share.

Sampling is kept cheap because it runs beside the timed work: the thread sleeps between polls
(time.sleep: one syscall, the GIL free meanwhile; ctypes also releases it during each NVML
call), runs at nice 19, appends samples to two float arrays (no Python object is kept per
sample), and builds the reading's lists only after the window has closed.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from array import array
from collections.abc import Callable

from harness.errors import InvalidInputError
from harness.measure import nvml, rapl
from harness.measure.power_reading import PowerReading

Clock = Callable[[], float]
_SLEEP_MAX_S = 0.05  # tick periods up to this are slept; longer ones wait on the stop Event


def _check_seconds(seconds: float) -> None:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise InvalidInputError(f"idle seconds must be a positive number, got {seconds!r}")


def _lower_this_threads_priority() -> None:
    """Nice 19 for the calling thread only (Linux): where every core is busy with the work being
    measured, the sampler waits rather than preempting it. A late poll is stamped when it reads,
    so it is late, not wrong; energy comes from counters read at start and stop."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: as is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


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
    """A background thread polls power at ``sample_hz`` between ``start`` and ``stop``.

    Subclasses read their hardware in ``_begin`` (at start), ``_poll`` (each sample: append
    distinct readings to ``_t``/``_p``), ``_end`` (at stop) and build the reading in ``_finish``.
    An ``NvmlUnavailable``/``RaplUnavailable`` on the way ends sampling; the reading is then
    null with its reason.
    """

    def __init__(self, *, sample_hz: float, clock: Clock, min_window_s: float) -> None:
        super().__init__()
        self.sample_hz = sample_hz
        self.min_window_s = min_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._t = array("d")
        self._p = array("d")
        self._t0 = 0.0
        self._polls = 0
        self._fatal: str | None = None
        self._open = False  # between start and stop: samples belong to the window
        self.sampler_cpu_s = 0.0  # CPU time (s) the sampling thread used in the last window

    # subclass hooks
    def _begin(self) -> None: ...
    def _poll(self, now: float) -> None: ...
    def _end(self) -> None: ...
    def _finish(self, window_s: float, reading: PowerReading) -> PowerReading:
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("PowerMonitor.start() called twice without stop()")
        self._t, self._p = array("d"), array("d")
        self._polls, self._fatal = 0, None
        self._stop_event.clear()
        self._guarded(self._begin)
        self._t0 = self._clock()
        self._open = True
        self.sample()
        self._thread = threading.Thread(target=self._run, name="cnnbench-power", daemon=True)
        self._thread.start()

    def stop(self) -> PowerReading:
        if self._thread is None:
            raise RuntimeError("PowerMonitor.stop() called without start()")
        with self._lock:  # close the window first: joining the thread is not part of it
            self._poll_guarded()
            window_s = self._clock() - self._t0
            self._open = False
            self._guarded(self._end)
        self._stop_event.set()
        self._thread.join()
        self._thread = None
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

    def sample(self) -> None:
        """Take one power reading now (the thread calls this at ``sample_hz``)."""
        with self._lock:
            if self._open:
                self._poll_guarded()

    def _poll_guarded(self) -> None:
        if self._fatal is None:
            self._guarded(lambda: self._poll(self._clock()))

    def _guarded(self, call: Callable[[], None]) -> None:
        try:
            call()
        except (nvml.NvmlUnavailable, rapl.RaplUnavailable) as err:
            if self._fatal is None:  # the first failure is the one that explains
                self._fatal = err.reason

    def _run(self) -> None:
        cpu0 = time.thread_time()
        _lower_this_threads_priority()
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
            if self._fatal is not None:
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
