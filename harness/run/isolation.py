"""Crash isolation: cases run in a child process, so a case that kills it becomes a row.

A model can take its process down: a segfault in an extension, ``os.abort()``, a CUDA error
that leaves the context unusable. In the test process that would end the sweep (and lose the
case's row). ``CaseProcess`` runs cases in a child process instead; when the child dies, the
case becomes a ``crashed`` row with the signal or exit code and the last line the child wrote
to stderr, and the next case gets a fresh child.

Children come from a ``multiprocessing`` fork server that imported torch and the harness once
(``PRELOAD``): starting a child costs milliseconds, not the seconds of importing torch, and the
server never ran a torch op nor touched CUDA, so forking it is safe (a process that used OpenMP
or CUDA cannot be forked safely). A child imports the modules that registered the sweep's
models (suite files), with the parent's ``sys.path``; it keeps its ``ModelCache`` and its
environment for as long as it lives, and leaves after a sticky CUDA error so that no later case
runs in a broken context.

Granularity (``--cnn-isolate``): ``model`` keeps one child for consecutive cases of one model
(a new child when the model changes); ``case`` uses a fresh child for every case; ``none`` runs
in the test process (no protection; the only choice where the fork server cannot start).

A child that does not answer within the case's hang limit (harness.run.hang: from the case's
expected duration, bounded by the budget) is asked for its Python stack (faulthandler, on
SIGUSR1), which goes into the row's error, and then killed. A child treats SIGTERM as Ctrl-C
(its row is kept) and dies with the fork server (``PR_SET_PDEATHSIG`` on Linux), which ends
with the process that started it: a killed sweep leaves no process behind. What a child prints
is kept as a bounded tail in memory (harness.run.child_log), never in a file.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.run.child import STOP_SIGNALS as _STOP_SIGNALS
from harness.run.child import child_main as _child
from harness.run.child_log import ChildLog, stack_summary, stderr_summary
from harness.run.hang import BUDGET_END

ISOLATIONS = ("model", "case", "none")
# Imported once by the fork server, so no child pays for them: torch and the harness, and what
# the first case would import lazily (torch._dynamo, pulled in by the first traced forward,
# costs 2 s; the zoo; pyarrow's pandas bridge). None of them starts a thread.
PRELOAD = [
    "torch._dynamo",
    "harness.run.runner",
    "harness.models.zoo",
    "pyarrow.pandas_compat",
    "pytest",
    "harness.run.server_signals",  # the server outlives a group's SIGTERM or SIGHUP
]
STACK_WAIT_S = 2.0  # how long a hung child gets to print its stack before it is killed


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_server() -> None:
    """Start the fork server now (before pytest captures output and before the caller touches
    CUDA or OpenMP), so its first child does not pay the import of torch."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class CaseProcess:
    """Runs cases in a child process; ``run`` returns the CaseResult, a crash included.

    ``imports``: modules the child imports first (those that registered the models).
    ``run_facts``: environment columns of the run that the child cannot know (command line,
    git state). ``cuda_index``: the GPU the child makes current.
    """

    def __init__(
        self,
        *,
        imports: list[str],
        run_facts: dict[str, Any],
        cuda_index: int | None = None,
        label: str = "model",
    ) -> None:
        self.imports = imports
        self.run_facts = run_facts
        self.cuda_index = cuda_index
        self.label = label
        self._process: Any = None
        self._conn: Connection | None = None
        self._log: ChildLog | None = None
        self.started = 0
        self.hung: str | None = None  # why the last case was killed as hung (None: it was not)

    def _start(self) -> None:
        ctx = _context()
        parent, child = ctx.Pipe()
        self._log = ChildLog(ctx)
        self._process = ctx.Process(
            target=_child,
            args=(
                child,
                list(sys.path),
                self.imports,
                self._log.writer,
                self.run_facts,
                self.cuda_index,
            ),
            daemon=True,
        )
        self._process.start()
        child.close()
        self._log.child_started()
        self._conn = parent
        self.started += 1

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def run(
        self, case: Any, options: Any, timeout_s: float | None = None, why_limit: str = ""
    ) -> Any:
        """Run ``case`` in the child (starting one if needed); a dead or hung child becomes a
        ``crashed`` row (a hung one with its stack; ``why_limit`` says how its limit came
        about). Ctrl-C and SIGTERM raise ``CaseInterrupted`` with the row. After a case
        profiled through CUPTI the child leaves, so no later case runs with CUPTI attached."""
        from harness.measure.profiling import profiled_through_cupti

        result = self._exchange((case, options), case, timeout_s, why_limit=why_limit)
        result.row["isolation"] = self.label
        if result.poisoned or profiled_through_cupti(result.row):
            self.close()  # the child left (see _child)
        return result

    def session(
        self, call: str, case: Any, *args: Any, timeout_s: float | None = None, why_limit: str = ""
    ) -> Any:
        """One call of a case's session in the child (harness.run.session: ``open``,
        ``window``, ``finish``, ``abandon``); a dead or hung child gives the case's ``crashed``
        CaseResult instead of the answer (``hung`` says why a hung one was killed). Ctrl-C and
        SIGTERM raise KeyboardInterrupt (the parent keeps the windows it has)."""
        return self._exchange(
            ("session", call, case, *args), case, timeout_s, why_limit=why_limit, session=True
        )

    def _exchange(
        self,
        message: Any,
        case: Any,
        timeout_s: float | None,
        *,
        why_limit: str = "",
        session: bool = False,
    ) -> Any:
        from harness.run.outcome import CaseInterrupted

        self.hung = None
        if not self.alive:
            self.close()
            self._start()
        assert self._conn is not None
        started = time.perf_counter()
        self._conn.send(message)
        deadline = None if timeout_s is None else started + timeout_s
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.perf_counter())
                ready = wait([self._conn, self._process.sentinel], timeout=left)
                if self._conn in ready:
                    try:
                        return self._conn.recv()
                    except (EOFError, OSError):
                        return self._crashed(case, started)
                if self._process.sentinel in ready:
                    return self._crashed(case, started)
                if not ready:  # timed out: a hang
                    stack = self._stack()
                    self._process.kill()
                    self._process.join(5)
                    limit = f" ({why_limit})" if why_limit else ""
                    what = "stopped" if why_limit == BUDGET_END else "killed as hung"
                    self.hung = f"no answer after {timeout_s:.0f} s{limit}: {what}"
                    why = self.hung + (f"; stack: {stack}" if stack else "")
                    return self._crashed(case, started, why, stderr=False)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM: keep what the child measured; further signals wait until the
            # row and the run's files are saved (the caller restores the handlers)
            for s in _STOP_SIGNALS:
                signal.signal(s, signal.SIG_IGN)
            result = None
            with contextlib.suppress(OSError):  # a SIGTERM for this process alone: pass it on
                os.kill(self._process.pid, signal.SIGTERM)
            with contextlib.suppress(Exception):  # the child stops its case: take its row
                if self._conn.poll(3.0):
                    result = self._conn.recv()
            self.close()
            if session:
                raise
            if result is None:
                why = "interrupted (Ctrl-C or SIGTERM) while the case ran"
                result = self._crashed(case, started, why)
                result.row["status"] = "error"
            raise CaseInterrupted(result) from None

    def roofs(
        self, device: str, dtype: str, threads: int | None, timeout_s: float = 300.0
    ) -> dict[str, float]:
        """The device's measured roofs (harness.measure.roofs), measured in the child so that
        this process never touches the GPU; ``{}`` when they could not be measured."""
        if not self.alive:
            self.close()
            self._start()
        assert self._conn is not None
        self._conn.send(("roofs", device, dtype, threads))
        if not self._conn.poll(timeout_s):
            self.close()
            return {}
        try:
            answer = self._conn.recv()
        except (EOFError, OSError):
            self.close()
            return {}
        return answer if isinstance(answer, dict) else {}

    def environment(self, device: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """The environment columns of ``device`` as the child sees them (with the run's
        facts); the run's facts alone when the child cannot answer."""
        if not self.alive:
            self.close()
            self._start()
        assert self._conn is not None
        self._conn.send(("environment", device))
        if not self._conn.poll(timeout_s):
            self.close()
            return dict(self.run_facts)
        try:
            answer = self._conn.recv()
        except (EOFError, OSError):
            self.close()
            return dict(self.run_facts)
        return answer if isinstance(answer, dict) else dict(self.run_facts)

    def _stack(self) -> str:
        """The hung child's main-thread stack, asked of faulthandler (SIGUSR1), or ''."""
        if self._log is None or not hasattr(signal, "SIGUSR1"):
            return ""
        mark = self._log.total
        with contextlib.suppress(OSError):
            os.kill(self._process.pid, signal.SIGUSR1)
        deadline = time.perf_counter() + STACK_WAIT_S
        while time.perf_counter() < deadline:
            if "(most recent call first)" in self._log.since(mark):
                time.sleep(0.2)  # the rest of the dump
                break
            time.sleep(0.02)
        return stack_summary(self._log.since(mark))

    def _crashed(
        self, case: Any, started: float, why: str | None = None, *, stderr: bool = True
    ) -> Any:
        from datetime import datetime, timezone

        from harness.run.outcome import CaseResult, base_row

        process = self._process
        if process is not None:
            process.join(5)
        code = None if process is None else process.exitcode
        if why is None:
            if code is not None and code < 0:
                why = f"the case killed its process: {_signal_name(-code)}"
            else:
                why = f"the case ended its process with exit code {code}"
        if self._log is not None:
            self._log.close()
        detail = stderr_summary(self._log.text()) if stderr and self._log is not None else ""
        row = base_row(case, dict(self.run_facts))
        row.update(
            status="crashed",
            error=f"{why}; {detail}" if detail else why,
            isolation=self.label,
            timestamp_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        self.close()
        result = CaseResult(case, row)
        result.wall_s = time.perf_counter() - started
        return result

    def close(self) -> None:
        """Stop the child (politely, then by force)."""
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError, BrokenPipeError):
                self._conn.send(None)
            with contextlib.suppress(OSError):
                self._conn.close()
        if self._process is not None:
            self._process.join(2)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(2)
        if self._log is not None:
            self._log.close(timeout_s=0.2)
        self._process = None
        self._conn = None
        self._log = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
