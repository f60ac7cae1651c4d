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
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
import weakref
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

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
]
# A child must answer within this long after a case's own time cap: a hang is a crash too.
HANG_GRACE_S = 600.0


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


def _child(
    conn: Connection,
    sys_path: list[str],
    imports: list[str],
    stderr_path: str,
    run_facts: dict[str, Any],
    cuda_index: int | None,
) -> None:
    """The child's loop: receive (case, options), answer with the CaseResult, until told to
    stop, interrupted, or poisoned by a sticky CUDA error."""
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.dup2(fd, 1)
    os.close(fd)
    faulthandler.enable(file=sys.stderr, all_threads=False)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for p in reversed(sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    for name in imports:
        importlib.import_module(name)
    import torch

    from harness.measure.devices import resolve_device
    from harness.measure.env import collect_environment
    from harness.run.runner import CaseInterrupted, run_case
    from harness.run.step import ModelCache

    if cuda_index is not None:
        torch.cuda.set_device(cuda_index)
    import gc

    gc.freeze()  # what the imports made is never garbage: later collections skip it
    models = ModelCache()
    environments: dict[str, dict[str, Any]] = {}

    def environment(name: str) -> dict[str, Any]:
        """The device's facts with the run's, once per device (a device that does not work
        here has the run's facts only: the row says why it did not run)."""
        device = str(resolve_device(name))
        if device not in environments:
            try:
                environments[device] = {**collect_environment(device), **run_facts}
            except Exception:
                environments[device] = dict(run_facts)
        return environments[device]

    host = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        if message[0] == "session":  # a case's open / window / finish (harness.run.session)
            if host is None:
                from harness.run.session import LocalHost

                host = LocalHost(environment, models)
            try:
                reply = host.handle(message[1:])
            except KeyboardInterrupt:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not tear it
                conn.send(("interrupted",))
                return
            conn.send(reply)
            if getattr(reply, "poisoned", None) or getattr(
                getattr(reply, "result", None), "poisoned", None
            ):
                return  # a sticky CUDA error: no later case runs in this context
            continue
        if message[0] == "environment":  # the device's facts, for rows the parent writes
            conn.send(environment(message[1]))
            continue
        if message[0] == "roofs":  # the device's measured roofs, once per run, dtype, threads
            from harness.measure.roofs import roof_columns
            from harness.measure.timing import fixed_threads

            _, device, dtype, threads = message
            try:
                with fixed_threads(threads):
                    conn.send(roof_columns(device, getattr(torch, dtype)))
            except Exception as exc:
                conn.send(f"{type(exc).__name__}: {exc}")
            continue
        case, options = message
        try:
            result = run_case(case, options, environment=environment(case.device), models=models)
        except CaseInterrupted as stop:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not tear it
            conn.send(stop.result)
            return
        conn.send(result)
        if result.poisoned:
            return


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _stderr_summary(path: Path) -> str:
    """The last line the child wrote, and the innermost Python frame faulthandler printed."""
    try:
        lines = [ln.rstrip() for ln in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return "nothing on stderr"
    text = f"last stderr line: {lines[-1].strip()}"
    fatal = [i for i, ln in enumerate(lines) if ln.startswith("Fatal Python error")]
    if fatal:
        start = fatal[-1]
        frames = [ln.strip() for ln in lines[start:] if ln.strip().startswith("File ")]
        text = f"{lines[start].strip()}" + (f" in {frames[0]}" if frames else "") + f"; {text}"
    return text[:1500]


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
        folder = tempfile.mkdtemp(prefix="cnnbench-child-")
        self._log = Path(folder) / "stderr.log"
        # the folder goes with this object (or at exit): nothing is left in $TMPDIR
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        self.started = 0

    def _start(self) -> None:
        ctx = _context()
        parent, child = ctx.Pipe()
        self._log.write_text("")
        self._process = ctx.Process(
            target=_child,
            args=(
                child,
                list(sys.path),
                self.imports,
                str(self._log),
                self.run_facts,
                self.cuda_index,
            ),
            daemon=True,
        )
        self._process.start()
        child.close()
        self._conn = parent
        self.started += 1

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def run(self, case: Any, options: Any, timeout_s: float | None = None) -> Any:
        """Run ``case`` in the child (starting one if needed); a dead or hung child becomes a
        ``crashed`` row. Ctrl-C raises ``CaseInterrupted`` with the row."""
        result = self._exchange((case, options), case, timeout_s)
        result.row["isolation"] = self.label
        if result.poisoned:
            self.close()
        return result

    def session(self, call: str, case: Any, *args: Any, timeout_s: float | None = None) -> Any:
        """One call of a case's session in the child (harness.run.session: ``open``,
        ``window``, ``finish``, ``abandon``); a dead or hung child gives the case's ``crashed``
        CaseResult instead of the answer. Ctrl-C raises KeyboardInterrupt (the parent keeps
        the windows it has)."""
        return self._exchange(("session", call, case, *args), case, timeout_s, session=True)

    def _exchange(
        self, message: Any, case: Any, timeout_s: float | None, session: bool = False
    ) -> Any:
        from harness.run.outcome import CaseInterrupted

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
                    self._process.kill()
                    self._process.join(5)
                    return self._crashed(
                        case, started, f"no answer after {timeout_s:.0f} s: killed as hung"
                    )
        except KeyboardInterrupt:
            # Ctrl-C: keep what the child measured; further Ctrl-Cs wait until the row and the
            # run's files are saved (the caller restores the handler)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            result = None
            with contextlib.suppress(Exception):  # the child got Ctrl-C too: take its row
                if self._conn.poll(3.0):
                    result = self._conn.recv()
            self.close()
            if session:
                raise
            if result is None:
                result = self._crashed(case, started, "interrupted (Ctrl-C) while the case ran")
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

    def _crashed(self, case: Any, started: float, why: str | None = None) -> Any:
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
        detail = _stderr_summary(self._log)
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
        self._process = None
        self._conn = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
