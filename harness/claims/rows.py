"""Picking comparable measured rows out of a results table (the ``cases`` table of
``load_results``) for the measured claims, and the ratio of two rows' latencies with a
bootstrap interval from their raw samples.

Rows are comparable when they share a device and a configuration (batch size, dtype, memory
format, mode, compiled). Per device the configuration covering the most of the models a claim
needs is taken; ties prefer inference, eager, contiguous, float32 and the smallest batch. Only
rows with status ``ok`` count; a case measured in several runs counts once, the latest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import InvalidInputError
from harness.results.bootstrap import log_median_ratio_draws, sample_array

REQUIRED = ("model", "status", "batch_size", "dtype", "device", "macs", "latency_s_median")
OPTIONAL: dict[str, Any] = {
    "device_name": "",
    "input_shape": "",
    "memory_format": "contiguous",
    "mode": "inference",
    "compiled": False,
    "timestamp_utc": "",
    "run_id": "",
    "peak_memory_bytes": None,
    "energy_j_per_sample": None,
    "power_source": "",
    "latency_s_samples": None,
    "params": None,
}
CONFIG = ("batch_size", "dtype", "memory_format", "mode", "compiled")
DEVICE = ("device_name", "device")
CI_LEVEL = 0.95
N_RESAMPLES = 4000


def missing(value: Any) -> bool:
    """None, NA or NaN."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def ok_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows with status ok and a latency and MACs, as plain Python values, one per case
    (the latest by timestamp). Raises InvalidInputError for a table that is not the cases
    table."""
    if not isinstance(results, pd.DataFrame):
        raise InvalidInputError(
            f"results must be a pandas DataFrame (the cases table of "
            f"harness.load_results(paths)), got {type(results).__name__}"
        )
    absent = [c for c in REQUIRED if c not in results.columns]
    if absent:
        raise InvalidInputError(
            f"results lack the columns {', '.join(absent)}: pass the cases table of "
            "harness.load_results(paths) (not the layers or power table)"
        )
    frame = results.astype(object).copy()
    for col, default in OPTIONAL.items():
        if col not in frame.columns:
            frame[col] = [default] * len(frame)
    frame = frame.where(frame.notna(), None)
    frame = frame[[s == "ok" for s in frame["status"]]]
    for col in ("latency_s_median", "macs"):  # a row without either says nothing here
        frame = frame[[not missing(v) and v > 0 for v in frame[col]]]
    frame = frame.sort_values("timestamp_utc", key=lambda s: s.astype(str), kind="stable")
    case = [*DEVICE, *CONFIG, "model", "input_shape"]
    return frame.drop_duplicates(subset=case, keep="last").reset_index(drop=True)


@dataclass(frozen=True)
class Selection:
    """Comparable rows of one device: one configuration, one row per model (or per model and
    input when ``by_input``)."""

    rows: pd.DataFrame
    config: dict[str, Any]

    def row(self, model: str) -> pd.Series | None:
        hit = self.rows[self.rows["model"] == model]
        return None if hit.empty else hit.iloc[0]

    def describe(self) -> str:
        """Which rows: device, configuration, how many rows from which runs."""
        c = self.config
        runs = sorted({str(r) for r in self.rows["run_id"] if r})
        shown = ", ".join(runs[:2]) + (f" and {len(runs) - 2} more" if len(runs) > 2 else "")
        return (
            f"{c['device_name'] or 'unknown device'} ({c['device']}), batch {c['batch_size']}, "
            f"{c['dtype']}, {c['mode']}, {c['memory_format']}, "
            f"{'compiled' if c['compiled'] else 'eager'}: {len(self.rows)} rows"
            + (f" from run {shown}" if shown else "")
        )


def _preference(config: dict[str, Any], covered: int) -> tuple:
    return (
        -covered,
        config["mode"] != "inference",
        bool(config["compiled"]),
        config["memory_format"] != "contiguous",
        config["dtype"] != "float32",
        config["batch_size"],
    )


def select(
    frame: pd.DataFrame,
    models: Sequence[str] | None,
    min_models: int,
    same_input: bool = True,
) -> list[Selection]:
    """Per device, the configuration covering the most of ``models`` (None: any model), if it
    covers at least ``min_models``. ``same_input`` also requires one input shape (the most
    common one of the configuration)."""
    chosen = []
    for _, device_rows in frame.groupby(list(DEVICE), dropna=False, sort=True):
        best: tuple | None = None
        keys = [*CONFIG, "input_shape"] if same_input else list(CONFIG)
        for _, rows in device_rows.groupby(keys, dropna=False, sort=True):
            if models is not None:
                rows = rows[rows["model"].isin(models)]
            covered = rows["model"].nunique()
            if covered < min_models:
                continue
            first = rows.iloc[0]
            config = {k: first[k] for k in (*DEVICE, *CONFIG)}
            rank = _preference(config, covered)
            if best is None or rank < best[0]:
                best = (rank, Selection(rows.reset_index(drop=True), config))
        if best is not None:
            chosen.append(best[1])
    return chosen


def latency_ratio(
    base: pd.Series, cand: pd.Series, seed: int = 0
) -> tuple[float, float | None, float | None]:
    """cand / base median latency, and a 95% bootstrap interval of the ratio of medians from
    the raw samples (None, None when either row has none)."""
    ratio = float(cand["latency_s_median"]) / float(base["latency_s_median"])
    bs, cs = (
        sample_array(base.get("latency_s_samples")),
        sample_array(cand.get("latency_s_samples")),
    )
    if bs is None or cs is None:
        return ratio, None, None
    draws = log_median_ratio_draws(bs, cs, N_RESAMPLES, np.random.default_rng(seed))
    alpha = (1 - CI_LEVEL) / 2
    lo, hi = np.exp(np.quantile(draws, [alpha, 1 - alpha]))
    return ratio, float(lo), float(hi)


def ratio_text(ratio: float, lo: float | None, hi: float | None) -> str:
    """'1.23x (95% CI 1.10-1.35)' or '1.23x (no samples for an interval)'."""
    if lo is None or hi is None:
        return f"{ratio:.2f}x (no raw samples for an interval)"
    return f"{ratio:.2f}x (95% CI {lo:.2f}-{hi:.2f})"


def direction(ratio: float, lo: float | None, hi: float | None) -> int:
    """+1 when the ratio is above 1 beyond noise, -1 below, 0 when the interval holds 1
    (without an interval the point ratio decides)."""
    if lo is None or hi is None:
        return (ratio > 1) - (ratio < 1)
    return 1 if lo > 1 else -1 if hi < 1 else 0


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when a side is constant."""
    xs, ys = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    return float(xs.rank().corr(ys.rank()))
