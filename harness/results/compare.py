"""Compare runs across hardware and time: join on the case key, ratios with noise bounds, verdicts.

Rules (also in ``Comparison.method``):

* Cases are joined on ``harness.cases.CASE_KEY``. Every ratio is candidate / baseline.
* Latency (``latency_s_median``): a percentile bootstrap confidence interval of the ratio of
  medians from the raw ``latency_s_samples`` of both sides (``n_resamples`` resamples, level
  ``ci_level``, a fixed ``seed``; each case gets its own stream, so filtering does not change
  a case's interval). Throughput is ``batch_size / latency_s_median`` with the same batch on
  both sides, so its ratio is the inverse of latency's and so is its interval. Energy, memory
  and every other column have no raw samples: their ratio comes without an interval.
* Verdict: ``same`` when the interval contains 1, or when the ratio lies within a factor of
  ``1 + min_effect`` of 1 either way (default 2%); otherwise ``faster``/``slower`` for time
  and throughput columns, ``lower``/``higher`` for the others; ``n/a`` when either side has no
  value (a failed case, an unmeasured metric), with each side's reason in ``na_reason``.
* The same case twice in one input: the row with the latest ``timestamp_utc`` wins (on a tie,
  the one read last); the number dropped is reported per input.
* Static columns (params, macs, activation_bytes) that differ for a matched case are listed:
  the model definition changed between the runs.
"""

from __future__ import annotations

import fnmatch
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.errors import InvalidInputError
from harness.results import schema
from harness.results.bootstrap import log_median_ratio_draws, sample_array
from harness.results.missing import is_missing, pair_reason, reason_columns
from harness.results.schema import CASE_KEY
from harness.results.store import PathLike, load_results

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
VERDICTS = ("faster", "slower", "lower", "higher", "same", "n/a")
FLOAT_COLUMNS = ("baseline_value", "candidate_value", "ratio", "ci_low", "ci_high", "change")
PAIR = ("baseline", "candidate")
VALUES = ("baseline_value", "candidate_value")
CASE_COLUMNS = (*PAIR, *CASE_KEY, "metric", "column", *FLOAT_COLUMNS, "verdict",
                "baseline_status", "candidate_status", "na_reason")
ENV_COLUMNS = (*PAIR, "field", *VALUES)
STATIC_ROW_COLUMNS = (*PAIR, *CASE_KEY[:4], "column", *VALUES)
SUMMARY_COLUMNS = (*PAIR, "metric", "column", "cases", "geomean_ratio", "ci_low", "ci_high",
                   *VERDICTS)
# fmt: on
DUPLICATE_RULE = "the row with the latest timestamp_utc wins (on a tie, the one read last)"

ResultsInput = PathLike | Iterable[PathLike] | pd.DataFrame


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


@dataclass
class Comparison:
    """Everything ``cnnbench compare`` shows; ``cases`` is what ``compare()`` returns."""

    inputs: pd.DataFrame
    cases: pd.DataFrame
    only: pd.DataFrame
    environment: pd.DataFrame
    static: pd.DataFrame
    summary: pd.DataFrame
    method: dict[str, Any] = field(default_factory=dict)

    def failures(self, thresholds: dict[str, float]) -> pd.DataFrame:
        """Cases worse than ``thresholds`` (column -> allowed worsening, 0.05 = 5%).

        A case fails when its change in the worse direction exceeds the threshold and, where a
        confidence interval exists, the whole interval lies on the worse side of 1; or when it
        was ``ok`` in the baseline and is not in the candidate.
        """
        rows = []
        c = self.cases
        for column, limit in thresholds.items():
            sel = c[c["column"] == column]
            for r in sel.itertuples(index=False):
                reason = None
                bad = not is_missing(r.candidate_status) and r.candidate_status != "ok"
                if r.baseline_status == "ok" and bad:
                    reason = f"status ok -> {r.candidate_status}"
                elif not is_missing(r.ratio):
                    worse = (1 - r.ratio) if column in HIGHER_IS_BETTER else (r.ratio - 1)
                    if column in HIGHER_IS_BETTER:
                        noise = not is_missing(r.ci_high) and r.ci_high >= 1
                    else:
                        noise = not is_missing(r.ci_low) and r.ci_low <= 1
                    if worse > limit and not noise:
                        reason = f"{worse:.1%} worse (limit {limit:.1%})"
                if reason:
                    rows.append({**r._asdict(), "limit": limit, "reason": reason})
        return pd.DataFrame(rows, columns=[*c.columns, "limit", "reason"])


