"""CSV as every ``cnnbench ... --format csv`` writes it: each string cell printed inert
(harness.core.textsafe: control characters escaped, a formula-like start neutralised as OWASP
advises), so neither a terminal nor a spreadsheet acts on a string from a result file, a model
name or a layer name."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

import pandas as pd

from harness.core.textsafe import csv_cell, terminal


def _inert(value: str) -> str:
    return csv_cell(terminal(value))


def inert_frame(frame: pd.DataFrame, escape: Callable[[str], str] = _inert) -> pd.DataFrame:
    """``frame`` with every string cell passed through ``escape``: each distinct value escaped
    once, and a column rewritten only when one of its values changes (a new string per cell of
    a 200,000-row comparison held more memory than the comparison itself)."""
    out = frame
    for column in frame.columns:
        values = frame[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        escaped = {v: escape(v) for v in pd.unique(values) if isinstance(v, str)}
        changed = {v: e for v, e in escaped.items() if e != v}
        if changed:
            if out is frame:
                out = frame.copy(deep=False)
            out[column] = values.map(lambda v, c=changed: c.get(v, v) if isinstance(v, str) else v)
    if any(isinstance(c, str) and escape(c) != c for c in out.columns):
        out = out.rename(columns=lambda c: escape(c) if isinstance(c, str) else c)
    return out


def write_csv(frame: pd.DataFrame, file: IO[str]) -> None:
    """``frame`` as CSV on ``file`` (streamed, not built as one string), every string inert."""
    inert_frame(frame).to_csv(file, index=False)
