"""One pair of inputs compared, case by case: the bootstrap interval of each latency ratio (the
samples as views into Arrow buffers, never copied), the verdict of every metric
(harness.compare.verdicts), the one-sided, environment, static and noisy rows, and the
geometric-mean summary in O(resamples) memory."""

from __future__ import annotations

import array
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from harness.compare.bootstrap import log_median_ratio_draws, quantiles, sample_array
from harness.compare.verdicts import (
    ENV_FIELDS,
    METRICS_WITH_CI,
    NOISE_FREE,
    STATIC_COLUMNS,
    VERDICTS,
    metric_name,
    row_validity,
    verdict,
)
from harness.core.missing import is_missing, pair_reason, reason_columns
from harness.core.schema import CASE_KEY


def _distinct(series: pd.Series | None) -> str:
    if series is None:
        return ""
    return ", ".join(sorted({str(v) for v in series.dropna().unique()}))


@dataclass(frozen=True)
class Settings:
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


def _sample_views(
    column: pd.Series | None, n: int, *, finite: bool = True
) -> list[np.ndarray | None]:
    """Each row's finite samples (or, ``finite=False``, its window ids) as a numpy view into
    the column's buffers (no Python float per sample, no copy); None where a row has none."""
    if column is None:
        return [None] * n
    data = pa.chunked_array(pa.array(column, from_pandas=True))
    if not pa.types.is_list(data.type):
        if not finite:
            return [None if v is None or np.ndim(v) == 0 else np.asarray(v) for v in column]
        return [sample_array(v) for v in column]
    out: list[np.ndarray | None] = []
    for chunk in data.chunks:
        values = pc.list_flatten(chunk).cast(pa.float64()).to_numpy(zero_copy_only=False)
        offsets = chunk.offsets.to_numpy()
        offsets = offsets - offsets[0]
        nulls = chunk.is_null().to_numpy(zero_copy_only=False)
        for i in range(len(chunk)):
            view = None if nulls[i] else values[offsets[i] : offsets[i + 1]]
            if finite and view is not None and not np.all(np.isfinite(view)):
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


def compare_pair(
    base: pd.DataFrame, cand: pd.DataFrame, pair: dict[str, str], s: Settings, out: dict
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
        ids = _sample_views(frame.get("latency_s_window_ids"), len(frame), finite=False)
        samples[side] = [(views[p], ids[p]) for p in positions[side]]
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
        noise = {side: row_validity(r) for side, r in (("baseline", b_row), ("candidate", c_row))}
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
        (bs, bw), (cs, cw) = samples["baseline"][i], samples["candidate"][i]
        if bs is not None and cs is not None and noise_verdict is None:
            rng = np.random.default_rng(
                [s.seed, zlib.crc32(key.encode())]
            )  # filters change nothing
            log_draws = log_median_ratio_draws(bs, cs, s.n_resamples, rng, bw, cw)
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
            case_verdict = verdict(col, ratio, lo, hi, s.min_effect)
            noise_reason = ""
            if noise_verdict is not None and ratio is not None and col not in NOISE_FREE:
                case_verdict = noise_verdict
                noise_reason = "; ".join(f"{side}: {v}: {why}" for side, v, why in flagged)
            acc[col].add(ratio, ci_draws, case_verdict)
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
                verdict=case_verdict,
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


def _summarise(acc: dict[str, _Accumulator], pair: dict, s: Settings) -> list[dict]:
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
