"""What ``cnnbench compare`` judges and how: the metrics, the shape of its tables, and the
verdict of one ratio (the rule ``Comparison.method`` states). harness.compare.pair applies it
case by case; harness.compare.compare gathers the inputs and the result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.core import schema
from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing
from harness.core.schema import CASE_KEY

METRICS: dict[str, str] = {
    "latency": "latency_s_median",
    "throughput": "throughput_per_s",
    "energy": "energy_j_per_sample",
    "memory": "peak_memory_bytes",
}
HIGHER_IS_BETTER = frozenset({"throughput_per_s"})
STATIC_COLUMNS = ("params", "macs", "activation_bytes")
# Fields shown when they differ between two inputs (the machine, the software, the method).
# fmt: off
ENV_FIELDS = (
    "device", "device_name", "host", "os", "cpu_model", "cpu_cores", "cpu_threads", "ram_bytes",
    "gpu_memory_bytes", "driver_version", "cuda_version", "cudnn_version", "cudnn_benchmark",
    "torch_version", "python_version", "harness_version", "git_commit", "git_dirty",
    "timing_method", "percentile_method", "memory_source", "power_source", "dtype_method",
)
METRICS_WITH_CI = ("latency_s_median", "throughput_per_s")
VERDICTS = ("faster", "slower", "lower", "higher", "same", "noisy", "invalid", "n/a")
# Columns whose value depends on how quiet the machine was: a noisy row gives no verdict.
NOISE_FREE = frozenset({"peak_memory_bytes", "memory_baseline_bytes", *STATIC_COLUMNS})
FLOAT_COLUMNS = ("baseline_value", "candidate_value", "ratio", "ci_low", "ci_high", "change")
PAIR = ("baseline", "candidate")
VALUES = ("baseline_value", "candidate_value")
CASE_COLUMNS = (*PAIR, *CASE_KEY, "metric", "column", *FLOAT_COLUMNS, "verdict",
                "baseline_status", "candidate_status", "na_reason", "noise_reason")
NOISY_COLUMNS = (*PAIR, "side", *CASE_KEY, "validity", "validity_reason")
ENV_COLUMNS = (*PAIR, "field", *VALUES)
STATIC_ROW_COLUMNS = (*PAIR, *CASE_KEY[:4], "column", *VALUES)
SUMMARY_COLUMNS = (*PAIR, "metric", "column", "cases", "geomean_ratio", "ci_low", "ci_high",
                   *VERDICTS)
# fmt: on


def metric_column(name: str) -> str:
    """``latency``/``throughput``/``energy``/``memory`` or a numeric CASES column -> the column."""
    column = METRICS.get(name, name)
    numeric = {
        c.name for c in schema.CASES if pa.types.is_integer(c.type) or pa.types.is_floating(c.type)
    }
    if column not in numeric - {"schema_version"}:
        raise InvalidInputError(
            f"unknown metric {name!r}: use {', '.join(METRICS)} or a numeric result column "
            "(latency_s_p99, power_w_mean, params, ...)"
        )
    return column


def metric_name(column: str) -> str:
    return next((k for k, v in METRICS.items() if v == column), column)


def is_time_like(column: str) -> bool:
    return column.startswith("latency_s_") or column == "throughput_per_s"


def verdict(
    column: str, ratio: float | None, lo: float | None, hi: float | None, eff: float
) -> str:
    if ratio is None:
        return "n/a"
    if (lo is not None and hi is not None and lo <= 1 <= hi) or (1 / (1 + eff) < ratio < 1 + eff):
        return "same"
    better = ratio > 1 if column in HIGHER_IS_BETTER else ratio < 1
    if is_time_like(column):
        return "faster" if better else "slower"
    return "higher" if ratio > 1 else "lower"


def row_validity(row: pd.Series) -> tuple[str | None, str]:
    """``(None, "")`` for a valid row (or one that did not run), else (validity, reason)."""
    validity = row.get("validity")
    if is_missing(validity) or validity == "valid" or row.get("status") != "ok":
        return None, ""
    return str(validity), str(row.get("validity_reason") or "no reason recorded")


ACROSS_COLUMNS = (*PAIR, "setting", *VALUES)
MODEL_COLUMNS = (*PAIR, "metric", "column", "model", "cases", "judged", "geomean_ratio",
                 "verdict", "verdicts")  # fmt: skip
JUDGED = ("faster", "slower", "lower", "higher", "same")
MODEL_RULE = (
    "per model: the geometric mean of the ratios of its judged cases (those with a faster, "
    "slower, lower, higher or same verdict); its verdict is the one every judged case shares, "
    "'mixed' when they differ, 'noisy' when no case is judged because a side is not valid, "
    "'n/a' when no case has both values"
)


def per_model(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per pair, metric and model: cases, judged cases, the geometric mean of the judged
    ratios and the model's verdict (``MODEL_RULE``)."""
    if cases.empty:
        return pd.DataFrame(columns=MODEL_COLUMNS)
    rows = []
    keys = [*PAIR, "metric", "column", "model"]
    for key, g in cases.groupby(keys, sort=False, dropna=False):
        judged = g[g["verdict"].isin(JUDGED) & g["ratio"].notna() & (g["ratio"] > 0)]
        kinds = list(dict.fromkeys(judged["verdict"]))
        if len(kinds) == 1:
            verdict_ = kinds[0]
        elif kinds:
            verdict_ = "mixed"
        elif g["verdict"].isin(("noisy", "invalid")).any():
            verdict_ = "noisy"
        else:
            verdict_ = "n/a"
        counts = g["verdict"].value_counts()
        geo = float(np.exp(np.log(judged["ratio"].astype(float)).mean())) if len(judged) else None
        rows.append(
            {**dict(zip(keys, key, strict=True)), "cases": len(g), "judged": len(judged),
             "geomean_ratio": geo, "verdict": verdict_,
             "verdicts": ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)
