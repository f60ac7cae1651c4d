"""`cnnbench compare BASELINE CANDIDATE [CANDIDATE ...]`: result files side by side, noise-aware.

Exit codes: 0 done; 1 some case is worse than a ``--fail-on`` threshold (listed on stderr);
2 bad input (not a result file, corrupt, no common cases, a bad option), one line on stderr.

Strings from result files (model names, errors, device names) are data somebody else may have
written: every format prints them through harness.core.textsafe, so none drives the terminal, forges
a line or breaks a markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness.compare.compare import Comparison, compare_runs
from harness.compare.verdicts import METRICS, PAIR, VERDICTS, metric_column
from harness.core import schema, units
from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing
from harness.core.schema import CASE_KEY
from harness.core.textsafe import markdown_cell, terminal

FORMATS = ("table", "markdown", "csv", "json")
SORTS = ("case", "ratio", "change", "verdict")
UNITS = {c.name: c.unit for c in schema.CASES}
# Percentile intervals settle within a few thousand resamples (2000 is the default); each case
# draws its resamples in memory, so an absurd count is refused rather than swapped to death.
MAX_RESAMPLES = 100_000


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="compare result files across hardware and runs, with noise-aware verdicts",
        description="Compare each CANDIDATE against BASELINE, case by case (joined on "
        f"{', '.join(CASE_KEY)}). Each is a result file or a directory of them. Ratios are "
        "candidate / baseline; latency and throughput come with a bootstrap confidence "
        "interval from the raw samples. Exit 1 when --fail-on finds a regression, 2 on bad "
        "input.",
    )
    p.add_argument("baseline", metavar="BASELINE", help="result file or directory")
    p.add_argument(
        "candidates",
        metavar="CANDIDATE",
        nargs="+",
        help="result file or directory; several are each compared with BASELINE",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output (default table)")
    p.add_argument(
        "--model",
        action="append",
        metavar="PATTERN",
        help="only models matching this shell pattern, e.g. 'resnet*' (repeatable)",
    )
    p.add_argument(
        "--metric",
        action="append",
        metavar="METRIC",
        help=f"{'|'.join(METRICS)} or a numeric result column such as latency_s_p99 "
        "(repeatable; default: all four)",
    )
    p.add_argument(
        "--sort",
        choices=SORTS,
        default="case",
        help="row order: case (as in the baseline), ratio, change (largest first) or verdict",
    )
    p.add_argument("--reverse", action="store_true", help="reverse the sort order")
    p.add_argument("--changed", action="store_true", help="hide rows whose verdict is 'same'")
    p.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="METRIC:PCT",
        help="exit 1 when a case is worse than PCT percent on METRIC beyond noise, "
        "e.g. latency_s_median:5%% (repeatable)",
    )
    p.add_argument(
        "--include-noisy",
        action="store_true",
        help="let --fail-on judge cases measured noisy or invalid on either side (left out by "
        "default: noise is never a regression)",
    )
    p.add_argument(
        "--min-effect",
        default="2%",
        metavar="PCT",
        help="changes smaller than this are 'same' (default 2%%)",
    )
    p.add_argument("--ci-level", type=float, default=0.95, help="confidence level (0.95)")
    p.add_argument(
        "--resamples",
        type=int,
        default=2000,
        help=f"bootstrap resamples, 100 to {MAX_RESAMPLES:,} (2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed, 0 or more (0)")
    p.set_defaults(func=run)
    return p


def parse_percent(text: str, what: str) -> float:
    """``"5%"`` or ``"5"`` -> 0.05."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*", text)
    if not m:
        raise InvalidInputError(f"{what}: {text!r} is not a percentage; write it like 5%")
    return float(m.group(1)) / 100


