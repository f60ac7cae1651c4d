"""The child side of crash isolation (harness.run.isolation): a child process's set-up (its
output into the parent's pipe, faulthandler, SIGTERM and SIGHUP as Ctrl-C, death with the fork
server) and its loop, answering the parent's messages until told to stop, interrupted, or
poisoned by a sticky CUDA error."""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import importlib
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _interrupt_once(signum: int, frame: Any) -> None:
    """Ctrl-C, SIGTERM or SIGHUP in a child: the case stops and its row goes to the parent;
    later signals (the terminal's and the parent's both) must not tear that."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the fork server) ends, so a hung child
    never outlives a killed sweep."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() == 1:  # the parent was gone before the call
                os._exit(1)


def _child_process_setup(output: Connection) -> None:
    """A child's stdout and stderr into the parent's pipe, faulthandler for a crash (and, on
    SIGUSR1, for the stack of a hung case), signals as Ctrl-C, death with the fork server."""
    _die_with_parent()
    os.dup2(output.fileno(), 2)
    os.dup2(output.fileno(), 1)
    output.close()
    faulthandler.enable(file=sys.stderr, all_threads=False)
    if hasattr(signal, "SIGUSR1"):  # the parent asks for the stack of a hung case
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    for s in STOP_SIGNALS:  # as Ctrl-C: the row is kept
        signal.signal(s, _interrupt_once)


def child_main(
    conn: Connection,
    sys_path: list[str],
    imports: list[str],
    output: Connection,
    run_facts: dict[str, Any],
    cuda_index: int | None,
) -> None:
    """The child's loop: receive (case, options), answer with the CaseResult, until told to
    stop, interrupted, or poisoned by a sticky CUDA error."""
    _child_process_setup(output)
    for p in reversed(sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    for name in imports:
        importlib.import_module(name)
    from harness.measure.profiling import profiled_through_cupti
    from harness.run.runner import CaseInterrupted, run_case
    from harness.run.step import ModelCache

    if cuda_index is not None:
        import torch

        torch.cuda.set_device(cuda_index)
    import gc

    gc.freeze()  # what the imports made is never garbage: later collections skip it
    models = ModelCache()
    environment = _Environments(run_facts)

    host = None
    cupti = False  # a case of this process was profiled through CUPTI
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
                for s in STOP_SIGNALS:  # a second signal must not tear it
                    signal.signal(s, signal.SIG_IGN)
                conn.send(("interrupted",))
                return
            conn.send(reply)
            if getattr(reply, "poisoned", None) or getattr(
                getattr(reply, "result", None), "poisoned", None
            ):
                return  # a sticky CUDA error: no later case runs in this context
            # CUPTI attached by a case's layer times: leave once no case of the block is open
            # (the parent closes this process then too: harness.run.hosts)
            cupti = cupti or profiled_through_cupti(getattr(reply, "columns", None) or {})
            if cupti and not host.sessions:
                return
            continue
        if message[0] == "environment":  # the device's facts, for rows the parent writes
            conn.send(environment(message[1]))
            continue
        if message[0] == "roofs":  # the device's measured roofs, once per run, dtype, threads
            conn.send(_roofs(*message[1:]))
            continue
        case, options = message
        try:
            result = run_case(case, options, environment=environment(case.device), models=models)
        except CaseInterrupted as stop:
            for s in STOP_SIGNALS:  # a second signal must not tear it
                signal.signal(s, signal.SIG_IGN)
            conn.send(stop.result)
            return
        conn.send(result)
        if result.poisoned or profiled_through_cupti(result.row):
            return  # a broken context, or CUPTI attached: later cases get a fresh process


def _roofs(device: str, dtype: str, threads: int | None) -> Any:
    """The device's measured roofs (harness.measure.roofs), or the error as one line."""
    import torch

    from harness.measure.roofs import roof_columns
    from harness.measure.timing import fixed_threads

    try:
        with fixed_threads(threads):
            return roof_columns(device, getattr(torch, dtype))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


class _Environments:
    """The device's facts with the run's, once per device (a device that does not work here
    has the run's facts only: the row says why it did not run)."""

    def __init__(self, run_facts: dict[str, Any]) -> None:
        self.run_facts = run_facts
        self.known: dict[str, dict[str, Any]] = {}

    def __call__(self, name: str) -> dict[str, Any]:
        from harness.measure.devices import resolve_device
        from harness.measure.env import collect_environment

        device = str(resolve_device(name))
        if device not in self.known:
            try:
                self.known[device] = {**collect_environment(device), **self.run_facts}
            except Exception:
                self.known[device] = dict(self.run_facts)
        return self.known[device]
