"""Compare runs across hardware and time: join on the case key, ratios with noise bounds, verdicts.

Rules (also in ``Comparison.method``):

* Cases are joined on ``harness.core.spec.CASE_KEY``. Every ratio is candidate / baseline.
* Latency (``latency_s_median``): a percentile bootstrap confidence interval of the ratio of
  medians from the raw ``latency_s_samples`` of both sides (``n_resamples`` resamples, level
  ``ci_level``, a fixed ``seed``; each case gets its own stream, so filtering does not change
  a case's interval). Throughput is ``batch_size / latency_s_median`` with the same batch on
  both sides, so its ratio is the inverse of latency's and so is its interval. Energy, memory
  and every other column have no raw samples: their ratio comes without an interval.
* Verdict: ``noisy`` (or ``invalid``) when either side's row is not ``valid``
  (harness.results.validity) for a time, throughput, power or energy column: noise is never
  called faster or slower; otherwise ``same`` when the interval contains 1, or when the ratio
  lies within a factor of ``1 + min_effect`` of 1 either way (default 2%); otherwise
  ``faster``/``slower`` for time and throughput columns, ``lower``/``higher`` for the others;
  ``n/a`` when either side has no value (a failed case, an unmeasured metric), with each
  side's reason in ``na_reason``. Peak memory does not depend on the machine's noise and keeps
  its verdict.
* Gates (``Comparison.failures``) leave noisy and invalid cases out unless asked
  (``include_noisy``); a case ``ok`` in the baseline and not in the candidate always fails.
* The same case twice in one input: ``harness.results.runs.DUPLICATE_RULE`` (a valid row wins,
  then the latest); what was dropped and why is reported per input.
* Static columns (params, macs, activation_bytes) that differ for a matched case are listed:
  the model definition changed between the runs.
"""

from __future__ import annotations

import array
import fnmatch
import math
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from harness.compare.bootstrap import log_median_ratio_draws, quantiles, sample_array
from harness.core import schema
from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing, pair_reason, reason_columns
from harness.core.schema import CASE_KEY
from harness.results.runs import DUPLICATE_RULE, pick_one_per_case
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
    """Everything ``cnnbench compare`` shows; ``cases`` is what ``compare()`` returns.

    ``noisy``: each row of a matched case that is not ``valid``, with the side and its reason
    (its metrics got the verdict ``noisy``/``invalid``).
    """

    inputs: pd.DataFrame
    cases: pd.DataFrame
    only: pd.DataFrame
    environment: pd.DataFrame
    static: pd.DataFrame
    summary: pd.DataFrame
    method: dict[str, Any] = field(default_factory=dict)
    noisy: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NOISY_COLUMNS))

    def failures(
        self, thresholds: dict[str, float], *, include_noisy: bool = False
    ) -> pd.DataFrame:
        """Cases worse than ``thresholds`` (column -> allowed worsening, 0.05 = 5%).

        A case fails when its change in the worse direction exceeds the threshold and, where a
        confidence interval exists, the whole interval lies on the worse side of 1; or when it
        was ``ok`` in the baseline and is not in the candidate. Cases whose verdict is
        ``noisy`` or ``invalid`` are left out unless ``include_noisy`` (their ratio is then
        judged like any other).
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
                elif r.verdict in ("noisy", "invalid") and not include_noisy:
                    continue
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
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Filter by model patterns, keep one row per case (``DUPLICATE_RULE``);
    -> (frame indexed by the case key, {why dropped: count})."""
    missing = [k for k in CASE_KEY if k not in frame.columns]
    if missing:
        raise InvalidInputError(f"{label}: the results lack the case key column(s) {missing}")
    df = frame.reset_index(drop=True)
    if models:
        names = df["model"].astype("string").fillna("")
        keep = [any(fnmatch.fnmatchcase(m, p) for p in models) for m in names]
        df = df[keep].reset_index(drop=True)
    keys = ["|".join(k) for k in df[list(CASE_KEY)].astype("string").fillna("<NA>").itertuples(
        index=False
    )]  # fmt: skip
    dropped: dict[str, int] = {}
    if len(set(keys)) < len(keys):  # reordering copies every column: only when needed
        df, dropped = pick_one_per_case(df, CASE_KEY)
        keys = ["|".join(k) for k in df[list(CASE_KEY)].astype("string").fillna("<NA>")
                .itertuples(index=False)]  # fmt: skip
    df.index = pd.Index(keys, name="_key")
    return df, dropped


