"""Run one Case end to end (validate, profile, build, warm up, time its windows, finish) and
return its row: a block of one case (harness.run.schedule) in this process
(harness.run.session).

The runner knows nothing about pytest and nothing about sweeps (harness.run.sweep holds the policy
across cases: blocks of interleaved cases, out-of-memory memo, budget, isolation, writing).
Whatever goes wrong inside a case becomes the row's ``status`` (``oom``, ``error``,
``skipped``) and ``error``: an exception, a ``SystemExit`` from a model's forward, anything.
Only Ctrl-C escapes, as ``CaseInterrupted`` carrying the row, so the caller can write it and
stop.

A measured row carries its validity (harness.core.signals): its windows must agree
(harness.core.windows), and the noise signals of the windows that speak for it must hold.
Alone, a case's windows follow each other; in a sweep they interleave with other cases'.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from typing import Any

from harness.core.spec import Case
from harness.run.options import RunOptions, max_threads  # noqa: F401 (re-exported)
from harness.run.outcome import CaseInterrupted, CaseResult, base_row
from harness.run.schedule import BlockInterrupted, run_block
from harness.run.session import (  # noqa: F401 (re-exported)
    LocalHost,
    classify_failure,
    default_environment,
)
from harness.run.step import ModelCache


def run_case(
    case: Case,
    options: RunOptions | None = None,
    *,
    environment: dict[str, Any] | None = None,
    models: ModelCache | None = None,
    seed: int = 0,
) -> CaseResult:
    """Measure ``case`` and return its row; failures become the row's status, never a raise.

    ``environment`` is ``collect_environment(...)``'s dict (collected here when None; a sweep
    collects it once). ``models`` reuses a model built by an earlier case of the same key.
    Ctrl-C raises ``CaseInterrupted`` with the row so far.
    """
    options = options or RunOptions()
    started = time.perf_counter()
    env = environment if environment is not None else default_environment(case.device)
    host = LocalHost(lambda device: env, models)
    try:
        block = run_block([case], options, lambda c: host, rng=random.Random(seed))
    except BlockInterrupted as stop:
        if stop.out.results:
            result = stop.out.results[0]
        else:
            row = base_row(case, dict(env))
            row.update(
                status="error",
                error="interrupted (Ctrl-C) while the case ran",
                timestamp_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            result = CaseResult(case, row)
        result.wall_s = time.perf_counter() - started
        raise CaseInterrupted(result) from None
    result = block.results[0]
    result.wall_s = time.perf_counter() - started
    return result
