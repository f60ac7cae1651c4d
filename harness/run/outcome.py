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
