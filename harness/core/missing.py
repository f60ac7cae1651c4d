"""Why a result value is missing: one wording for `cnnbench compare` and the HTML report.

A metric that could not be measured is null and another column says why: the case's ``status``
and ``error`` when it failed, otherwise the metric's source column (``power_reason`` /
``power_source`` for power and energy, ``memory_source`` for peak memory).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.core.schema import SCHEMA_VERSION

# Where the reason for a missing power value is recorded, most specific first.
POWER_REASONS = ("power_reason", "power_source")
POWER_COLUMN_PREFIXES = ("power_w_", "energy_j_", "samples_per_j")


def is_missing(value: Any) -> bool:
    """True for None, NaN, pd.NA and NaT (pandas' nullable missing values included)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays: present
        return False


def number(row: Mapping[str, Any], key: str) -> float | None:
    """``row[key]`` as a float; None where it is missing or not a number."""
    value = row.get(key)
    if is_missing(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text_or(value: Any, default: str) -> str:
    return default if is_missing(value) or str(value) == "" else str(value)


def reason_columns(column: str) -> tuple[str, ...]:
    """The columns that say why ``column`` was not measured (none for timing: a case without
    latency failed, and its status says why)."""
    if column.startswith(POWER_COLUMN_PREFIXES):
        return POWER_REASONS
    return ("memory_source",) if column == "peak_memory_bytes" else ()


def missing_reason(
    row: Mapping[str, Any] | pd.Series, what: str, sources: str | Sequence[str] | None
) -> str:
    """Why ``what`` has no value in this row: the case's failure, else the first of the
    ``sources`` columns (``power_reason``, ``power_source``...) that holds a reason, else that
    it was not recorded (naming the schema version of a file older than this one)."""
    status = row.get("status")
    if not is_missing(status) and status != "ok":
        return f"{status}: {_text_or(row.get('error'), 'no error message recorded')}"
    columns = [sources] if isinstance(sources, str) else list(sources or ())
    for column in columns:
        if not is_missing(row.get(column)) and str(row.get(column)) != "":
            return f"{what} not measured: {row.get(column)}"
    version = row.get("schema_version")
    if not is_missing(version) and int(version) < SCHEMA_VERSION:
        return f"{what} not recorded (a schema version {int(version)} file)"
    return f"{what} not recorded"


def pair_reason(
    sides: Mapping[str, tuple[Mapping[str, Any] | pd.Series, float | None]],
    what: str,
    sources: Sequence[str],
) -> str:
    """Why no ratio could be formed from ``{side: (row, value)}``: each missing side's reason,
    or one line for both when they agree; a baseline of 0 when both have values."""
    why = {
        side: missing_reason(row, what, sources) for side, (row, v) in sides.items() if v is None
    }
    if not why:
        return "the baseline value is 0"
    if len(why) == len(sides) > 1 and len(set(why.values())) == 1:
        return f"both: {next(iter(why.values()))}"
    return "; ".join(f"{side}: {text}" for side, text in why.items())
