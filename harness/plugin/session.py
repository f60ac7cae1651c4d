"""What the run sets up once it knows it has cases: the device resolved (torch imported only
then) and the Sweep started (the results directory checked, the fork server started outside
pytest's output capture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import InvalidInputError
from harness.plugin.state import State

BUILTIN_SUITE = Path(__file__).with_name("builtin_suite.py")


def resolve_run(state: State, *, at_configure: bool = False) -> None:
    """Resolve what needs torch (the device, then the scale, options and grid) on first need.

    A device that does not work here (``--cnn-device=cuda`` where CUDA does not: no driver, a
    driver too old for this torch, no GPU) stops the run before anything is collected, in one
    line on stderr with exit status 2 (``at_configure``: pytest prints an exit raised while it
    configures as one line); never a fallback to another device. Any other bad setting is one
    usage line."""
    from harness.core.settings import SettingError

    try:
        state.resolve()
    except SettingError as exc:
        if at_configure and exc.field == "device":
            pytest.exit(f"cnnbench: {exc}", returncode=2)
        raise pytest.UsageError(str(exc)) from None


def start_sweep(config: pytest.Config, state: State) -> None:
    """The run's Sweep, once cases were collected: the results directory checked (a usage error
    before anything is measured), the fork server started for isolation."""
    from harness.results.store import check_writable
    from harness.run.sweep import Sweep

    if state.results_dir is not None:
        try:
            check_writable(state.results_dir)
        except InvalidInputError as exc:
            raise pytest.UsageError(str(exc)) from None
    if state.isolate != "none":
        from harness.run.isolation import start_server

        capture = config.pluginmanager.get_plugin("capturemanager")
        if capture is not None:  # the server must not inherit pytest's capture files
            with capture.global_and_fixture_disabled():
                start_server()
        else:
            start_server()
    worker = state.role == "worker"
    state.sweep = Sweep(
        state.options,
        results_dir=state.results_dir,
        run_id=state.run_id,
        isolate=state.isolate,
        max_minutes=state.max_minutes,
        started=state.started,
        writer_name=state.worker,
        join=worker or state.shard is not None,  # a shard's re-run joins its earlier parts
        merge=not worker,
        worker=state.worker,
        cuda_index=state.cuda_index,  # None under xdist: the worker sees its GPU as cuda:0
        roofs=not state.smoke,
        block_cases=state.block_cases,
    )
    state.run_id = state.sweep.run_id
