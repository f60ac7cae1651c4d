"""The roll-up of a layer table by a key (layer type, or the report's coarser category): the one
implementation behind ``ModelProfile.by_type``, ``cnnbench profile --by-type`` (with measured
times) and the report's shares figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd


def roll_up(
    frame: pd.DataFrame,
    key: str | Sequence[object],
    columns: Sequence[str],
    *,
    totals: Mapping[str, float | None] | None = None,
) -> pd.DataFrame:
    """One row per value of ``key`` (a column name, or one label per row), in order of first
    appearance: ``layers`` (how many rows), the sum of each of ``columns`` that the frame has
    (None where no row of the group has a value) and ``<column>_share``: that sum over
    ``totals[column]`` (default: the column's sum over every row; None where either is missing
    or the total is 0)."""
    labels = frame[key] if isinstance(key, str) else pd.Series(list(key), index=frame.index)
    name = key if isinstance(key, str) else "key"
    present = [c for c in columns if c in frame.columns]
    numbers = frame[present].apply(pd.to_numeric, errors="coerce").astype("float64")
    sums = numbers.groupby(labels.to_numpy(), sort=False).sum(min_count=1)
    counts = labels.groupby(labels.to_numpy(), sort=False).size()
    out = pd.DataFrame({name: list(sums.index), "layers": counts.loc[sums.index].to_numpy()})
    for c in present:
        part = sums[c].to_numpy()
        total = (totals or {}).get(c, numbers[c].sum(min_count=1))
        whole = pd.api.types.is_integer_dtype(frame[c].dtype) and not pd.isna(part).any()
        out[c] = part.astype("int64") if whole else part
        usable = total is not None and not pd.isna(total) and total != 0
        out[f"{c}_share"] = part / float(total) if usable else float("nan")  # type: ignore[arg-type]
    return out
