"""Result frames made ready for display: plain dtypes, configurations, series, validity.

Everything here reads columns that the result files hold and derives labels from them; nothing
recomputes a measurement. Numbers are printed by ``harness.core.units`` (the one formatting module)
and strings escaped by ``harness.report.text`` at the place they are shown.

* A missing number is ``None`` in a figure (plotly leaves a gap), never 0 and never NaN.
* A *configuration* is where and how a run measured (``harness.results.runs.CONFIG_COLUMNS``:
  host, device, CPU threads, torch version); figures are grouped by configuration, not by run,
  and take one run per configuration (``select_runs``).
* A *series* is one curve: a configuration plus the case settings that vary within a model
  (dtype, memory format, mode...).
* ``quality`` is the row's validity verdict (``valid``, ``noisy``, ``invalid``), else
  ``unassessed`` for an ok row of an older file, else the status of a row that did not run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.core import units
from harness.core.missing import POWER_REASONS as POWER_REASONS
from harness.core.missing import is_missing as is_missing
from harness.core.missing import missing_reason
from harness.core.schema import CASE_KEY as CASE_KEY  # the key compare joins on too
from harness.core.schema import column_names
from harness.results.runs import config_label, device_kind

# Case settings that, when they vary within a model, split a curve in two.
VARIANT_DIMS = ("input_shape", "dtype", "dtype_method", "memory_format", "mode", "compiled")
MISSING_TEXT = "—"
# The case columns any part of the report reads: the rest of a row (samples, clocks, the noise
# signals...) is dropped on entry, so 50,000 rows stay small and quick to walk.
REPORT_COLUMNS = (
    *CASE_KEY,
    "schema_version", "run_id", "run_complete", "timestamp_utc", "case_id", "test_name",
    "dtype_method", "device", "device_name", "host", "os", "cpu_model", "cpu_cores",
    "cpu_threads", "torch_version", "cuda_version", "cudnn_version", "driver_version",
    "python_version", "harness_version", "git_commit", "git_dirty", "command_line",
    "params", "param_bytes", "macs", "flops", "activation_bytes", "rounds", "stop_reason",
    "latency_s_median", "latency_s_median_ci_low", "latency_s_median_ci_high",
    "latency_s_p90", "latency_s_p99", "p99_reliable", "throughput_per_s",
    "validity", "validity_reason", "layer_time_coverage", "layer_time_steps", "peak_flops_measured",
    "peak_bytes_per_s_measured", "peak_flops_tf32", "tf32_conv", "gpu_index",
    "peak_memory_bytes", "memory_source", "power_w_mean",
    "energy_j_per_sample", "samples_per_j", "power_source", "power_reason", "status", "error",
)  # fmt: skip
# Statuses of rows that did not run to a measurement, in the order the headline counts them.
FAILED = ("oom", "error", "crashed")


def number(value: Any) -> float | None:
    """A finite float, or None for anything missing or not a finite number."""
    v = units.value_of(value)
    return v if v is not None and np.isfinite(v) else None


def values(series: Iterable[Any]) -> list[float | None]:
    """Numbers for a plotly trace: missing (NaN, pd.NA, None, inf) -> None, so not drawn."""
    return [number(v) for v in series]


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Plain dtypes for display: numbers as float64 (missing NaN), everything else as Python
    objects (missing None). ``load_results`` returns Arrow dtypes whose nulls (pd.NA) cannot
    mask or compare; here they become values that the figure code handles as missing."""
    out = {}
    for name in df.columns:
        col = df[name]
        kind = getattr(col.dtype, "kind", "O")
        if kind in "iuf":
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "b" and not col.isna().any():
            out[name] = col.astype(object)
        else:
            obj = col.astype(object)
            out[name] = obj.where(col.notna(), None) if obj.ndim == 1 else obj
    return pd.DataFrame(out, index=df.index, columns=df.columns)


