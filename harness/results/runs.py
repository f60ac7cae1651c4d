"""Which rows speak for a configuration: one run per (host, device, settings), one row per case.

Result directories accumulate runs: a quiet one, one taken under load, one at one thread. Pooling
them silently mixes machines' states (a claim once compared Inception 3a from one run with its
naive twin from another). So every consumer that draws a conclusion per model (claims, the
report's per-model figures) reads rows through ``select_runs``:

* Rows are grouped by configuration, ``CONFIG_COLUMNS``: the host, the device, the CPU threads
  that ran and the torch version. A thread sweep in one run gives one configuration per count.
* Within a configuration the most complete run is chosen (``RUN_RANK``): the run that measured
  the most cases, then a complete one before an interrupted one, then the latest. A user's
  directory holds two full runs, a three-model ``-n auto`` try and a thread sweep: the full runs
  speak for the configuration, not the small run that happened to finish last.
  ``all_runs=True`` pools every run on purpose; ``runs=[...]`` draws the runs named.
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

from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing
from harness.core.schema import CASE_KEY

# A GPU's index is a fact of the row (device, gpu_index, gpu_uuid), never part of its
# configuration: pytest-xdist spreads one run's models over the GPUs of one model.
CONFIG_COLUMNS = ("host", "device_name", "cpu_threads", "torch_version")
SELECTION_RULE = (
    "one run per (host, device, CPU threads, torch version): the most complete one (the most "
    "measured cases, then complete before interrupted, then the latest); --all-runs pools them, "
    "--run ID draws the runs named"
)
RUN_RANK = ("measured", "complete", "last_timestamp")  # the best run has the largest of each
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
    """The rows kept and, per configuration, the runs seen and the ones chosen.

    ``runs`` has one row per (configuration, run): ``rows``, ``measured`` (ok rows), ``valid``,
    ``complete``, ``last_timestamp`` and ``chosen``.
    """

    frame: pd.DataFrame
    runs: pd.DataFrame
    all_runs: bool
    dropped_duplicates: dict[str, int] = field(default_factory=dict)
    named: tuple[str, ...] = ()

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
            if chosen.empty:
                lines.append(f"{config}: no run named by --run; {len(runs)} run(s) left out")
                continue
            drawn = "; ".join(run_text(r) for r in records(chosen))
            left = len(runs) - len(chosen)
            more = f"; {left} other run(s) left out ({RUN_FLAGS})" if left else ""
            lines.append(f"{config}: {drawn}{more}")
        if self.dropped_duplicates:
            parts = ", ".join(f"{n} {why}" for why, n in self.dropped_duplicates.items())
            lines.append(f"duplicate case rows dropped: {parts} ({DUPLICATE_RULE})")
        return lines

    def drawn(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(runs drawn, runs left out), each run a dict of its ``runs`` row."""
        return records(self.runs[self.runs["chosen"]]), records(self.runs[~self.runs["chosen"]])

    def rule(self) -> str:
        """What chose the runs drawn, in a phrase."""
        if self.all_runs:
            return "every run pooled (--all-runs), one row per case: " + DUPLICATE_RULE
        if self.named:
            return f"the runs named by --run ({', '.join(self.named)})"
        return (
            "per configuration, the run that measured the most cases (then complete, then latest)"
        )


RUN_FLAGS = "cnnbench report --all-runs pools them, --run ID draws a run"


def run_text(run: Mapping[str, Any]) -> str:
    """``run 20261129T1012Z-ab12 (31 cases: 12 valid)``, ``(interrupted)`` where it was."""
    state = "" if run["complete"] else ", interrupted"
    return f"run {run['run_id']} ({run['measured']} measured, {run['valid']} valid{state})"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def _valid(df: pd.DataFrame) -> pd.Series:
    if "validity" not in df:
        return pd.Series(False, index=df.index)
    return df["validity"].astype("string").eq("valid").fillna(False)


def _measured(df: pd.DataFrame) -> pd.Series:
    if "status" not in df:
        return pd.Series(True, index=df.index)
    return df["status"].astype("string").eq("ok").fillna(False)


def _choose(runs: pd.DataFrame, named: Sequence[str]) -> pd.Series:
    """Which runs are drawn: the named ones, else per configuration the best by ``RUN_RANK``
    (most measured cases, complete before interrupted, latest)."""
    if named:
        return runs["run_id"].isin(list(named))
    chosen = pd.Series(False, index=runs.index)
    for _, group in runs.groupby("config", sort=False):
        ranked = group.sort_values(list(RUN_RANK), na_position="first", kind="stable")
        chosen[ranked.index[-1]] = True
    return chosen


def select_runs(
    df: pd.DataFrame, *, all_runs: bool = False, runs: Sequence[str] | None = None
) -> RunSelection:
    """Keep, per configuration, the most complete run's rows (every run's with ``all_runs``, the
    runs named in ``runs``), then one row per case (``pick_one_per_case``)."""
    named = tuple(dict.fromkeys(runs or ()))
    if df.empty:
        empty = pd.DataFrame(
            columns=["config", "run_id", "rows", "measured", "valid", "complete",
                     "last_timestamp", "chosen"]
        )  # fmt: skip
        return RunSelection(df.copy(), empty, all_runs, named=named)
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
        {"config": config, "run_id": run_ids, "complete": complete, "stamp": _stamps(work),
         "measured": _measured(work), "valid": _valid(work)}
    )  # fmt: skip
    table = (
        info.groupby(["config", "run_id"], sort=False)
        .agg(rows=("stamp", "size"), measured=("measured", "sum"), valid=("valid", "sum"),
             complete=("complete", "all"), last_timestamp=("stamp", "max"))
        .reset_index()
    )  # fmt: skip
    unknown = [r for r in named if r not in set(table["run_id"])]
    if unknown:
        raise InvalidInputError(
            f"--run {', '.join(unknown)}: no such run in these results; the runs: "
            f"{', '.join(dict.fromkeys(table['run_id']))}"
        )
    table["chosen"] = True if all_runs else _choose(table, named)
    keep = table.loc[table["chosen"], ["config", "run_id"]]
    chosen = set(zip(keep["config"], keep["run_id"], strict=True))
    mask = [(c, r) in chosen for c, r in zip(info["config"], info["run_id"], strict=True)]
    kept = work[mask]
    kept, dropped = pick_one_per_case(kept, by=(*CASE_KEY, *CONFIG_COLUMNS))
    table["config"] = table["config"].map(labels)
    table = table.sort_values(["config", "last_timestamp"], kind="stable").reset_index(drop=True)
    return RunSelection(kept.reset_index(drop=True), table, all_runs, dropped, named)


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