def _label(item: ResultsInput, i: int) -> str:
    if isinstance(item, pd.DataFrame):
        return f"input {i + 1}"
    if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__"):
        return str(item)
    return " + ".join(str(p) for p in item)


def _unique(labels: list[str]) -> list[str]:
    """The same file given twice (a sanity check) gets ``#2`` after its second label."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _prepare(
    frame: pd.DataFrame, label: str, models: Sequence[str] | None
) -> tuple[pd.DataFrame, int]:
    """Filter by model patterns, drop duplicate cases (latest wins); -> (frame, dropped)."""
    missing = [k for k in CASE_KEY if k not in frame.columns]
    if missing:
        raise InvalidInputError(f"{label}: the results lack the case key column(s) {missing}")
    df = frame.reset_index(drop=True)
    if models:
        names = df["model"].astype("string").fillna("")
        keep = [any(fnmatch.fnmatchcase(m, p) for p in models) for m in names]
        df = df[keep].reset_index(drop=True)
    keys = df[list(CASE_KEY)].astype("string").fillna("<NA>")
    df["_key"] = ["|".join(k) for k in keys.itertuples(index=False)]
    df["_order"] = range(len(df))
    if "timestamp_utc" in df:
        stamps = df["timestamp_utc"].astype("string")
        df["_stamp"] = pd.to_datetime(stamps, utc=True, errors="coerce", format="ISO8601")
    else:
        df["_stamp"] = pd.NaT
    df = df.sort_values(["_stamp", "_order"], na_position="first", kind="stable")
    deduped = df.drop_duplicates("_key", keep="last").sort_values("_order")
    return deduped.set_index("_key"), len(df) - len(deduped)


def _distinct(series: pd.Series | None) -> str:
    if series is None:
        return ""
    return ", ".join(sorted({str(v) for v in series.dropna().unique()}))


def _input_info(raw: pd.DataFrame, df: pd.DataFrame, label: str, dropped: int) -> dict:
    incomplete = ""
    if "run_complete" in raw and "run_id" in raw:
        incomplete = _distinct(raw.loc[raw["run_complete"].eq(False).fillna(False), "run_id"])
    return {
        "label": label,
        "rows": len(raw),
        "cases": len(df),
        "duplicates_dropped": dropped,
        "runs": _distinct(raw.get("run_id")),
        "devices": _distinct(df.get("device_name")),
        "incomplete_runs": incomplete,
    }


def _verdict(
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


@dataclass(frozen=True)
class _Settings:
    columns: list[str]
    min_effect: float
    ci_level: float
    n_resamples: int
    seed: int

    @property
    def quantiles(self) -> list[float]:
        alpha = (1 - self.ci_level) / 2
        return [alpha, 1 - alpha]


def _compare_pair(
    base: pd.DataFrame, cand: pd.DataFrame, pair: dict[str, str], s: _Settings, out: dict
) -> None:
    """Append one pair's case, one-sided, environment, static and summary rows to ``out``."""
    for side, own, other in (("baseline", base, cand), ("candidate", cand, base)):
        for key in own.index.difference(other.index, sort=False):
            out["only"].append({**pair, "side": side, **own.loc[key, list(CASE_KEY)]})
    for fld in ENV_FIELDS:
        a, b = _distinct(base.get(fld)), _distinct(cand.get(fld))
        if a != b:
            out["environment"].append(
                {**pair, "field": fld, "baseline_value": a, "candidate_value": b}
            )
    draws: dict[str, list[np.ndarray | None]] = {c: [] for c in s.columns}
    rows = []
    for key in base.index.intersection(cand.index, sort=False):
        b_row, c_row = base.loc[key], cand.loc[key]
        case = {k: b_row[k] for k in CASE_KEY}
        for col in STATIC_COLUMNS:
            bv, cv = b_row.get(col), c_row.get(col)
            if not is_missing(bv) and not is_missing(cv) and bv != cv:
                static = {k: case[k] for k in CASE_KEY[:4]}
                out["static"].append(
                    {**pair, **static, "column": col, "baseline_value": bv, "candidate_value": cv}
                )
        log_draws = None
        bs, cs = (
            sample_array(b_row.get("latency_s_samples")),
            sample_array(c_row.get("latency_s_samples")),
        )
        if bs is not None and cs is not None:  # each case its own stream: filters change nothing
            rng = np.random.default_rng([s.seed, zlib.crc32(key.encode())])
            log_draws = log_median_ratio_draws(bs, cs, s.n_resamples, rng)
        for col in s.columns:
            bv, cv = b_row.get(col), c_row.get(col)
            bv = None if is_missing(bv) else float(bv)
            cv = None if is_missing(cv) else float(cv)
            ratio = cv / bv if bv is not None and cv is not None and bv > 0 else None
            lo = hi = ci_draws = None
            if ratio is not None and log_draws is not None and col in METRICS_WITH_CI:
                ci_draws = log_draws if col == "latency_s_median" else -log_draws
                lo, hi = (float(v) for v in np.exp(np.quantile(ci_draws, s.quantiles)))
            draws[col].append(ci_draws)
            rows.append(
                {
                    **pair,
                    **case,
                    "metric": metric_name(col),
                    "column": col,
                    "baseline_value": bv,
                    "candidate_value": cv,
                    "ratio": ratio,
                    "ci_low": lo,
                    "ci_high": hi,
                    "change": None if ratio is None else ratio - 1,
                    "verdict": _verdict(col, ratio, lo, hi, s.min_effect),
                    "baseline_status": b_row.get("status"),
                    "candidate_status": c_row.get("status"),
                    "na_reason": ""
                    if ratio is not None
                    else pair_reason(
                        {"baseline": (b_row, bv), "candidate": (c_row, cv)},
                        metric_name(col),
                        reason_columns(col),
                    ),
                }
            )
    out["cases"] += rows
    out["summary"] += _summarise(rows, pair, draws, s)


