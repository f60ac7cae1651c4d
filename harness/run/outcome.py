"""What running a case gives back, torch-free: ``CaseResult`` (the row and its side tables),
``CaseInterrupted`` (Ctrl-C with the row so far) and ``base_row`` (the columns every row of a
case has, whatever happens). The plugin, the sweep and isolation read these without importing
the runner (and torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.core.spec import Case

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class CaseResult:
    """One case's row (schema CASES columns) and its side tables.

    ``poisoned``: why this process must run no further case (a sticky CUDA error left the
    context unusable), else None. ``wall_s``: the case's whole time in the runner.
    """

    case: Case
    row: dict[str, Any]
    layers: pd.DataFrame | None = None
    power: pd.DataFrame | None = None
    poisoned: str | None = None
    wall_s: float = field(default=0.0)

    @property
    def status(self) -> str:
        return str(self.row["status"])


class CaseInterrupted(KeyboardInterrupt):
    """Ctrl-C during a case: the sweep stops, but the case's row (``result``) is kept."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__("interrupted")
        self.result = result


def base_row(case: Case, environment: dict[str, Any]) -> dict[str, Any]:
    """The identifying and environment columns every row of a case has, whatever happens."""
    return {**environment, **case.to_dict(), "case_id": case.case_id, "isolation": "none"}


class ResultsNotWritable(HarnessError):
    """The results could not be written (a full disk, a directory gone): the sweep stops."""


@dataclass
class Opened:
    """A case opened for its windows (harness.run.session): the row so far (profile, device
    facts, first call, warm-up), its static layer table, and the plan of its windows from the
    per-call estimate. ``result`` instead when the case ended there (failed, skipped)."""

    row: dict[str, Any] = field(default_factory=dict)
    layers: pd.DataFrame | None = None
    estimate_s: float = 0.0
    windows: int = 0
    rounds: int = 0
    warmup: int = 0
    wall_s: float = 0.0
    result: CaseResult | None = None


@dataclass
class WindowRecord:
    """One timed window of a case: its index, its start (``time.perf_counter``: one clock for
    every process of the machine), the samples, and what competed for the CPU during it
    (harness.measure.noise: the raw counts, summed over the windows that speak for the row)."""

    index: int
    start_s: float
    samples_s: list[float]
    noise: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass
class Finished:
    """What a case measured after its windows (memory, layer times, energy in its own window,
    Dynamo statistics) and how it ended: ``status``/``error`` when that failed, ``poisoned``
    when the process must run nothing more."""

    columns: dict[str, Any] = field(default_factory=dict)
    layers: pd.DataFrame | None = None
    power: pd.DataFrame | None = None
    status: str = "ok"
    error: str | None = None
    poisoned: str | None = None
    invalid: str | None = None  # why the row is invalid whatever its windows say
    wall_s: float = 0.0