def _distinct(series: pd.Series | None) -> str:
    if series is None:
        return ""
    return ", ".join(sorted({str(v) for v in series.dropna().unique()}))


def _input_info(raw: pd.DataFrame, df: pd.DataFrame, label: str, dropped: dict[str, int]) -> dict:
    incomplete = ""
    if "run_complete" in raw and "run_id" in raw:
        incomplete = _distinct(raw.loc[raw["run_complete"].eq(False).fillna(False), "run_id"])
    return {
        "label": label,
        "rows": len(raw),
        "cases": len(df),
        "duplicates_dropped": sum(dropped.values()),
        "duplicates_why": "; ".join(f"{n} {why}" for why, n in dropped.items()),
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


def _validity(row: pd.Series) -> tuple[str | None, str]:
    """``(None, "")`` for a valid row (or one that did not run), else (validity, reason)."""
    validity = row.get("validity")
    if is_missing(validity) or validity == "valid" or row.get("status") != "ok":
        return None, ""
    return str(validity), str(row.get("validity_reason") or "no reason recorded")


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


# Columns of a row that the comparison reads besides the case key and the metrics.
ROW_COLUMNS = ("status", "error", "validity", "validity_reason", "schema_version")


def _sample_views(column: pd.Series | None, n: int) -> list[np.ndarray | None]:
    """Each row's finite samples as a numpy view into the column's buffers (no Python float
    per sample, no copy); None where a row has none."""
    if column is None:
        return [None] * n
    data = pa.chunked_array(pa.array(column, from_pandas=True))
    if not pa.types.is_list(data.type):
        return [sample_array(v) for v in column]
    out: list[np.ndarray | None] = []
    for chunk in data.chunks:
        values = pc.list_flatten(chunk).cast(pa.float64()).to_numpy(zero_copy_only=False)
        offsets = chunk.offsets.to_numpy()
        offsets = offsets - offsets[0]
        nulls = chunk.is_null().to_numpy(zero_copy_only=False)
        for i in range(len(chunk)):
            view = None if nulls[i] else values[offsets[i] : offsets[i + 1]]
            if view is not None and not np.all(np.isfinite(view)):
                view = view[np.isfinite(view)]
            out.append(view if view is not None and len(view) else None)
    return out


class _Columns:
    """Rows gathered column by column (a dict per row held 200,000 times is most of what a
    50,000-case comparison once spent in memory); float columns as typed arrays (8 bytes a
    value, not a Python float and a pointer), turned into a frame column by column."""

    def __init__(self, names: Sequence[str], floats: Sequence[str] = ()) -> None:
        self.data: dict[str, Any] = {
            n: array.array("d") if n in floats else [] for n in names
        }  # fmt: skip

    def add(self, **row: Any) -> None:
        for name, values in self.data.items():
            value = row.get(name)
            if isinstance(values, array.array):
                value = math.nan if value is None else value
            values.append(value)

    def frame(self) -> pd.DataFrame:
        columns = {}
        for name in list(self.data):  # each list freed as its column is made
            values = self.data.pop(name)
            if isinstance(values, array.array):
                columns[name] = pd.Series(np.frombuffer(values, dtype="float64").copy())
            else:
                columns[name] = pd.Series(values, dtype=object)
            del values
        return pd.DataFrame(columns, copy=False)


class _Accumulator:
    """Per metric: the cases' log ratios and, resample by resample, the running sum of their
    bootstrap draws (so the summary's interval needs O(resamples) memory, not O(cases x
    resamples): 50,000 cases once held 3.2 GB of draws)."""

    def __init__(self, n_resamples: int) -> None:
        self.logs: list[float] = []
        self.draw_sum = np.zeros(n_resamples)
        self.with_draws = 0
        self.verdicts: dict[str, int] = dict.fromkeys(VERDICTS, 0)

    def add(self, ratio: float | None, draws: np.ndarray | None, verdict: str) -> None:
        self.verdicts[verdict] += 1
        if verdict in ("noisy", "invalid") or ratio is None or ratio <= 0:
            return
        self.logs.append(math.log(ratio))
        if draws is not None:
            self.draw_sum += draws
            self.with_draws += 1


def _compare_pair(
    base: pd.DataFrame, cand: pd.DataFrame, pair: dict[str, str], s: _Settings, out: dict
) -> None:
    """Append one pair's case, one-sided, environment, static, noisy and summary rows."""
    for side, own, other in (("baseline", base, cand), ("candidate", cand, base)):
        for key in own.index.difference(other.index, sort=False):
            out["only"].append({**pair, "side": side, **own.loc[key, list(CASE_KEY)]})
    for fld in ENV_FIELDS:
        a, b = _distinct(base.get(fld)), _distinct(cand.get(fld))
        if a != b:
            out["environment"].append(
                {**pair, "field": fld, "baseline_value": a, "candidate_value": b}
            )
    acc = {col: _Accumulator(s.n_resamples) for col in s.columns}
    keys = base.index.intersection(cand.index, sort=False)
    # plain dicts of the columns read below: a pandas row per case costs more than the case
    wanted = [*CASE_KEY, *STATIC_COLUMNS, *s.columns, *ROW_COLUMNS]
    wanted += [c for col in s.columns for c in reason_columns(col)]
    positions, smalls, samples = {}, {}, {}
    for side, frame in (("baseline", base), ("candidate", cand)):
        positions[side] = frame.index.get_indexer(keys)
        smalls[side] = frame[[c for c in dict.fromkeys(wanted) if c in frame]]  # no samples
        views = _sample_views(frame.get("latency_s_samples"), len(frame))  # views, no copy
        samples[side] = [views[p] for p in positions[side]]
    cases = out["cases"]
    for i, key, b_row, c_row in _rows_in_chunks(keys, positions, smalls):
        case = {k: b_row[k] for k in CASE_KEY}
        for col in STATIC_COLUMNS:
            bv, cv = b_row.get(col), c_row.get(col)
            if not is_missing(bv) and not is_missing(cv) and bv != cv:
                static = {k: case[k] for k in CASE_KEY[:4]}
                out["static"].append(
                    {**pair, **static, "column": col, "baseline_value": bv, "candidate_value": cv}
                )
        noise = {side: _validity(r) for side, r in (("baseline", b_row), ("candidate", c_row))}
        for side, (validity, why) in noise.items():
            if validity is not None:
                out["noisy"].append(
                    {**pair, "side": side, **case, "validity": validity, "validity_reason": why}
                )
        flagged = [(side, v, why) for side, (v, why) in noise.items() if v is not None]
        noise_verdict = None
        if flagged:
            noise_verdict = "invalid" if any(v == "invalid" for _, v, _ in flagged) else "noisy"
        log_draws = log_q = None
        bs, cs = samples["baseline"][i], samples["candidate"][i]
        if bs is not None and cs is not None and noise_verdict is None:
            rng = np.random.default_rng(
                [s.seed, zlib.crc32(key.encode())]
            )  # filters change nothing
            log_draws = log_median_ratio_draws(bs, cs, s.n_resamples, rng)
        for col in s.columns:
            bv, cv = b_row.get(col), c_row.get(col)
            bv = None if is_missing(bv) else float(bv)
            cv = None if is_missing(cv) else float(cv)
            ratio = cv / bv if bv is not None and cv is not None and bv > 0 else None
            lo = hi = ci_draws = None
            if ratio is not None and log_draws is not None and col in METRICS_WITH_CI:
                if log_q is None:
                    log_q = quantiles(log_draws, s.quantiles)
                ci_draws = log_draws if col == "latency_s_median" else -log_draws
                if col == "latency_s_median":
                    lo, hi = math.exp(log_q[0]), math.exp(log_q[1])
                else:  # throughput = batch / latency: the interval inverted
                    lo, hi = math.exp(-log_q[1]), math.exp(-log_q[0])
            verdict = _verdict(col, ratio, lo, hi, s.min_effect)
            noise_reason = ""
            if noise_verdict is not None and ratio is not None and col not in NOISE_FREE:
                verdict = noise_verdict
                noise_reason = "; ".join(f"{side}: {v}: {why}" for side, v, why in flagged)
            acc[col].add(ratio, ci_draws, verdict)
            cases.add(
                **pair,
                **case,
                metric=metric_name(col),
                column=col,
                baseline_value=bv,
                candidate_value=cv,
                ratio=ratio,
                ci_low=lo,
                ci_high=hi,
                change=None if ratio is None else ratio - 1,
                verdict=verdict,
                baseline_status=b_row.get("status"),
                candidate_status=c_row.get("status"),
                na_reason=""
                if ratio is not None
                else pair_reason(
                    {"baseline": (b_row, bv), "candidate": (c_row, cv)},
                    metric_name(col),
                    reason_columns(col),
                ),
                noise_reason=noise_reason,
            )
    out["summary"] += _summarise(acc, pair, s)


def _rows_in_chunks(
    keys: pd.Index, positions: dict[str, np.ndarray], smalls: dict[str, pd.DataFrame]
) -> Iterator[tuple[int, str, dict, dict]]:
    """(i, key, baseline row, candidate row) as plain dicts, 4,096 cases at a time (dicts for
    50,000 cases at once were a third of a large comparison's memory)."""
    step = 4096
    for start in range(0, len(keys), step):
        stop = min(start + step, len(keys))
        b = smalls["baseline"].iloc[positions["baseline"][start:stop]].to_dict("records")
        c = smalls["candidate"].iloc[positions["candidate"][start:stop]].to_dict("records")
        for offset, (b_row, c_row) in enumerate(zip(b, c, strict=True)):
            yield start + offset, keys[start + offset], b_row, c_row


def _summarise(acc: dict[str, _Accumulator], pair: dict, s: _Settings) -> list[dict]:
    """Geometric mean of the ratios per metric for one pair (valid cases only), with an
    interval where every such case has bootstrap draws (the geometric mean of the cases'
    draws, resample by resample)."""
    summary = []
    for col in s.columns:
        a = acc[col]
        n = len(a.logs)
        geo = float(math.exp(sum(a.logs) / n)) if n else None
        lo = hi = None
        if n and a.with_draws == n:
            lo, hi = (float(v) for v in np.exp(np.quantile(a.draw_sum / n, s.quantiles)))
        summary.append(
            {
                **pair,
                "metric": metric_name(col),
                "column": col,
                "cases": n,
                "geomean_ratio": geo,
                "ci_low": lo,
                "ci_high": hi,
                **a.verdicts,
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
    needed = [
        *CASE_KEY, *columns, *STATIC_COLUMNS, *ENV_FIELDS, *ROW_COLUMNS, "latency_s_samples",
        "run_id", "run_complete", "timestamp_utc", "host", "cpu_threads", "torch_version",
        *(c for col in columns for c in reason_columns(col)),
    ]  # fmt: skip
    frames, info, all_models = [], [], set()
    for item, name in zip(items, names, strict=True):
        raw = item if isinstance(item, pd.DataFrame) else load_results(item, columns=needed)
        if "model" in raw:
            all_models |= {str(m) for m in raw["model"].dropna().unique()}
        df, dropped = _prepare(raw, name, models)
        frames.append(df)
        info.append(_input_info(raw, df, name, dropped))
    out: dict[str, Any] = {k: [] for k in ("only", "environment", "static", "summary", "noisy")}
    out["cases"] = _Columns(CASE_COLUMNS, FLOAT_COLUMNS)
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
        cases=out["cases"].frame(),
        only=pd.DataFrame(out["only"], columns=["baseline", "candidate", "side", *CASE_KEY]),
        environment=pd.DataFrame(out["environment"], columns=ENV_COLUMNS),
        static=pd.DataFrame(out["static"], columns=STATIC_ROW_COLUMNS).drop_duplicates(
            ignore_index=True
        ),
        summary=pd.DataFrame(out["summary"], columns=SUMMARY_COLUMNS),
        method=_method(s),
        noisy=pd.DataFrame(out["noisy"], columns=NOISY_COLUMNS),
    )


def _method(s: _Settings) -> dict[str, Any]:
    return {
        "ratio": "candidate / baseline",
        "ci": f"{s.ci_level:.0%} percentile bootstrap of the ratio of medians of "
        f"latency_s_samples, {s.n_resamples} resamples, seed {s.seed}; throughput's interval "
        "is the inverse of latency's; other metrics have no raw samples and no interval",
        "same": f"the interval contains 1, or the ratio is within x{1 + s.min_effect:g} of 1 "
        f"either way (min_effect {s.min_effect:.0%})",
        "noisy": "a row that is not valid on either side (harness.results.validity) gives "
        "'noisy' or 'invalid' for every metric but peak memory and static columns; such cases "
        "are left out of the geometric mean and of --fail-on unless --include-noisy",
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
