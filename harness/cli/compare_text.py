"""How ``cnnbench compare`` prints a Comparison: values in their units, the per-pair tables, the
summary, the sections (environment, static changes, one-sided cases), the noisy and n/a lines,
and the JSON document. harness.cli.commands.compare parses the options and runs it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness.compare.compare import Comparison
from harness.compare.verdicts import PAIR, VERDICTS
from harness.core import schema, units
from harness.core.missing import is_missing
from harness.core.schema import CASE_KEY
from harness.core.textsafe import markdown_cell, terminal

UNITS = {c.name: c.unit for c in schema.CASES}


def human(value: Any, unit: str) -> str:
    """A value in its schema unit, readable: 0.0123 s -> '12.3 ms', 2**30 bytes -> '1.0 GiB'."""
    if is_missing(value):
        return "-"
    v = float(value)
    formatter = {"s": units.seconds, "bytes": units.nbytes, "MACs": units.macs,
                 "FLOPs": units.flops, "count": units.count}.get(unit)  # fmt: skip
    if formatter is not None:
        return formatter(v)
    if unit == "samples/s":
        return units.rate(v)  # 0.865 samples/s, never "865m/s"
    return units.si(v, unit)


def ratio_text(r: Any) -> str:
    return "-" if is_missing(r) else f"{r:.3f}"


def ci_text(lo: Any, hi: Any) -> str:
    return "-" if is_missing(lo) else f"[{lo:.3f}, {hi:.3f}]"


def _change(c: Any) -> str:
    return "-" if is_missing(c) else f"{c:+.1%}"


def case_label(r: Any) -> str:
    return (
        f"{r.model} {r.input_shape} b{r.batch_size} {r.dtype} {r.memory_format} {r.mode}"
        f"{' compiled' if r.compiled else ''}"
    )


# -------------------------------------------------------------------------------- output


def text_report(
    comp: Comparison, cases: pd.DataFrame, *, markdown: bool, noisy_listed: bool = True
) -> str:
    """The comparison as text: inputs, then per pair the setting compared across, the table of
    cases, why rows have no ratio, the noisy rows (``noisy_listed``: each, else a count), the
    verdict per model, the geometric means and the sections."""
    fmt = "github" if markdown else "simple"
    safe = markdown_cell if markdown else terminal
    out: list[str] = []

    def title(text: str) -> None:
        out.append(f"### {text}" if markdown else f"\n{text}")

    def table(rows: list[list[Any]], headers: list[str]) -> None:
        cells = [[safe(c) if isinstance(c, str) else c for c in r] for r in rows]
        out.append(tabulate(cells, headers=headers, tablefmt=fmt, disable_numparse=True))

    roles = ["baseline"] + ["candidate"] * (len(comp.inputs) - 1)
    info = [
        [role, r.label, r.cases, r.devices or "-", r.runs.count(",") + 1 if r.runs else 0]
        for role, r in zip(roles, comp.inputs.itertuples(), strict=True)
    ]
    table(info, ["", "input", "cases", "device", "runs"])
    for r in comp.inputs.itertuples():
        if r.duplicates_dropped:
            out.append(
                f"note: {safe(r.label)}: {r.duplicates_dropped} duplicate case row(s) dropped: "
                f"{safe(r.duplicates_why)} ({comp.method['duplicates']})"
            )
        if r.incomplete_runs:
            out.append(
                f"note: {safe(r.label)}: run {safe(r.incomplete_runs)} did not complete "
                "(interrupted)"
            )
    for bname, cname in (
        comp.cases[["baseline", "candidate"]].drop_duplicates().itertuples(index=False)
    ):
        title(f"{safe(cname)} vs {safe(bname)} (ratio = candidate / baseline)")
        shown = cases[(cases["baseline"] == bname) & (cases["candidate"] == cname)]
        across = comp.across[comp.across["candidate"] == cname]
        setting = None
        if len(across):
            a = across.iloc[0]
            setting = a["setting"]
            out.append(
                f"compared across {setting}: baseline {safe(a['baseline_value'])}, candidate "
                f"{safe(a['candidate_value'])} (cases matched on every other key column)"
            )
        _pair_table(shown, comp.method["ci_level"], table, out, safe, setting)
        out += _na_lines(shown, safe, markdown=markdown)
        noisy = comp.noisy[comp.noisy["candidate"] == cname]
        out += _noisy_lines(noisy, safe) if noisy_listed else _noisy_count(noisy)
        models = comp.models[comp.models["candidate"] == cname]
        _models_table(models, shown, table, title)
        summary = comp.summary[comp.summary["candidate"] == cname]
        _summary_table(summary, shown, table, title)
        for name, frame in (
            ("environment", comp.environment),
            ("static", comp.static),
            ("only", comp.only),
        ):
            sel = frame[frame["candidate"] == cname]
            if len(sel):
                _SECTIONS[name](sel, table, title)
    m = comp.method
    out.append(
        f"\nratio: {m['ratio']}; interval: {m['ci']}.\nsame: {m['same']}.\nnoisy: {m['noisy']}."
        f"\n{m['per_model']}."
    )
    return ("\n\n" if markdown else "\n").join(out).strip("\n")


def _noisy_lines(noisy: pd.DataFrame, safe: Any) -> list[str]:
    """Each side of a case measured noisy or invalid, with the signal: why it has no verdict."""
    if noisy.empty:
        return []
    lines = [
        f"{len(noisy)} row(s) not valid: their cases get no faster/slower verdict and are left "
        "out of --fail-on (--include-noisy judges them):"
    ]
    for r in noisy.itertuples(index=False):
        lines.append(f"  {r.side}: {safe(case_label(r))}: {r.validity}: {safe(r.validity_reason)}")
    return ["\n".join(lines)]


def _noisy_count(noisy: pd.DataFrame) -> list[str]:
    """One line for the rows hidden as noisy (--changed, --valid-only)."""
    if noisy.empty:
        return []
    cases = len(noisy[list(CASE_KEY)].astype("string").drop_duplicates())
    return [
        f"{cases} case(s) measured noisy or invalid on a side are not listed (no verdict; "
        "--include-noisy lists them)"
    ]


def _models_table(models: pd.DataFrame, shown: pd.DataFrame, table: Any, title: Any) -> None:
    """The verdict per model of the first metric shown (latency by default), also when
    --changed left no case row to show."""
    if models.empty:
        return
    column = shown["column"].iloc[0] if len(shown) else models["column"].iloc[0]
    rows = models[models["column"] == column]
    if rows.empty:
        return
    title(f"per model ({rows['metric'].iloc[0]}): geometric mean of the judged cases' ratios")
    table(
        [[r.model, r.cases, r.judged, ratio_text(r.geomean_ratio), r.verdict, r.verdicts]
         for r in rows.itertuples()],
        ["model", "cases", "judged", "geomean", "verdict", "verdicts"],
    )  # fmt: skip


def collapse_na(shown: pd.DataFrame) -> pd.DataFrame:
    """The rows of one case whose metrics are n/a for the same reason as one row, where the
    first of them was: its metric cell lists them (``latency, throughput, energy, memory``) and
    its values are left out (they belong to different metrics)."""
    na = shown["verdict"] == "n/a"
    if na.sum() < 2:
        return shown
    group = [*PAIR, *CASE_KEY, "na_reason"]
    key = shown[group].astype("string").fillna("<NA>").agg("\x00".join, axis=1).where(na)
    metrics = shown.loc[na, "metric"].groupby(key[na], sort=False).agg(list)
    out = shown[~(na & key.duplicated())].copy()
    for i in out.index[na[out.index]]:
        names = metrics[key[i]]
        if len(names) > 1:
            out.loc[i, "metric"] = ", ".join(names)
            out.loc[i, ["baseline_value", "candidate_value"]] = np.nan
    return out


def _pair_table(
    shown: pd.DataFrame,
    level: float,
    table: Any,
    out: list[str],
    safe: Any = terminal,
    across: str | None = None,
) -> None:
    if not len(shown):
        out.append("(no rows to show)")
        return
    key = [k for k in CASE_KEY if k != across]  # the baseline's value of it: said above
    constant = [k for k in key if shown[k].astype("string").nunique(dropna=False) == 1]
    varying = [k for k in key if k not in constant] or ["model"]
    if constant:
        first = shown.iloc[0]
        out.append(
            "all rows: "
            + ", ".join(
                f"{k} {'-' if is_missing(first[k]) else safe(first[k])}"
                for k in constant
                if k != "model"
            )
        )
    shown = collapse_na(shown)
    rows = [
        [
            *(getattr(r, k) for k in varying),
            r.metric,
            human(r.baseline_value, UNITS.get(r.column, "")),
            human(r.candidate_value, UNITS.get(r.column, "")),
            ratio_text(r.ratio),
            ci_text(r.ci_low, r.ci_high),
            _change(r.change),
            r.verdict,
        ]
        for r in shown.itertuples()
    ]
    ci = f"{level:.0%} CI"
    table(rows, [*varying, "metric", "baseline", "candidate", "ratio", ci, "change", "verdict"])


def _na_lines(shown: pd.DataFrame, safe: Any = terminal, *, markdown: bool) -> list[str]:
    """Why the ``n/a`` rows have no ratio: one line per reason, with the number of cases and
    the metrics it leaves without a ratio."""
    na = shown[shown["verdict"] == "n/a"]
    if not len(na):
        return []
    bullet = "- " if markdown else "  "
    lines = []
    for reason, rows in na.groupby(na["na_reason"].fillna(""), sort=False):
        n = len(rows[list(CASE_KEY)].astype("string").drop_duplicates())
        metrics = ", ".join(dict.fromkeys(rows["metric"]))
        lines.append(f"{bullet}{n} case{'s' * (n != 1)} ({metrics}): {safe(reason or 'no value')}")
    return ["n/a (no ratio) because:\n" + "\n".join(lines)]


def _summary_table(summary: pd.DataFrame, shown: pd.DataFrame, table: Any, title: Any) -> None:
    columns = list(dict.fromkeys(shown["column"]))
    summary = summary[summary["column"].isin(columns)]
    if not len(summary):
        return
    title("geometric mean of the ratios")
    rows = []
    for r in summary.to_dict("records"):
        counts = ", ".join(f"{r[v]} {v}" for v in VERDICTS if r[v])
        rows.append(
            [
                r["metric"],
                r["cases"],
                ratio_text(r["geomean_ratio"]),
                ci_text(r["ci_low"], r["ci_high"]),
                counts,
            ]
        )
    table(rows, ["metric", "cases", "geomean", "CI", "verdicts"])


def _env_value(column: str, text: str) -> str:
    """An environment value as shown: byte counts humanised (25276514304 -> 23.5 GiB)."""
    if not text:
        return "-"
    if UNITS.get(column) != "bytes":
        return text
    try:
        return ", ".join(units.nbytes(float(v)) for v in text.split(", "))
    except ValueError:
        return text


def _env_section(sel: pd.DataFrame, table: Any, title: Any) -> None:
    title("environment differences")
    table(
        [
            [r.field, _env_value(r.field, r.baseline_value), _env_value(r.field, r.candidate_value)]
            for r in sel.itertuples()
        ],
        ["field", "baseline", "candidate"],
    )


def _static_section(sel: pd.DataFrame, table: Any, title: Any) -> None:
    title("model definition changed (static columns differ for the same model, input, batch)")
    table(
        [
            [
                r.model,
                r.input_shape,
                r.batch_size,
                r.dtype,
                r.column,
                human(r.baseline_value, UNITS.get(r.column, "")),
                human(r.candidate_value, UNITS.get(r.column, "")),
            ]
            for r in sel.itertuples()
        ],
        ["model", "input", "batch", "dtype", "column", "baseline", "candidate"],
    )


def _only_section(sel: pd.DataFrame, table: Any, title: Any) -> None:
    for side in ("baseline", "candidate"):
        rows = sel[sel["side"] == side]
        if len(rows):
            title(f"only in the {side} ({len(rows)} case(s))")
            table([[case_label(r)] for r in rows.itertuples()], ["case"])


_SECTIONS = {"environment": _env_section, "static": _static_section, "only": _only_section}


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def json_document(comp: Comparison, cases: pd.DataFrame, failures: pd.DataFrame) -> str:
    doc = {
        "method": comp.method,
        "inputs": _records(comp.inputs),
        "cases": _records(cases),
        "summary": _records(comp.summary),
        "environment": _records(comp.environment),
        "static_changes": _records(comp.static),
        "only": _records(comp.only),
        "noisy": _records(comp.noisy),
        "across": _records(comp.across),
        "models": _records(comp.models),
        "failures": _records(failures),
    }
    return json.dumps(doc, indent=2)