def parse_fail_on(specs: list[str]) -> dict[str, float]:
    """``["latency_s_median:5%", "memory:10"]`` -> {column: fraction}."""
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, pct = spec.rpartition(":")
        if not sep or not name:
            raise InvalidInputError(
                f"--fail-on {spec!r}: write METRIC:PERCENT, e.g. latency_s_median:5%"
            )
        out[metric_column(name.strip())] = parse_percent(pct, f"--fail-on {spec!r}")
    return out


def check_bootstrap_options(resamples: int, seed: int) -> None:
    """One usage line naming the option and its bound."""
    if resamples > MAX_RESAMPLES:
        raise InvalidInputError(
            f"--resamples {resamples} is more than the {MAX_RESAMPLES} allowed: an interval "
            "settles within a few thousand resamples (default 2000); pass 100 to "
            f"{MAX_RESAMPLES}"
        )
    if seed < 0:
        raise InvalidInputError(
            f"--seed {seed}: the bootstrap seed must be 0 or more; pass e.g. --seed 0"
        )


def run(args: argparse.Namespace) -> int:
    check_bootstrap_options(args.resamples, args.seed)
    thresholds = parse_fail_on(args.fail_on)
    shown = [metric_column(m) for m in (args.metric or METRICS)]
    comp = compare_runs(
        args.baseline,
        *args.candidates,
        metrics=list(dict.fromkeys([*shown, *thresholds])),
        models=args.model,
        min_effect=parse_percent(args.min_effect, "--min-effect"),
        ci_level=args.ci_level,
        n_resamples=args.resamples,
        seed=args.seed,
    )
    failures = comp.failures(thresholds, include_noisy=args.include_noisy)
    for column in thresholds:
        checked = comp.cases.loc[comp.cases["column"] == column, "ratio"].notna().any()
        if not checked and not (failures["column"] == column).any():
            print(
                f"cnnbench compare: warning: --fail-on {terminal(column)} checked nothing: no "
                "case has it on both sides (the n/a reasons say why)",
                file=sys.stderr,
            )
    cases = _select(comp.cases, shown, args)
    if args.format == "csv":
        _inert(cases).to_csv(sys.stdout, index=False)  # streamed, not one string
    elif args.format == "json":  # json.dumps escapes every control character (ensure_ascii)
        print(_json(comp, cases, failures))
    else:
        print(_text(comp, cases, markdown=args.format == "markdown"))
    if len(failures):
        _report_failures(failures)
        return 1
    return 0


