"""The report's tables: runs (HTML), every case (columnar JSON drawn by the page's script), and
the layer split by type (HTML).

The table of cases can hold 50,000 rows, so it is not HTML: each column travels once, as its
distinct display strings (``harness.units`` formats them here, in Python) and one small integer
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

from harness import units
from harness.report.data import MISSING_TEXT, POWER_REASONS, is_missing, missing_reason, number
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
    """One column of the table of cases: its heading, how to read a row's value, and how to
    print it (None: text)."""

    header: str
    value: Callable[[dict[str, Any]], Any]
    fmt: Callable[[float], str] | None = None
    title: Callable[[dict[str, Any]], str | None] | None = None
    mark: Callable[[dict[str, Any]], str] | None = None  # appended to the text (e.g. "†")


def _latency(column: str) -> Column:
    return Column(
        column.removeprefix("latency_s_"),
        lambda r: r[column],
        lambda v: units.seconds(v, micro="µ"),
        lambda r: missing_reason(r, "latency", None) if is_missing(r[column]) else None,
    )


def _gmacs(r: dict[str, Any]) -> float | None:
    m, b = number(r["macs"]), number(r["batch_size"])
    return None if m is None or not b else m / b


def case_columns(cases: pd.DataFrame) -> list[Column]:
    """The columns shown; ``run`` only when the table holds several runs."""
    power = lambda r: missing_reason(r, "power", POWER_REASONS)  # noqa: E731
    cols = [
        Column("model", lambda r: r["model"]),
        Column("input", lambda r: r["input_shape"]),
        Column("batch", lambda r: r["batch_size"], units.integer),
        Column(
            "dtype",
            lambda r: (
                r["dtype"]
                + (f" ({r['dtype_method']})" if isinstance(r.get("dtype_method"), str) else "")
                if isinstance(r["dtype"], str)
                else None
            ),
        ),
        Column("mode", lambda r: r["mode"]),
        Column("format", lambda r: r["memory_format"]),
        Column("compiled", lambda r: _yes_no(r["compiled"], "compiled", "eager")),
        Column("configuration", lambda r: r["config_short"], title=lambda r: r["config"]),
        Column("status", lambda r: r["status"], title=lambda r: r["error"]),
        Column(
            "validity",
            lambda r: r["validity"],
            title=lambda r: (
                r["validity_reason"]
                if isinstance(r["validity_reason"], str)
                else ("did not run" if r["status"] != "ok" else None)
            ),
        ),
        _latency("latency_s_median"),
        _latency("latency_s_p90"),
        Column(
            "p99",
            lambda r: r["latency_s_p99"],
            lambda v: units.seconds(v, micro="µ"),
            lambda r: (
                "unreliable: from fewer than 100 samples"
                if r.get("p99_reliable") is False
                else None
            ),
            mark=lambda r: " †" if r.get("p99_reliable") is False else "",
        ),
        Column("throughput", lambda r: r["throughput_per_s"], lambda v: units.rate(v, "/s")),
        Column("MACs/sample", _gmacs, lambda v: units.si(v)),
        Column("params", lambda r: r["params"], units.count),
        Column("activations", lambda r: r["activation_bytes"], units.nbytes),
        Column(
            "peak memory",
            lambda r: r["peak_memory_bytes"],
            units.nbytes,
            lambda r: (
                missing_reason(r, "peak memory", "memory_source")
                if is_missing(r["peak_memory_bytes"])
                else r["memory_source"]
            ),
        ),
        Column(
            "energy/sample",
            lambda r: r["energy_j_per_sample"],
            lambda v: units.si(v, "J"),
            lambda r: power(r) if is_missing(r["energy_j_per_sample"]) else r["power_source"],
        ),
        Column("error", lambda r: r["error"], title=lambda r: r["error"]),
    ]
    if cases["run_id"].nunique(dropna=True) > 1:
        cols.insert(0, Column("run", lambda r: r["run_id"]))
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


def cases_payload(cases: pd.DataFrame) -> dict[str, Any]:
    """The table of cases as columns: heading, dictionary, codes, tooltips."""
    records = cases.to_dict("records")
    columns = []
    for col in case_columns(cases):
        raw = [col.value(r) for r in records]
        if col.fmt is not None:
            nums = [number(v) for v in raw]
            texts = [MISSING_TEXT if v is None else col.fmt(v) for v in nums]
            if col.mark is not None:
                texts = [
                    t if t == MISSING_TEXT else t + col.mark(r)
                    for t, r in zip(texts, records, strict=True)
                ]
            order = [np.inf if v is None else v for v in nums]
            data = _encode(texts, order)
            data["n"] = 1
        else:
            texts = [_cut(_text(v)) for v in raw]
            data = _encode(texts, None)
        data["h"] = col.header
        if col.title is not None:
            titles = [col.title(r) for r in records]
            titles = [t if isinstance(t, str) and t else MISSING_TEXT for t in titles]
            data["t"] = _encode(titles, None)
        columns.append(data)
    return {"rows": len(records), "columns": columns}


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
        '<div class="table-wrap"><table class="cases sortable"><thead></thead><tbody></tbody>'
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