def _summarise(rows: list[dict], pair: dict, draws: dict, s: _Settings) -> list[dict]:
    """Geometric mean of the ratios per metric for one pair, with an interval where every case
    has bootstrap draws (the geometric mean of the cases' draws, resample by resample)."""
    summary = []
    for col in s.columns:
        mine = [r for r in rows if r["column"] == col]
        ratios = np.array([r["ratio"] for r in mine if r["ratio"] is not None and r["ratio"] > 0])
        counts = pd.Series([r["verdict"] for r in mine], dtype=object).value_counts()
        geo = float(np.exp(np.log(ratios).mean())) if len(ratios) else None
        lo = hi = None
        got = [d for d in draws[col] if d is not None]
        if len(ratios) and len(got) == len(ratios):
            lo, hi = (float(v) for v in np.exp(np.quantile(np.mean(got, axis=0), s.quantiles)))
        summary.append(
            {
                **pair,
                "metric": metric_name(col),
                "column": col,
                "cases": len(ratios),
                "geomean_ratio": geo,
                "ci_low": lo,
                "ci_high": hi,
                **{v: int(counts.get(v, 0)) for v in VERDICTS},
            }
        )
    return summary


def compare_runs(
    baseline: ResultsInput,
    candidate: ResultsInput,
    *more: ResultsInput,
    metrics: Sequence[str] = tuple(METRICS),
    models: Sequence[str] | None = None,
    min_effect: float = 0.02,
    ci_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    labels: Sequence[str] | None = None,
) -> Comparison:
    """Compare ``candidate`` (and each of ``more``) against ``baseline``; see the module doc.

    Each input is a result file, a directory, a list of them, or a DataFrame from load_results;
    ``models`` are fnmatch patterns. Raises ResultFileError for a bad file, InvalidInputError
    when a pair has no case in common.
    """
    if not 0 < ci_level < 1:
        raise InvalidInputError(
            f"the confidence level (--ci-level) must lie between 0 and 1, got {ci_level:g}: "
            "pass e.g. 0.95"
        )
    if n_resamples < 100:
        raise InvalidInputError(
            f"{n_resamples} bootstrap resamples (--resamples) are too few for an interval: pass "
            "100 or more (2000 is the default)"
        )
    if min_effect < 0:
        raise InvalidInputError(
            f"the minimum effect (--min-effect) cannot be negative, got {min_effect:g}"
        )
    columns = list(dict.fromkeys(metric_column(m) for m in metrics))
    s = _Settings(columns, min_effect, ci_level, n_resamples, seed)
    items = [baseline, candidate, *more]
    names = list(labels) if labels else _unique([_label(x, i) for i, x in enumerate(items)])
    if len(names) != len(items) or len(set(names)) != len(names):
        raise InvalidInputError(f"need {len(items)} distinct labels, got {names}")
    frames, info, all_models = [], [], set()
    for item, name in zip(items, names, strict=True):
        raw = item if isinstance(item, pd.DataFrame) else load_results(item)
        if "model" in raw:
            all_models |= {str(m) for m in raw["model"].dropna().unique()}
        df, dropped = _prepare(raw, name, models)
        frames.append(df)
        info.append(_input_info(raw, df, name, dropped))
    out: dict[str, list] = {k: [] for k in ("cases", "only", "environment", "static", "summary")}
    for cand, cname in zip(frames[1:], names[1:], strict=True):
        if not len(frames[0].index.intersection(cand.index)):
            hint = f" matching --model {' '.join(models)}" if models else ""
            there = ""
            if models and not (len(frames[0]) and len(cand)):
                there = f"; the models in these files: {', '.join(sorted(all_models)) or 'none'}"
            raise InvalidInputError(
                f"no common cases{hint} between {names[0]} ({len(frames[0])} cases) and {cname} "
                f"({len(cand)} cases): cases match on {', '.join(CASE_KEY)}{there}"
            )
        _compare_pair(frames[0], cand, {"baseline": names[0], "candidate": cname}, s, out)
    return Comparison(
        inputs=pd.DataFrame(info),
        cases=pd.DataFrame(out["cases"], columns=CASE_COLUMNS).astype(
            dict.fromkeys(FLOAT_COLUMNS, "float64")
        ),
        only=pd.DataFrame(out["only"], columns=["baseline", "candidate", "side", *CASE_KEY]),
        environment=pd.DataFrame(out["environment"], columns=ENV_COLUMNS),
        static=pd.DataFrame(out["static"], columns=STATIC_ROW_COLUMNS).drop_duplicates(
            ignore_index=True
        ),
        summary=pd.DataFrame(out["summary"], columns=SUMMARY_COLUMNS),
        method=_method(s),
    )


