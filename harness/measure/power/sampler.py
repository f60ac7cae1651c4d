"""The power sampler's child process: polls a power reader at a fixed rate, away from the GIL of
the process being timed.

Parent side, ``acquire(spec, sample_hz)`` hands out an idle child polling the same reader, or
starts one, and ``release(child)`` returns it: one child per GPU serves every case of a sweep
(starting one costs about 0.2 s). NVML children live in the NVML session's cache, so shutting
NVML down (the tests' stand-in library re-reading its script) ends them. ``ChildSampler(spec,
sample_hz)``: starts ``python -m
harness.measure.power.sampler`` (importing neither torch nor the caller's ``__main__``),
hands it the monitor's ``reader_spec()`` and waits until it has opened its reader (NVML
initialised, the GPU found by UUID; or the RAPL files). ``begin()`` starts polling (without
waiting for the child), ``end()`` stops it and returns the polls ``[(perf_counter time, raw
reading), ...]`` with the child's CPU seconds; ``close()`` (also run when the object is
collected, and at exit) ends the child.

Child side, ``main()``: nice 19; between polls it waits in ``select`` on its command pipe, so a
command is answered at once and a tick costs one wake-up. Polls are stamped with
``time.perf_counter`` (CLOCK_MONOTONIC on Linux: the same clock in every process), so the
parent places them in its window directly. Missed ticks after a stall are skipped, not run in
a burst. Protocol: one JSON line per message, each way.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

_READY_TIMEOUT_S = 30.0  # interpreter start, imports, NVML initialisation
_REPLY_TIMEOUT_S = 10.0


class SamplerUnavailable(Exception):
    """The child process could not start or answer; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _terminate(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError, ValueError):
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the child exits by itself
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        with contextlib.suppress(OSError, ValueError):
            if pipe is not None:
                pipe.close()


class ChildSampler:
    """A child process that polls one power reader (see the module docstring)."""

    def __init__(self, spec: dict[str, Any], sample_hz: float) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the directory holding `harness`
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "harness.measure.power.sampler"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as err:
            raise SamplerUnavailable(f"the sampler process could not start: {err}") from err
        self._finalizer = weakref.finalize(self, _terminate, self._proc)
        self._buffer = b""
        self.busy = False
        self._send({"spec": spec, "sample_hz": sample_hz})
        reply = self._receive(_READY_TIMEOUT_S)
        if reply.get("error"):
            self.close()
            raise SamplerUnavailable(str(reply["error"]))

    def _send(self, message: dict[str, Any]) -> None:
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(message).encode() + b"\n")
            self._proc.stdin.flush()
        except (OSError, ValueError) as err:
            raise SamplerUnavailable(f"the sampler process is gone: {err}") from err

    def _receive(self, timeout_s: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SamplerUnavailable(f"the sampler process did not answer in {timeout_s:g} s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SamplerUnavailable(f"the sampler process ended: {self._stderr_tail()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
            self._proc.wait(timeout=2.0)
            assert self._proc.stderr is not None
            text = self._proc.stderr.read().decode(errors="replace").strip()
            return (text.splitlines() or ["no message"])[-1]
        return "no message"

    def begin(self) -> None:
        """Start polling. Not waited for: at nice 19 on a busy machine the child may take a
        while to wake, and polls from before the window are dropped anyway."""
        self._send({"command": "start"})

    def end(self) -> tuple[list[tuple[float, list[Any]]], float]:
        """Stop polling: the polls since ``begin`` and the child's CPU seconds meanwhile."""
        self._send({"command": "stop"})
        reply = self._receive(_REPLY_TIMEOUT_S)
        return [(float(t), raw) for t, raw in reply["polls"]], float(reply["cpu_s"])

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        self._finalizer()


_LOCK = threading.Lock()
_OTHER_CHILDREN: dict[str, list[ChildSampler]] = {}  # RAPL readers: files, no session


def _registry(spec: dict[str, Any]) -> dict[str, list[ChildSampler]]:
    if spec.get("kind") == "nvml":
        from harness.measure.power import nvml

        return nvml.session_cache().setdefault("sampler_children", {})  # type: ignore[return-value]
    return _OTHER_CHILDREN


def acquire(spec: dict[str, Any], sample_hz: float) -> ChildSampler:
    """An idle child polling ``spec`` at ``sample_hz``, started if there is none."""
    key = json.dumps([spec, sample_hz], sort_keys=True)
    with _LOCK:
        children = _registry(spec).setdefault(key, [])
        children[:] = [c for c in children if c.alive()]
        child = next((c for c in children if not c.busy), None)
        if child is None:
            child = ChildSampler(spec, sample_hz)
            children.append(child)
        child.busy = True
        return child


def release(child: ChildSampler) -> None:
    """Give ``child`` back for the next monitor of the same reader."""
    with _LOCK:
        child.busy = False


# -- the child ---------------------------------------------------------------------------------


def _write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    with contextlib.suppress(AttributeError, OSError):
        os.nice(19)
    config = json.loads(sys.stdin.buffer.readline())
    from harness.measure.power import nvml, rapl
    from harness.measure.power.readers import reader_from_spec

    unavailable = (nvml.NvmlUnavailable, rapl.RaplUnavailable)
    try:
        read = reader_from_spec(config["spec"])
    except unavailable as err:
        _write({"error": f"the sampler process cannot read power: {err.reason}"})
        return 0
    _write({"ready": True})
    period = 1.0 / float(config["sample_hz"])
    fd = sys.stdin.fileno()
    buffer = b""
    polling = False
    polls: list[tuple[float, Any]] = []
    cpu0 = 0.0
    next_t = time.perf_counter()
    while True:
        wait = max(0.0, next_t - time.perf_counter()) if polling else None
        if select.select([fd], [], [], wait)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return 0  # the parent closed the pipe
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                command = json.loads(line)["command"]
                if command == "start":
                    polls, polling, cpu0 = [], True, time.process_time()
                    next_t = time.perf_counter()
                elif command == "stop":
                    polling = False
                    _write({"polls": polls, "cpu_s": time.process_time() - cpu0})
            continue
        if not polling:
            continue
        now = time.perf_counter()
        try:
            polls.append((now, read()))
        except unavailable as err:
            polls.append((now, ("fatal", err.reason)))
            polling = False  # nothing more to read; the parent learns why at stop
        next_t += period
        late = time.perf_counter() - next_t
        if late > 0:  # a stall: skip the missed ticks, keep the phase
            next_t += (late // period + 1) * period


if __name__ == "__main__":
    raise SystemExit(main())
