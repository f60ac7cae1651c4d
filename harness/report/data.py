"""Result frames made ready for display: escaped text, None for missing, device and series labels.

Everything here reads columns that the result files hold and derives labels from them; nothing
recomputes a measurement. Two rules hold for every value that leaves this module for a figure:

* text taken from results is HTML-escaped (plotly renders labels, legends and hover text as a
  subset of HTML, so a model named ``<b>x</b>`` would otherwise be drawn bold, or worse);
* a missing number is ``None`` (plotly leaves a gap), never 0 and never NaN inside a list.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from harness.results.missing import POWER_REASONS as POWER_REASONS
from harness.results.missing import is_missing, missing_reason
from harness.results.schema import CASE_KEY as CASE_KEY  # the key compare joins on too
from harness.results.schema import column_names

# Dimensions of a case that, when they vary, split a curve in two (besides model and device).
VARIANT_DIMS = ("input_shape", "dtype", "memory_format", "mode", "compiled")
# Columns that newer schemas add (power helper); read when present, None when absent.
OPTIONAL_CASE_COLUMNS = (
    "samples_per_j",
    "energy_window_s",
    "power_samples",
    "power_w_idle",
    "power_reason",
)
MISSING_TEXT = "—"


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML and inside plotly labels (quotes escaped too)."""
    return html.escape("" if is_missing(value) else str(value), quote=True)


def number(value: Any) -> float | None:
    """A finite float, or None for anything missing or not a finite number."""
    if is_missing(value):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def values(series: Iterable[Any]) -> list[float | None]:
    """Numbers for a plotly trace: missing (NaN, pd.NA, None) -> None, so they are not drawn."""
    return [number(v) for v in series]


def texts(series: Iterable[Any]) -> list[str]:
    """Escaped strings for a plotly trace (missing -> an em dash)."""
    return [MISSING_TEXT if is_missing(v) else esc(v) for v in series]


def integer_text(value: Any) -> str:
    """An integer count as text (``32``), ``?`` when missing."""
    v = number(value)
    return "?" if v is None else str(int(v))


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
        else:
            obj = col.astype(object)
            out[name] = obj.where(col.notna(), None) if obj.ndim == 1 else obj
    return pd.DataFrame(out, index=df.index, columns=df.columns)


