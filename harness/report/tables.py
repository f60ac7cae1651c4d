"""The report's HTML tables: runs and their environment, every case (sortable), layer splits.

Cells are plain text escaped by ``page.table``; a missing value shows as an em dash whose
tooltip says why (the case's error or the ``*_source`` column), and sorts last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.report.data import (
    MISSING_TEXT,
    POWER_REASONS,
    human_bytes,
    is_missing,
    missing_reason,
    number,
    seconds,
    si,
)
from harness.report.page import Html, table

Cell = tuple[str, str | None, str | None]


def _text(value: Any) -> str:
    """A value as table text. Integer columns reach the report as float64 (``normalize``), so
    a whole float prints as the integer it was (``2``, not ``2.0``); missing is a dash."""
    if is_missing(value) or str(value) == "":
        return MISSING_TEXT
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _yes_no(value: Any, yes: str = "yes", no: str = "no") -> str:
    return MISSING_TEXT if is_missing(value) else yes if bool(value) else no


def _join(values: pd.Series) -> str:
    seen = [t for t in dict.fromkeys(_text(v) for v in values) if t != MISSING_TEXT]
    return ", ".join(seen) if seen else MISSING_TEXT


def run_summary_table(cases: pd.DataFrame) -> Html:
    """One row per run: where and with what it was measured, and how its cases ended."""
    fields: list[tuple[str, Callable[[pd.DataFrame], str]]] = [
        ("run", lambda g: _join(g["run_id"])),
        ("host", lambda g: _join(g["host"])),
        ("device", lambda g: _join(g["device_label"])),
        ("CPU", lambda g: _join(g["cpu_model"])),
        ("threads", lambda g: _join(g["cpu_threads"])),
        ("OS", lambda g: _join(g["os"])),
        ("torch", lambda g: _join(g["torch_version"])),
        ("CUDA", lambda g: _join(g["cuda_version"])),
        ("cuDNN", lambda g: _join(g["cudnn_version"])),
        ("driver", lambda g: _join(g["driver_version"])),
        ("Python", lambda g: _join(g["python_version"])),
        ("harness", lambda g: _join(g["harness_version"])),
        (
            "git",
            lambda g: (
                _join(g["git_commit"]) + (" (dirty)" if g["git_dirty"].eq(True).any() else "")
            ),
        ),
        (
            "first case (UTC)",
            lambda g: _text(
                g["timestamp_utc"].dropna().min() if g["timestamp_utc"].notna().any() else None
            ),
        ),
        (
            "last case (UTC)",
            lambda g: _text(
                g["timestamp_utc"].dropna().max() if g["timestamp_utc"].notna().any() else None
            ),
        ),
        ("complete", lambda g: _join(g["run_complete"].map(_yes_no))),
        ("cases", _status_counts),
        ("command", lambda g: _join(g["command_line"])),
    ]
    rows = []
    for _, g in cases.groupby(cases["run_id"].astype(object).fillna("?"), sort=False):
        rows.append([(f(g), None, None) for _, f in fields])
    return table([name for name, _ in fields], rows, css_class="summary")


def _status_counts(g: pd.DataFrame) -> str:
    counts = g["status"].astype(object).fillna("unknown").value_counts()
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _cell(value: Any, title: str | None = None) -> Cell:
    """A text cell: sorts by its text, or last when missing."""
    text = _text(value)
    return (text, "" if text == MISSING_TEXT else None, title)


def _rate(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _num(value: Any, fmt: Callable[[Any], str], reason: str | None = None) -> Cell:
    v = number(value)
    if v is None:
        return (MISSING_TEXT, "", reason)
    return (fmt(v), repr(v), None)


def cases_table(cases: pd.DataFrame) -> Html:
    """Every case, one row each, sortable by clicking a column heading."""
    headers = [
        "model",
        "input",
        "batch",
        "dtype",
        "mode",
        "format",
        "compiled",
        "device",
        "host",
        "status",
        "median",
        "p90",
        "p99",
        "throughput (samples/s)",
        "params",
        "GMACs/sample",
        "activations",
        "peak memory",
        "power (W)",
        "energy (J/sample)",
        "power source",
        "error",
    ]
    rows = []
    for _, r in cases.iterrows():
        fail = missing_reason(r, "latency", None)
        bs = number(r["batch_size"])
        gmacs = (
            None if bs in (None, 0) or number(r["macs"]) is None else number(r["macs"]) / bs / 1e9
        )
        rows.append(
            [
                _cell(r["model"]),
                _cell(r["input_shape"]),
                _num(r["batch_size"], lambda v: f"{v:.0f}"),
                _cell(r["dtype"]),
                _cell(r["mode"]),
                _cell(r["memory_format"]),
                _cell(_yes_no(r["compiled"], "compiled", "eager")),
                _cell(r["device_label"]),
                _cell(r["host"]),
                _cell(r["status"]),
                _num(r["latency_s_median"], seconds, fail),
                _num(r["latency_s_p90"], seconds, fail),
                _num(r["latency_s_p99"], seconds, fail),
                _num(r["throughput_per_s"], _rate, fail),
                _num(r["params"], si),
                _num(gmacs, lambda v: f"{v:.4g}"),
                _num(r["activation_bytes"], human_bytes),
                _num(
                    r["peak_memory_bytes"],
                    human_bytes,
                    missing_reason(r, "peak memory", "memory_source"),
                ),
                _num(
                    r["power_w_mean"],
                    lambda v: f"{v:.4g}",
                    missing_reason(r, "power", POWER_REASONS),
                ),
                _num(
                    r["energy_j_per_sample"],
                    lambda v: f"{v:.4g}",
                    missing_reason(r, "power", POWER_REASONS),
                ),
                _cell(r["power_source"], _text(r["power_source"])),
                _cell(r["error"], _text(r["error"])),
            ]
        )
    return table(headers, rows, sortable=True, css_class="cases")


def shares_table(shares: pd.DataFrame) -> Html:
    """Per layer type: layers, parameters, MACs and activation memory with their shares."""
    headers = [
        "layer type",
        "layers",
        "parameters",
        "% params",
        "MACs",
        "% MACs",
        "activation bytes",
        "% activations",
    ]

    def pct(v: Any) -> str:
        return MISSING_TEXT if number(v) is None else f"{number(v):.1f}%"

    rows = [
        [
            (str(r["category"]), None, None),
            (str(r["layers"]), None, None),
            (si(r["params"]), None, None),
            (pct(r["params_pct"]), None, None),
            (si(r["macs"]), None, None),
            (pct(r["macs_pct"]), None, None),
            (human_bytes(r["activation_bytes"]), None, None),
            (pct(r["activation_bytes_pct"]), None, None),
        ]
        for _, r in shares.iterrows()
    ]
    return table(headers, rows, css_class="shares")