def _inert(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every string cell passed through textsafe.terminal: each distinct value
    escaped once, and a column rewritten only when one of its values changes (a new string per
    cell of a 200,000-row comparison held more memory than the comparison itself)."""
    out = frame
    for column in frame.columns:
        values = frame[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        escaped = {v: terminal(v) for v in pd.unique(values) if isinstance(v, str)}
        changed = {v: e for v, e in escaped.items() if e != v}
        if changed:
            if out is frame:
                out = frame.copy(deep=False)
            out[column] = values.map(lambda v, c=changed: c.get(v, v) if isinstance(v, str) else v)
    return out


def _select(cases: pd.DataFrame, shown: list[str], args: argparse.Namespace) -> pd.DataFrame:
    """The rows to print: the shown metrics, optionally only changes, sorted within each pair."""
    df = cases[cases["column"].isin(shown)].copy()
    if args.changed:
        df = df[df["verdict"] != "same"]
    df["_pair"] = df["candidate"].map(
        {c: i for i, c in enumerate(dict.fromkeys(cases["candidate"]))}
    )
    df["_metric"] = df["column"].map({c: i for i, c in enumerate(shown)})
    df["_case"] = range(len(df))
    df["_abs"] = -np.log(df["ratio"]).abs()  # largest change first
    by = {
        "case": ["_case"],
        "ratio": ["_metric", "ratio", "_case"],
        "change": ["_abs", "_case"],
        "verdict": ["verdict", "_case"],
    }[args.sort]
    df = df.sort_values(
        ["_pair", *by],
        ascending=[True] + [not args.reverse] * len(by),
        kind="stable",
        na_position="last",
    )
    return df.drop(columns=["_pair", "_metric", "_case", "_abs"]).reset_index(drop=True)


# ------------------------------------------------------------------------------ humanising


def human(value: Any, unit: str) -> str:
    """A value in its schema unit, readable: 0.0123 s -> '12.3 ms', 2**30 bytes -> '1.0 GiB'."""
    if is_missing(value):
        return "-"
    v = float(value)
    formatter = {"s": units.seconds, "bytes": units.nbytes, "MACs": units.macs,
                 "FLOPs": units.flops, "count": units.count}.get(unit)  # fmt: skip
    if formatter is not None:
        return formatter(v)
    unit = "/s" if unit == "samples/s" else unit
    scale, prefix = next(
        ((sc, p) for sc, p in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"))
         if abs(v) >= sc), (1e-6, "u") if v else (1.0, ""),
    )  # fmt: skip
    text = f"{v / scale:.3g}"
    return f"{text}{prefix}{unit}" if unit.startswith("/") else f"{text} {prefix}{unit}".strip()


def _ratio(r: Any) -> str:
    return "-" if is_missing(r) else f"{r:.3f}"


def _ci(lo: Any, hi: Any) -> str:
    return "-" if is_missing(lo) else f"[{lo:.3f}, {hi:.3f}]"


def _change(c: Any) -> str:
    return "-" if is_missing(c) else f"{c:+.1%}"


def _case_label(r: Any) -> str:
    return (
        f"{r.model} {r.input_shape} b{r.batch_size} {r.dtype} {r.memory_format} {r.mode}"
        f"{' compiled' if r.compiled else ''}"
    )


# -------------------------------------------------------------------------------- output


def _text(comp: Comparison, cases: pd.DataFrame, *, markdown: bool) -> str:
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
        _pair_table(shown, comp.method["ci_level"], table, out, safe)
        out += _na_lines(shown, safe, markdown=markdown)
        out += _noisy_lines(comp.noisy[comp.noisy["candidate"] == cname], safe)
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
        lines.append(f"  {r.side}: {safe(_case_label(r))}: {r.validity}: {safe(r.validity_reason)}")
    return ["\n".join(lines)]


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
    shown: pd.DataFrame, level: float, table: Any, out: list[str], safe: Any = terminal
) -> None:
    if not len(shown):
        out.append("(no rows to show)")
        return
    key = list(CASE_KEY)
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
            _ratio(r.ratio),
            _ci(r.ci_low, r.ci_high),
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
                _ratio(r["geomean_ratio"]),
                _ci(r["ci_low"], r["ci_high"]),
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
            table([[_case_label(r)] for r in rows.itertuples()], ["case"])


_SECTIONS = {"environment": _env_section, "static": _static_section, "only": _only_section}


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _json(comp: Comparison, cases: pd.DataFrame, failures: pd.DataFrame) -> str:
    doc = {
        "method": comp.method,
        "inputs": _records(comp.inputs),
        "cases": _records(cases),
        "summary": _records(comp.summary),
        "environment": _records(comp.environment),
        "static_changes": _records(comp.static),
        "only": _records(comp.only),
        "noisy": _records(comp.noisy),
        "failures": _records(failures),
    }
    return json.dumps(doc, indent=2)


def _report_failures(failures: pd.DataFrame) -> None:
    lines = [f"cnnbench compare: {len(failures)} regression(s) over the --fail-on thresholds:"]
    for r in failures.itertuples():
        ci = "" if _ci(r.ci_low, r.ci_high) == "-" else f", CI {_ci(r.ci_low, r.ci_high)}"
        lines.append(
            terminal(
                f"  FAIL {r.column} {_case_label(r)}: {r.reason} "
                f"(ratio {_ratio(r.ratio)}{ci}; {r.candidate} vs {r.baseline})"
            )
        )
    print("\n".join(lines), file=sys.stderr)