def ensure_columns(df: pd.DataFrame, table: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` normalized, with every column of ``table`` (and ``extra``) present, absent ones
    null. Files of an older schema, or tables built by hand, then render like any other: what
    they lack shows as missing.
    """
    out = normalize(df)
    for name in [*column_names(table), *extra]:
        if name not in out.columns:
            out[name] = pd.Series([None] * len(out), index=out.index, dtype=object)
    return out


def has_values(df: pd.DataFrame, column: str) -> bool:
    return column in df.columns and bool(df[column].notna().any())


def _text_or(value: Any, default: str) -> str:
    return default if is_missing(value) or str(value) == "" else str(value)


def device_labels(cases: pd.DataFrame) -> pd.Series:
    """A readable label per row naming the hardware it ran on, unique per (name, host, device, run).

    The label is the device name (GPU or CPU model); the host, the torch device and the run are
    appended only where they are needed to tell two groups apart, so one file per machine reads
    as the machine's name and two runs on one machine read as two labels.
    """
    if cases.empty:
        return pd.Series([], index=cases.index, dtype=object)
    name = [
        _text_or(n, _text_or(d, "unknown device"))
        for n, d in zip(cases["device_name"], cases["device"], strict=True)
    ]
    parts = pd.DataFrame(
        {
            "name": name,
            "host": [_text_or(h, "?") for h in cases["host"]],
            "device": [_text_or(d, "?") for d in cases["device"]],
            "run": [_text_or(r, "?") for r in cases["run_id"]],
        },
        index=cases.index,
    )
    label = parts["name"].copy()
    for extra, fmt in (("host", "{} @ {}"), ("device", "{} ({})"), ("run", "{} [run {}]")):
        counts = parts.groupby(label)[extra].nunique()
        ambiguous = label.map(counts) > 1
        label = label.where(
            ~ambiguous, [fmt.format(a, b) for a, b in zip(label, parts[extra], strict=True)]
        )
    return label


def varying_dims(cases: pd.DataFrame, dims: Sequence[str] = VARIANT_DIMS) -> list[str]:
    """The case dimensions that take more than one value for some model in ``cases`` (an
    input shape that differs only between models does not split any curve)."""
    if cases.empty or "model" not in cases.columns:
        return []
    by_model = cases.astype(object).groupby(cases["model"].astype(object).fillna("?"))
    return [d for d in dims if d in cases.columns and (by_model[d].nunique() > 1).any()]


def variant_text(row: pd.Series, dims: Sequence[str]) -> str:
    """The varying dimensions of one row as short text, e.g. ``float16 · training``."""
    parts = []
    for d in dims:
        v = row[d]
        if d == "compiled":
            parts.append("compiled ?" if is_missing(v) else "compiled" if bool(v) else "eager")
        elif d == "input_shape":
            parts.append(f"input {_text_or(v, '?')}")
        else:
            parts.append(_text_or(v, "?"))
    return " · ".join(parts)


def prepare_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """The cases table ready for figures: every column present, plus ``device_label``,
    ``variant`` (the varying case dimensions) and ``series`` (device and variant, one curve).

    Rows keep their order (the order of the files given), so the first device is the baseline.
    """
    df = ensure_columns(cases, "cases", OPTIONAL_CASE_COLUMNS).reset_index(drop=True)
    df["device_label"] = device_labels(df)
    dims = varying_dims(df)
    df["variant"] = [variant_text(r, dims) for _, r in df.iterrows()] if dims else ""
    df["series"] = [
        f"{d} · {v}" if v else d for d, v in zip(df["device_label"], df["variant"], strict=True)
    ]
    return df


def prepared(cases: pd.DataFrame) -> pd.DataFrame:
    """``cases`` as ``prepare_cases`` returns it (unchanged when it already is)."""
    return cases if "series" in cases.columns else prepare_cases(cases)


def points(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per point (the latest measurement), sorted by batch size for line drawing."""
    out = latest_per_point(df, keys)
    return out.sort_values("batch_size", kind="stable") if not out.empty else out


def latest_per_point(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per ``keys``: the latest by ``timestamp_utc`` where a point was measured twice."""
    if df.empty:
        return df
    order = df.assign(_ts=df["timestamp_utc"].astype(object).fillna(""), _pos=range(len(df)))
    order = order.sort_values(["_ts", "_pos"], kind="stable")
    keep = order.drop_duplicates(list(keys), keep="last")
    return keep.sort_values("_pos").drop(columns=["_ts", "_pos"])


def case_label(row: pd.Series) -> str:
    """Short, unescaped label of one case: ``resnet50 bs 32``."""
    bs = row.get("batch_size")
    return f"{_text_or(row.get('model'), '?')} bs {'?' if is_missing(bs) else int(bs)}"


def missing_summary(
    df: pd.DataFrame,
    column: str,
    what: str,
    sources: str | Sequence[str] | None = None,
    *,
    max_reasons: int = 4,
    max_examples: int = 3,
) -> list[str]:
    """Escaped lines saying which rows lack ``column`` and why, grouped by reason with counts."""
    if column not in df.columns:
        return [esc(f"{what}: no such column in these results ({len(df)} cases)")]
    absent = df[df[column].isna()]
    if absent.empty:
        return []
    reasons = [missing_reason(r, what, sources) for _, r in absent.iterrows()]
    labels = [case_label(r) for _, r in absent.iterrows()]
    counts = Counter(reasons)
    lines = []
    for reason, n in counts.most_common(max_reasons):
        ex = [lab for lab, r in zip(labels, reasons, strict=True) if r == reason][:max_examples]
        more = ", …" if n > len(ex) else ""
        lines.append(esc(f"{reason} ({n} case{'s' if n > 1 else ''}: {', '.join(ex)}{more})"))
    rest = len(counts) - max_reasons
    if rest > 0:
        lines.append(esc(f"and {rest} other reasons (see the table of cases)"))
    return lines


def si(value: Any, unit: str = "", digits: int = 3) -> str:
    """``12345678`` -> ``12.3 M``; missing -> an em dash. For counts, FLOPs, FLOP/s."""
    v = number(value)
    if v is None:
        return MISSING_TEXT
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.{digits}g} {prefix}{unit}".rstrip()
    return f"{v:.{digits}g} {unit}".rstrip()


def human_bytes(value: Any) -> str:
    """Bytes in binary units (KiB, MiB, GiB); missing -> an em dash."""
    v = number(value)
    if v is None:
        return MISSING_TEXT
    for factor, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {unit}"
    return f"{v:.0f} B"


def seconds(value: Any) -> str:
    """A duration in s, ms or µs with 3 significant digits; missing -> an em dash."""
    v = number(value)
    if v is None:
        return MISSING_TEXT
    v = float(f"{v:.3g}")  # round first: 0.9996 s is "1 s", not "1e+03 ms"
    if abs(v) >= 1:
        return f"{v:.3g} s"
    if abs(v) >= 1e-3:
        return f"{v * 1e3:.3g} ms"
    return f"{v * 1e6:.3g} µs"
