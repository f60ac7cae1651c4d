"""The report's tables: runs (HTML), every case (columnar JSON drawn by the page's script), and
the layer split by type (HTML).

The table of cases can hold 50,000 rows, so it is not HTML: each column travels once, as its
distinct display strings (``harness.core.units`` formats them here, in Python) and one small integer
code per row; for a numeric column the strings are ordered by value, so sorting by code sorts
by value. The page's script draws one page of rows at a time, sorts on a click and filters as
you type. A missing value shows as a dash whose tooltip says why, and sorts last.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.core import units
from harness.report.data import (
    MISSING_TEXT,
    POWER_REASONS,
    is_missing,
    missing_reason,
    number,
    records,
)
from harness.report.page import Html, script_safe_json
from harness.report.text import esc

CASES_ELEMENT_ID = "cnnbench-cases"
MAX_TEXT = 90  # longer cells are cut with an ellipsis; the tooltip holds the whole text


def _text(value: Any) -> str:
    """A value as table text: a whole float prints as the integer it was (``2``, not
    ``2.0``); missing is a dash."""
    if is_missing(value) or str(value) == "":
        return MISSING_TEXT
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _yes_no(value: Any, yes: str = "yes", no: str = "no") -> str:
    return MISSING_TEXT if is_missing(value) else yes if bool(value) else no


def _join(values: pd.Series) -> str:
    seen = [t for t in dict.fromkeys(_text(v) for v in values) if t != MISSING_TEXT]
    return ", ".join(seen) if seen else MISSING_TEXT


# ----------------------------------------------------------------------------------- runs


def _status_counts(g: pd.DataFrame) -> str:
    counts = g["quality"].astype(object).fillna("unknown").value_counts()
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def run_summary_table(cases: pd.DataFrame) -> Html:
    """One row per run: its configuration, when, how its cases ended, the software, and the
    command line (collapsed). Cells wrap: the table fits the page width."""
    headers = ["run", "configuration", "cases", "when (UTC)", "software", "command"]
    rows = []
    for run, g in cases.groupby(cases["run_id"].astype(object).fillna("?"), sort=False):
        stamps = g["timestamp_utc"].dropna()
        when = MISSING_TEXT if stamps.empty else f"{stamps.min()} – {stamps.max()}"
        complete = _join(g["run_complete"].map(_yes_no))
        software = "; ".join(
            f"{name} {v}"
            for name, col in (
                ("torch", "torch_version"),
                ("CUDA", "cuda_version"),
                ("cuDNN", "cudnn_version"),
                ("driver", "driver_version"),
                ("Python", "python_version"),
                ("harness", "harness_version"),
                ("git", "git_commit"),
            )
            if (v := _join(g[col])) != MISSING_TEXT
        )
        if g["git_dirty"].eq(True).any():
            software += " (dirty)"
        command = _join(g["command_line"])
        cells = [
            f"{esc(run)}<br><small>complete: {esc(complete)}</small>",
            esc(_join(g["config"])) + f"<br><small>{esc(_join(g['os']))}</small>",
            esc(_status_counts(g)),
            esc(when),
            esc(software),
            f"<details><summary>show</summary><code>{esc(command)}</code></details>"
            if command != MISSING_TEXT
            else MISSING_TEXT,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return Html(
        f'<div class="table-wrap"><table class="summary wrap"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


# ---------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Column:
    """One column of the table of cases: its heading, its values (a column of the frame, or a
    function of the frame), how to print a number (None: text), the tooltip (a column of the
    frame), and, for a missing value, the tooltip that says why (a function of the row)."""

    header: str
    value: str | Callable[[pd.DataFrame], Sequence[Any]]
    fmt: Callable[[float], str] | None = None
    title: str | None = None
    why: Callable[[dict[str, Any]], str | None] | None = None
    mark: tuple[str, str] | None = None  # (column, text): appended where the column is False


def _latency(column: str) -> Column:
    return Column(
        column.removeprefix("latency_s_"),
        column,
        _seconds,
        why=lambda r: missing_reason(r, "latency", None),
    )


def _seconds(v: float) -> str:
    return units.seconds(v, micro="µ")


def _per_sample(df: pd.DataFrame) -> Sequence[Any]:
    macs = pd.to_numeric(df["macs"], errors="coerce")
    bs = pd.to_numeric(df["batch_size"], errors="coerce")
    return (macs / bs.where(bs > 0)).tolist()


def _dtype(df: pd.DataFrame) -> Sequence[Any]:
    method = df["dtype_method"].where(df["dtype_method"].notna(), None)
    return [
        None if not isinstance(d, str) else d + (f" ({m})" if isinstance(m, str) else "")
        for d, m in zip(df["dtype"], method, strict=True)
    ]


def _compiled(df: pd.DataFrame) -> Sequence[Any]:
    return [_yes_no(v, "compiled", "eager") for v in df["compiled"]]


def case_columns(cases: pd.DataFrame) -> list[Column]:
    """The columns shown; ``run`` only when the table holds several runs."""
    cols = [
        Column("model", "model"),
        Column("input", "input_shape"),
        Column("batch", "batch_size", units.integer),
        Column("dtype", _dtype),
        Column("mode", "mode"),
        Column("format", "memory_format"),
        Column("compiled", _compiled),
        Column("configuration", "config_short", title="config"),
        Column(
            "validity",
            "validity",
            title="validity_reason",
            why=lambda r: f"did not run: {r['status']}" if r["status"] != "ok" else None,
        ),
        _latency("latency_s_median"),
        Column("throughput", "throughput_per_s", lambda v: units.rate(v, "/s")),
        Column(
            "peak memory",
            "peak_memory_bytes",
            units.nbytes,
            title="memory_source",
            why=lambda r: missing_reason(r, "peak memory", "memory_source"),
        ),
        _latency("latency_s_p90"),
        Column(
            "p99",
            "latency_s_p99",
            _seconds,
            mark=("p99_reliable", " †"),
            why=lambda r: missing_reason(r, "latency", None),
        ),
        Column("MACs/sample", _per_sample, units.si),
        Column("params", "params", units.count),
        Column("activations", "activation_bytes", units.nbytes),
        Column(
            "energy/sample",
            "energy_j_per_sample",
            lambda v: units.si(v, "J"),
            title="power_source",
            why=lambda r: missing_reason(r, "power", POWER_REASONS),
        ),
        Column("status", "status", title="error"),
        Column("error", "error", title="error"),
    ]
    if cases["run_id"].nunique(dropna=True) > 1:
        cols.append(Column("run", "run_id"))
    return cols


def _encode(texts: list[str], order: Sequence[float] | None) -> dict[str, Any]:
    """Dictionary-encode a column: distinct strings (ordered by ``order`` where given, else
    alphabetically) and one code per row; missing (the dash) is -1."""
    present = [t for t in dict.fromkeys(texts) if t != MISSING_TEXT]
    if order is None:
        uniq = sorted(present, key=str.casefold)
    else:
        first: dict[str, float] = {}
        for t, v in zip(texts, order, strict=True):
            if t != MISSING_TEXT and (t not in first or v < first[t]):
                first[t] = v
        uniq = sorted(present, key=lambda t: first[t])
    index = {t: i for i, t in enumerate(uniq)}
    return {"d": uniq, "c": [index.get(t, -1) for t in texts]}


def _number_texts(raw: pd.Series, fmt: Callable[[float], str]) -> tuple[list[str], list]:
    """Each value printed (each distinct value formatted once), and the values to sort by."""
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(vals)
    uniq = np.unique(vals[ok])
    printed = np.array([fmt(float(v)) for v in uniq] + [MISSING_TEXT], dtype=object)
    where = np.full(len(vals), len(uniq))
    where[ok] = np.searchsorted(uniq, vals[ok])
    return list(printed[where]), list(np.where(ok, vals, np.inf))


def _texts(values: Sequence[Any]) -> list[str]:
    cache: dict[Any, str] = {}
    out = []
    for v in values:
        key = v if isinstance(v, (str, int, float, bool)) or v is None else repr(v)
        if key not in cache:
            cache[key] = _cut(_text(v))
        out.append(cache[key])
    return out


def cases_payload(cases: pd.DataFrame) -> dict[str, Any]:
    """The table of cases as columns: heading, dictionary, codes, tooltips."""
    n = len(cases)
    rows: list[dict[str, Any]] | None = None
    columns = []
    for col in case_columns(cases):
        raw = cases[col.value] if isinstance(col.value, str) else pd.Series(col.value(cases))
        if col.fmt is not None:
            texts, order = _number_texts(raw, col.fmt)
            if col.mark is not None:
                flag, mark = col.mark
                texts = [
                    t if t == MISSING_TEXT or f is not False else t + mark
                    for t, f in zip(texts, cases[flag].tolist(), strict=True)
                ]
            data = _encode(texts, order)
            data["n"] = 1
        else:
            texts = _texts(raw.tolist())
            data = _encode(texts, None)
        data["h"] = col.header
        titles = [MISSING_TEXT] * n
        if col.title is not None:
            titles = _texts(cases[col.title].tolist())
        if col.mark is not None:
            titles = [
                "unreliable: from fewer than 100 samples" if f is False else t
                for t, f in zip(titles, cases[col.mark[0]].tolist(), strict=True)
            ]
        if col.why is not None:
            missing = [i for i, t in enumerate(texts) if t == MISSING_TEXT]
            if missing:
                rows = rows if rows is not None else records(cases)
                for i in missing:
                    why = col.why(rows[i])
                    titles[i] = why if why else titles[i]
        if any(t != MISSING_TEXT for t in titles):
            data["t"] = _encode(titles, None)
        columns.append(data)
    return {"rows": n, "columns": columns}


def cases_table(cases: pd.DataFrame) -> Html:
    """Every case: a filter box, a sortable table drawn a page at a time by the page's script
    from the columnar data shipped once in the page."""
    payload = script_safe_json(
        json.dumps(cases_payload(cases), separators=(",", ":"), ensure_ascii=False)
    )
    return Html(
        '<div class="cases-table" data-source="' + CASES_ELEMENT_ID + '">'
        '<div class="table-tools"><input type="search" class="filter" '
        'placeholder="filter: type part of a model, setting, status..." '
        'aria-label="filter the cases"> <span class="count"></span> '
        '<button type="button" class="prev">previous</button> '
        '<button type="button" class="next">next</button></div>'
        '<div class="table-wrap whole"><table class="cases sortable"><thead></thead><tbody></tbody>'
        "</table></div></div>"
        f'<script type="application/json" id="{CASES_ELEMENT_ID}">{payload}</script>'
    )


# --------------------------------------------------------------------------------- layers


def shares_table(shares: pd.DataFrame) -> Html:
    """Per model and layer type: layers, and the share of parameters, MACs, output bytes and
    measured time (a dash where the model has no such value)."""
    headers = ["model", "layer type", "layers", "% params", "% MACs", "% output bytes", "% time"]
    rows = []
    for _, r in shares.iterrows():
        cells = [
            _text(r["model"]),
            _text(r["category"]),
            units.integer(r["layers"]),
            *[
                MISSING_TEXT if number(r.get(c)) is None else units.percent(number(r.get(c)))
                for c in ("params_share", "macs_share", "activation_bytes_share", "time_s_share")
            ],
        ]
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return Html(
        f'<div class="table-wrap short"><table class="shares"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
