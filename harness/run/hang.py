"""How long a case may go without an answer before its child is killed as hung.

A hung forward (a deadlock, a wait on a dead peer) held a sweep 10 minutes per case whatever the
case's size or the budget. The limit of a case now follows what is known of it: its expected
duration (the sweep's estimate from the model's earlier cases) times ``HANG_FACTOR``, at least
``HANG_FLOOR_S``; a model's first case, of unknown duration, gets ``HANG_FIRST_S``; a compiled
case ``COMPILE_S`` more (torch.compile's first call of a large model takes minutes); all of it
plus the time the options plan for the rounds, and never past the budget's end.
"""

from __future__ import annotations

HANG_FACTOR = 10.0
HANG_FLOOR_S = 60.0
HANG_FIRST_S = 300.0
COMPILE_S = 600.0
BUDGET_END = "the end of the budget (--cnn-max-minutes)"


def hang_limit_s(
    expected_s: float | None,
    planned_s: float,
    *,
    compiled: bool = False,
    budget_left_s: float | None = None,
) -> tuple[float, str]:
    """How long a case may go without an answer before its child is killed as hung, and why
    that long (for the row's error). ``expected_s``: the case's expected wall time (None for a
    model's first case); ``planned_s``: the time the options allow the timed rounds;
    ``budget_left_s``: what is left of ``--cnn-max-minutes`` (None: no budget)."""
    if expected_s is None:
        limit = HANG_FIRST_S + planned_s
        why = f"a model's first case gets {HANG_FIRST_S:.0f} s + {planned_s:.0f} s of rounds"
    else:
        limit = max(HANG_FLOOR_S, HANG_FACTOR * expected_s) + planned_s
        why = f"{HANG_FACTOR:g}x its expected {expected_s:.1f} s (at least {HANG_FLOOR_S:.0f} s)"
    if compiled:
        limit += COMPILE_S
        why += f", +{COMPILE_S:.0f} s to compile"
    if budget_left_s is not None and budget_left_s < limit:
        return max(budget_left_s, 1.0), BUDGET_END
    return limit, why
