"""Which rows speak for a configuration: one run per (host, device, settings), one row per case.

Result directories accumulate runs: a quiet one, one taken under load, one at one thread. Pooling
them silently mixes machines' states (a claim once compared Inception 3a from one run with its
naive twin from another). So every consumer that draws a conclusion per model (claims, the
report's per-model figures) reads rows through ``select_runs``:

* Rows are grouped by configuration, ``CONFIG_COLUMNS``: the host, the device, the CPU threads
  that ran and the torch version. A thread sweep in one run gives one configuration per count.
* Within a configuration the latest complete run is chosen (the one whose last case finished
  last); without a complete run, the latest incomplete one, and the note says so.
  ``all_runs=True`` pools every run on purpose.
* Within what is kept, one row per case and configuration (``pick_one_per_case``): a valid row
  beats an unassessed one (an older file's), which beats a noisy or invalid one, which beats a
  case that did not run; among equals the latest ``timestamp_utc`` wins. What was dropped, and
  why, is counted.

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.core.missing import is_missing
from harness.core.schema import CASE_KEY

# A GPU's index is a fact of the row (device, gpu_index, gpu_uuid), never part of its
# configuration: pytest-xdist spreads one run's models over the GPUs of one model.
CONFIG_COLUMNS = ("host", "device_name", "cpu_threads", "torch_version")
SELECTION_RULE = (
    "one run per (host, device, CPU threads, torch version): the latest complete one "
    "(else the latest incomplete one); --all-runs pools them"
)
DUPLICATE_RULE = (
    "one row per case: a valid row beats an unassessed one, which beats a noisy or invalid one, "
    "which beats a case that did not run; then the latest timestamp_utc"
)
_RANK = {"valid": 0, None: 1, "noisy": 2, "invalid": 2}


def _text(value: Any) -> str:
    return "-" if is_missing(value) else str(value)


def device_kind(value: Any) -> str:
    """``cuda:3`` -> ``cuda``: the kind of device a row ran on, without its index."""
    return "-" if is_missing(value) else str(value).split(":", 1)[0]


def config_key(row: Mapping[str, Any] | pd.Series) -> tuple[str, ...]:
    return tuple(_text(row.get(c)) for c in CONFIG_COLUMNS)


def config_label(row: Mapping[str, Any] | pd.Series) -> str:
    """``host-a, Intel Xeon ..., 2 threads, torch 2.13.0``: a configuration for people."""
    host, device, threads, torch_version = config_key(row)
    parts = [host, device]
    if threads != "-":
        parts.append(f"{threads} thread{'s' if threads != '1' else ''}")
    if torch_version != "-":
        parts.append(f"torch {torch_version}")
    return ", ".join(parts)


def _config_series(df: pd.DataFrame) -> pd.Series:
    cols = [df[c].astype("string").fillna("-") if c in df else pd.Series("-", index=df.index)
            for c in CONFIG_COLUMNS]  # fmt: skip
    return pd.Series(
        ["\x1f".join(parts) for parts in zip(*cols, strict=True)], index=df.index, dtype=object
    )


def _stamps(df: pd.DataFrame) -> pd.Series:
    if "timestamp_utc" not in df:
        return pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    return pd.to_datetime(
        df["timestamp_utc"].astype("string"), utc=True, errors="coerce", format="ISO8601"
    )


@dataclass
class RunSelection:
    """The rows kept and, per configuration, the runs seen and the one chosen."""

    frame: pd.DataFrame
    runs: pd.DataFrame  # config, run_id, rows, complete, last_timestamp, chosen
    all_runs: bool
    dropped_duplicates: dict[str, int] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """One line per configuration with more than one run, and one for dropped duplicates."""
        lines: list[str] = []
        for config, runs in self.runs.groupby("config", sort=False):
            if len(runs) < 2 and runs["complete"].all():
                continue
            chosen = runs[runs["chosen"]]
            if self.all_runs:
                lines.append(f"{config}: {len(runs)} runs pooled (--all-runs)")
                continue
            run = chosen.iloc[0]
            state = "complete" if run["complete"] else "incomplete (no complete run)"
            left = len(runs) - 1
            more = f"; {left} other run(s) left out (--all-runs pools them)" if left else ""
            lines.append(f"{config}: run {run['run_id']} ({state}){more}")
        if self.dropped_duplicates:
            parts = ", ".join(f"{n} {why}" for why, n in self.dropped_duplicates.items())
            lines.append(f"duplicate case rows dropped: {parts} ({DUPLICATE_RULE})")
        return lines


def select_runs(df: pd.DataFrame, *, all_runs: bool = False) -> RunSelection:
    """Keep, per configuration, the latest complete run's rows (every run's with ``all_runs``),
    then one row per case (``pick_one_per_case``)."""
    if df.empty:
        empty = pd.DataFrame(
            columns=["config", "run_id", "rows", "complete", "last_timestamp", "chosen"]
        )
        return RunSelection(df.copy(), empty, all_runs)
    work = df.reset_index(drop=True)
    config = _config_series(work)
    labels = {key: config_label(work.loc[i]) for i, key in config.drop_duplicates().items()}
    run_ids = work["run_id"].astype("string").fillna("-") if "run_id" in work else "-"
    complete = (
        work["run_complete"].astype("boolean").fillna(False)
        if "run_complete" in work
        else pd.Series(False, index=work.index)
    )
    info = pd.DataFrame(
        {"config": config, "run_id": run_ids, "complete": complete, "stamp": _stamps(work)}
    )
    runs = (
        info.groupby(["config", "run_id"], sort=False)
        .agg(rows=("stamp", "size"), complete=("complete", "all"), last_timestamp=("stamp", "max"))
        .reset_index()
    )
    runs["chosen"] = all_runs
    if not all_runs:
        for _, group in runs.groupby("config", sort=False):
            pool = group[group["complete"]] if group["complete"].any() else group
            best = pool.sort_values("last_timestamp", na_position="first", kind="stable").index[-1]
            runs.loc[best, "chosen"] = True
    keep = runs.loc[runs["chosen"], ["config", "run_id"]]
    chosen = set(zip(keep["config"], keep["run_id"], strict=True))
    mask = [(c, r) in chosen for c, r in zip(info["config"], info["run_id"], strict=True)]
    kept = work[mask]
    kept, dropped = pick_one_per_case(kept, by=(*CASE_KEY, *CONFIG_COLUMNS))
    runs["config"] = runs["config"].map(labels)
    runs = runs.sort_values(["config", "last_timestamp"], kind="stable").reset_index(drop=True)
    return RunSelection(kept.reset_index(drop=True), runs, all_runs, dropped)


def _rank(df: pd.DataFrame) -> pd.Series:
    status = df["status"].astype("string") if "status" in df else pd.Series("ok", index=df.index)
    validity = (
        df["validity"].astype("string") if "validity" in df else pd.Series(pd.NA, index=df.index)
    )
    ranks = [
        3 if s != "ok" else _RANK.get(None if is_missing(v) else str(v), 2)
        for s, v in zip(status.fillna("-"), validity, strict=True)
    ]
    return pd.Series(ranks, index=df.index)


def pick_one_per_case(
    df: pd.DataFrame, by: Sequence[str] = CASE_KEY
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per value of ``by`` (``DUPLICATE_RULE``); -> (rows, {why dropped: count}).

    The order of the rows that remain is their order in ``df``.
    """
    if df.empty:
        return df, {}
    cols = [c for c in by if c in df]
    work = df.copy()
    key = work[cols].astype("string").fillna("<NA>")
    work["_key"] = ["\x1f".join(k) for k in key.itertuples(index=False)]
    work["_rank"] = _rank(work)
    work["_stamp"] = _stamps(work)
    work["_order"] = range(len(work))
    ordered = work.sort_values(
        ["_key", "_rank", "_stamp", "_order"],
        ascending=[True, True, False, False],
        na_position="last",
        kind="stable",
    )
    winners = ordered.drop_duplicates("_key", keep="first")
    losers = ordered.drop(index=winners.index)
    dropped: dict[str, int] = {}
    if len(losers):
        best = winners.set_index("_key")["_rank"]
        for key, rank in zip(losers["_key"], losers["_rank"], strict=True):
            why = _why_dropped(rank, int(best[key]))
            dropped[why] = dropped.get(why, 0) + 1
    kept = winners.sort_values("_order").drop(columns=["_key", "_rank", "_stamp", "_order"])
    return kept, dropped


def _why_dropped(rank: int, winner_rank: int) -> str:
    if rank == winner_rank:
        return "older (the same case measured later won)"
    return {
        1: "unassessed (a valid row of the same case won)",
        2: "noisy or invalid (a better row of the same case won)",
        3: "not run (a measured row of the same case won)",
    }[rank]