def _method(s: _Settings) -> dict[str, Any]:
    return {
        "ratio": "candidate / baseline",
        "ci": f"{s.ci_level:.0%} percentile bootstrap of the ratio of medians of "
        f"latency_s_samples, {s.n_resamples} resamples, seed {s.seed}; throughput's interval "
        "is the inverse of latency's; other metrics have no raw samples and no interval",
        "same": f"the interval contains 1, or the ratio is within x{1 + s.min_effect:g} of 1 "
        f"either way (min_effect {s.min_effect:.0%})",
        "duplicates": DUPLICATE_RULE,
        "ci_level": s.ci_level,
        "n_resamples": s.n_resamples,
        "seed": s.seed,
        "min_effect": s.min_effect,
    }


def compare(
    baseline: ResultsInput,
    candidate: ResultsInput,
    *more: ResultsInput,
    metrics: Sequence[str] = tuple(METRICS),
    models: Sequence[str] | None = None,
    min_effect: float = 0.02,
    ci_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    labels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (pair, case, metric): values, ratio, interval, change and verdict.

    The arguments are those of ``compare_runs``, which also returns the one-sided cases, the
    environment differences, the static changes and the geometric-mean summary.
    """
    # fmt: off
    return compare_runs(
        baseline, candidate, *more, metrics=metrics, models=models, min_effect=min_effect,
        ci_level=ci_level, n_resamples=n_resamples, seed=seed, labels=labels,
    ).cases
    # fmt: on
