"""How a run stops: Ctrl-C and SIGTERM alike, and whether the run that ended is complete.

SIGTERM is what Slurm, Kubernetes and systemd send before they kill, SIGHUP what a closing
terminal sends; both are handled as Ctrl-C: the case running is interrupted (its row kept), the
run's parts are merged, the run is marked incomplete and the summary printed. The first signal
raises KeyboardInterrupt; later ones (a second Ctrl-C, Slurm signalling every process of the
job) wait until the files are saved. The xdist controller passes a SIGTERM or SIGHUP on to its
workers (a terminal's Ctrl-C reaches them itself).

A run is complete only when every selected case was run: not after ``-x``/``--maxfail``, an
INTERNALERROR, a signal, a usage error or a failed write. ``claims`` and the report prefer the
latest *complete* run, so a run that stopped early must never claim to be one.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from harness.plugin.state import State

# SIGHUP: a terminal (an ssh session) that closes under a run
_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class StopOnSignal:
    """The handler of SIGINT and SIGTERM for one run (a callable ``signal.signal`` takes)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.previous = {s: signal.getsignal(s) for s in _SIGNALS}

    def __call__(self, signum: int, frame: Any) -> None:
        for s in _SIGNALS:  # the next ones wait until the files are saved
            signal.signal(s, signal.SIG_IGN)
        self.state.stopped_by = signal.Signals(signum).name
        if signum != signal.SIGINT and self.state.role == "controller":
            _signal_children(signum)
        raise KeyboardInterrupt

    def install(self) -> None:
        """Take SIGINT (where Python's default handler has it), SIGTERM and SIGHUP (where
        nobody handles them: an embedding program's own handler, nohup's SIG_IGN, stay)."""
        for s in _SIGNALS:
            default = signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
            if self.previous[s] is default:
                signal.signal(s, self)

    def restore(self) -> None:
        """Hand the signals back after a run that no signal stopped (an inline pytester run
        must not leave its caller shielded). After a signal they stay ignored to the end of the
        process: restoring let a third Ctrl-C tear pytest's own last hooks with a traceback."""
        if self.state.stopped_by is not None:
            return
        for s in _SIGNALS:
            if signal.getsignal(s) is self:
                signal.signal(s, self.previous[s])


def _signal_children(signum: int) -> None:
    """Send ``signum`` to this process's child processes (the xdist workers), from Linux's
    ``/proc/self/task/*/children``; nothing elsewhere."""
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in children.read_text().split())
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def incomplete_reason(session: pytest.Session, exitstatus: int, state: State) -> str | None:
    """Why the run that ended is not complete, or None when every selected case ran."""
    if state.stopped_by is not None:
        return f"stopped by {state.stopped_by}"
    if state.write_error is not None:
        return "results could not be written"
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "interrupted"
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        try:
            return f"pytest ended with {pytest.ExitCode(exitstatus).name}"
        except ValueError:
            return f"pytest ended with exit status {exitstatus}"
    if session.shouldfail or session.shouldstop:  # -x, --maxfail, --stepwise
        return f"stopped early: {session.shouldfail or session.shouldstop}"
    return None