def with_columns(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``df`` with every one of ``columns`` present, absent ones null."""
    absent = [c for c in dict.fromkeys(columns) if c not in df.columns]
    if not absent:
        return df
    fill = pd.DataFrame({c: [None] * len(df) for c in absent}, index=df.index, dtype=object)
    return pd.concat([df, fill], axis=1)


def ensure_columns(df: pd.DataFrame, table: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` normalized, with every column of ``table`` (and ``extra``) present, absent ones
    null. Files of an older schema, or tables built by hand, then render like any other: what
    they lack shows as missing."""
    return with_columns(normalize(df), [*column_names(table), *extra])


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``df`` as dicts (``to_dict("records")`` without its per-cell overhead)."""
    cols = list(df.columns)
    columns = [df[c].tolist() for c in cols]
    return [dict(zip(cols, row, strict=True)) for row in zip(*columns, strict=True)]


def _text_or(value: Any, default: str) -> str:
    return default if is_missing(value) or str(value) == "" else str(value)


_VENDOR_NOISE = re.compile(r"\((R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|@ *[\d.]+ *GHz|^NVIDIA ")


def short_device(name: Any) -> str:
    """A device name without trademark marks and clock: ``Intel Xeon Platinum 8370C``."""
    text = _text_or(name, "unknown device")
    short = re.sub(r"\s+", " ", _VENDOR_NOISE.sub(" ", text)).strip(" ,")
    return short or text


def _threads_text(value: Any) -> Any:
    v = number(value)
    return value if v is None else int(v)


def config_labels(cases: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(full, short) label of each row's configuration.

    The full label is ``runs.config_label`` (host, device, threads, torch), shown in hovers and
    tables; a GPU's index is not part of it (xdist spreads one run over the GPUs of one model).
    The short one, for legends, is the device name with the host, the thread count and the
    torch version added only where two configurations would otherwise read the same.
    """
    if cases.empty:
        empty = pd.Series([], index=cases.index, dtype=object)
        return empty, empty
    raw = pd.DataFrame(
        {
            c: (cases[c] if c in cases else pd.Series(None, index=cases.index)).astype(object)
            for c in ("device_name", "device", "host", "cpu_threads", "torch_version")
        },
        index=cases.index,
    )
    raw = raw.where(raw.notna(), None)
    raw["device"] = [None if d is None else device_kind(d) for d in raw["device"]]  # no index
    text = raw.astype(str)
    key = text["device_name"].str.cat([text[c] for c in list(text.columns)[1:]], sep="\x1f")
    first = raw.loc[~key.duplicated()]
    uniq = pd.DataFrame(
        {
            "device": [
                _text_or(n, _text_or(d, "unknown device"))
                for n, d in zip(first["device_name"], first["device"], strict=True)
            ],
            "host": [_text_or(h, "?") for h in first["host"]],
            "threads": [_threads_text(t) for t in first["cpu_threads"]],
            "torch": [_text_or(t, "?") for t in first["torch_version"]],
        },
        index=first.index,
    )
    full = {
        k: config_label(
            {
                "host": r["host"],
                "device_name": r["device"],
                "cpu_threads": r["threads"],
                "torch_version": r["torch"],
            }
        )
        for k, r in zip(key[uniq.index], records(uniq), strict=True)
    }
    short = uniq["device"].map(short_device)
    for column, fmt in (
        ("host", "{} @ {}"),
        ("threads", "{} · {} threads"),
        ("torch", "{} · torch {}"),
    ):
        counts = uniq.groupby(short)[column].nunique()
        ambiguous = short.map(counts) > 1
        extra = [
            fmt.format(s, _text_or(v, "?")).replace("· 1 threads", "· 1 thread")
            for s, v in zip(short, uniq[column], strict=True)
        ]
        short = short.where(~ambiguous, extra)
    short_by_key = dict(zip(key[uniq.index], short, strict=True))
    return key.map(full).astype(object), key.map(short_by_key).astype(object)


def varying_dims(cases: pd.DataFrame, dims: Sequence[str] = VARIANT_DIMS) -> list[str]:
    """The case dimensions that take more than one value for some model in ``cases`` (an
    input shape that differs only between models does not split any curve)."""
    if cases.empty or "model" not in cases.columns:
        return []
    present = [d for d in dims if d in cases.columns]
    if not present:
        return []
    work = cases[["model", *present]].astype(object).fillna("?").astype(str)
    counts = work.groupby("model")[present].nunique()
    return [d for d in present if (counts[d] > 1).any()]


def variant_texts(cases: pd.DataFrame, dims: Sequence[str]) -> pd.Series:
    """The varying dimensions of each row as short text, e.g. ``float16 · training``."""
    if not dims or cases.empty:
        return pd.Series([""] * len(cases), index=cases.index, dtype=object)
    columns = []
    for d in dims:
        col = cases[d]
        if d == "compiled":
            text = [
                "compiled ?" if is_missing(v) else "compiled" if bool(v) else "eager" for v in col
            ]
        elif d == "input_shape":
            text = [f"input {_text_or(v, '?')}" for v in col]
        elif d == "dtype_method":
            text = [_text_or(v, "") for v in col]
        else:
            text = [_text_or(v, "?") for v in col]
        columns.append(text)
    return pd.Series(
        [" · ".join(p for p in parts if p) for parts in zip(*columns, strict=True)],
        index=cases.index,
        dtype=object,
    )


def quality(cases: pd.DataFrame) -> pd.Series:
    """``valid``, ``noisy``, ``invalid`` or ``unassessed`` for ok rows; the status otherwise."""
    status = [_text_or(s, "unknown") for s in cases["status"]]
    validity = cases["validity"] if "validity" in cases else [None] * len(cases)
    out = [
        s if s != "ok" else (_text_or(v, "unassessed") if not is_missing(v) else "unassessed")
        for s, v in zip(status, validity, strict=True)
    ]
    return pd.Series(out, index=cases.index, dtype=object)


_FAMILY = re.compile(r"^[A-Za-z]+")


def family(model: Any) -> str:
    """The model's family from its name: ``resnet50`` -> ``resnet``, ``vgg16_bn`` -> ``vgg``."""
    text = _text_or(model, "?").split(":")[-1]
    m = _FAMILY.match(text)
    return m.group(0).lower() if m else text


def prepare_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """The cases table ready for figures: every column present, plus ``config`` (full label),
    ``config_short`` (for legends), ``variant`` (the varying case settings), ``series``
    (configuration and variant: one curve), ``quality`` and ``in_figures`` (True unless the
    caller marked the row as left out by the run selection).

    Rows keep their order (the order of the files given), so the first configuration is the
    baseline of cross-hardware ratios.
    """
    keep = [c for c in dict.fromkeys((*REPORT_COLUMNS, "in_figures")) if c in cases.columns]
    df = with_columns(normalize(cases[keep]).reset_index(drop=True), REPORT_COLUMNS)
    df = without_float32_method(df)
    full, short = config_labels(df)
    variant = variant_texts(df, varying_dims(df))
    one_config = short.nunique() <= 1  # then a curve is named by its settings alone
    series = [
        (v or c) if one_config else (f"{c} · {v}" if v else c)
        for c, v in zip(short, variant, strict=True)
    ]
    extra = pd.DataFrame(
        {
            "config": full,
            "config_short": short,
            "variant": variant,
            "series": series,
            "quality": quality(df),
        },
        index=df.index,
    )
    if "in_figures" not in df.columns:
        extra["in_figures"] = True
    df = pd.concat([df.drop(columns=[c for c in extra if c in df], errors="ignore"), extra], axis=1)
    return df


def without_float32_method(df: pd.DataFrame) -> pd.DataFrame:
    """``dtype_method`` cleared on float32 rows: nothing is cast at float32, though files
    written before the Case stopped recording a method for it say ``autocast``."""
    float32 = df["dtype"] == "float32"
    if not (float32 & df["dtype_method"].notna()).any():
        return df
    return df.assign(dtype_method=df["dtype_method"].where(~float32, None))


def prepared(cases: pd.DataFrame) -> pd.DataFrame:
    """``cases`` as ``prepare_cases`` returns it (unchanged when it already is)."""
    return cases if "series" in cases.columns else prepare_cases(cases)


def drawable(cases: pd.DataFrame) -> pd.DataFrame:
    """The rows figures draw: those the run selection kept, without impossible timings."""
    df = prepared(cases)
    keep = df["in_figures"].astype(bool) & (df["quality"] != "invalid")
    return df[keep]


def points(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per point (the latest measurement), sorted by batch size for line drawing."""
    out = latest_per_point(df, keys) if df.duplicated(list(keys)).any() else df
    return out.sort_values("batch_size", kind="stable") if not out.empty else out


def latest_per_point(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per ``keys``: the latest by ``timestamp_utc`` where a point was measured twice."""
    if df.empty:
        return df
    stamp = df["timestamp_utc"].astype(object).where(df["timestamp_utc"].notna(), "")
    order = df.assign(_ts=stamp.astype(str), _pos=np.arange(len(df)))
    order = order.sort_values(["_ts", "_pos"], kind="stable")
    keep = order.drop_duplicates(list(keys), keep="last")
    return keep.sort_values("_pos").drop(columns=["_ts", "_pos"])


def case_label(row: Any) -> str:
    """Short, unescaped label of one case: ``resnet50 bs 32``."""
    bs = row.get("batch_size")
    return f"{_text_or(row.get('model'), '?')} bs {units.integer(bs)}"


def missing_summary(
    df: pd.DataFrame,
    column: str,
    what: str,
    sources: str | Sequence[str] | None = None,
    *,
    max_reasons: int = 4,
    max_examples: int = 3,
) -> list[str]:
    """Plain lines saying which rows lack ``column`` and why, grouped by reason with counts."""
    if column not in df.columns:
        return [f"{what}: no such column in these results ({len(df)} cases)"]
    absent = df[df[column].isna()]
    if absent.empty:
        return []
    rows = records(absent)
    reasons = [missing_reason(r, what, sources) for r in rows]
    counts = Counter(reasons)
    lines = []
    for reason, n in counts.most_common(max_reasons):
        ex = [case_label(r) for r, why in zip(rows, reasons, strict=True) if why == reason]
        shown = ex[:max_examples]
        more = ", …" if n > len(shown) else ""
        lines.append(f"{reason} ({n} case{'s' if n > 1 else ''}: {', '.join(shown)}{more})")
    rest = len(counts) - max_reasons
    if rest > 0:
        lines.append(f"and {rest} other reasons (see the table of cases)")
    return lines


def validity_counts(cases: pd.DataFrame) -> dict[str, int]:
    """How many rows are valid, noisy, invalid, unassessed, failed (oom, error, crashed),
    skipped: every row counted once."""
    q = Counter(prepared(cases)["quality"])
    out = {k: q.pop(k, 0) for k in ("valid", "noisy", "invalid", "unassessed")}
    out["failed"] = sum(q.pop(k, 0) for k in FAILED)
    out["skipped"] = q.pop("skipped", 0)
    out["other"] = sum(q.values())
    return out
