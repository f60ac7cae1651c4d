"""`cnnbench compare BASELINE CANDIDATE [CANDIDATE ...]`: result files side by side, noise-aware.

Exit codes: 0 done; 1 some case is worse than a ``--fail-on`` threshold (listed on stderr);
2 bad input (not a result file, corrupt, no common cases, a bad option), one line on stderr.
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

from harness import units
from harness.errors import InvalidInputError
from harness.results import schema
from harness.results.compare import METRICS, VERDICTS, Comparison, compare_runs, metric_column
from harness.results.missing import is_missing
from harness.results.schema import CASE_KEY

FORMATS = ("table", "markdown", "csv", "json")
SORTS = ("case", "ratio", "change", "verdict")
UNITS = {c.name: c.unit for c in schema.CASES}


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
        "--min-effect",
        default="2%",
        metavar="PCT",
        help="changes smaller than this are 'same' (default 2%%)",
    )
    p.add_argument("--ci-level", type=float, default=0.95, help="confidence level (0.95)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
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


def run(args: argparse.Namespace) -> int:
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
    failures = comp.failures(thresholds)
    for column in thresholds:
        checked = comp.cases.loc[comp.cases["column"] == column, "ratio"].notna().any()
        if not checked and not (failures["column"] == column).any():
            print(
                f"cnnbench compare: warning: --fail-on {column} checked nothing: no case has "
                "it on both sides (the n/a reasons say why)",
                file=sys.stderr,
            )
    cases = _select(comp.cases, shown, args)
    if args.format == "csv":
        sys.stdout.write(cases.to_csv(index=False))
    elif args.format == "json":
        print(_json(comp, cases, failures))
    else:
        print(_text(comp, cases, markdown=args.format == "markdown"))
    if len(failures):
        _report_failures(failures)
        return 1
    return 0


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
    out: list[str] = []

    def title(text: str) -> None:
        out.append(f"### {text}" if markdown else f"\n{text}")

    def table(rows: list[list[Any]], headers: list[str]) -> None:
        out.append(tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True))

    roles = ["baseline"] + ["candidate"] * (len(comp.inputs) - 1)
    info = [
        [role, r.label, r.cases, r.devices or "-", r.runs.count(",") + 1 if r.runs else 0]
        for role, r in zip(roles, comp.inputs.itertuples(), strict=True)
    ]
    table(info, ["", "input", "cases", "device", "runs"])
    for r in comp.inputs.itertuples():
        if r.duplicates_dropped:
            out.append(
                f"note: {r.label}: {r.duplicates_dropped} duplicate case row(s) dropped "
                f"({comp.method['duplicates']})"
            )
        if r.incomplete_runs:
            out.append(f"note: {r.label}: run {r.incomplete_runs} did not complete (interrupted)")
    for bname, cname in (
        comp.cases[["baseline", "candidate"]].drop_duplicates().itertuples(index=False)
    ):
        title(f"{cname} vs {bname} (ratio = candidate / baseline)")
        shown = cases[(cases["baseline"] == bname) & (cases["candidate"] == cname)]
        _pair_table(shown, comp.method["ci_level"], table, out)
        out += _na_lines(shown, markdown=markdown)
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
    out.append(f"\nratio: {m['ratio']}; interval: {m['ci']}.\nsame: {m['same']}.")
    return ("\n\n" if markdown else "\n").join(out).strip("\n")


def _pair_table(shown: pd.DataFrame, level: float, table: Any, out: list[str]) -> None:
    if not len(shown):
        out.append("(no rows to show)")
        return
    key = list(CASE_KEY)
    constant = [k for k in key if shown[k].astype("string").nunique(dropna=False) == 1]
    varying = [k for k in key if k not in constant] or ["model"]
    if constant:
        first = shown.iloc[0]
        out.append("all rows: " + ", ".join(f"{k} {first[k]}" for k in constant if k != "model"))
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


def _na_lines(shown: pd.DataFrame, *, markdown: bool) -> list[str]:
    """Why the ``n/a`` rows have no ratio, grouped by metric and reason with counts."""
    na = shown[shown["verdict"] == "n/a"]
    if not len(na):
        return []
    groups = na.groupby(["metric", "na_reason"], sort=False).size()
    bullet = "- " if markdown else "  "
    lines = [
        f"{bullet}{metric}, {n} case{'s' * (n != 1)}: {reason or 'no value'}"
        for (metric, reason), n in groups.items()
    ]
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
        "failures": _records(failures),
    }
    return json.dumps(doc, indent=2)


def _report_failures(failures: pd.DataFrame) -> None:
    lines = [f"cnnbench compare: {len(failures)} regression(s) over the --fail-on thresholds:"]
    for r in failures.itertuples():
        ci = "" if _ci(r.ci_low, r.ci_high) == "-" else f", CI {_ci(r.ci_low, r.ci_high)}"
        lines.append(
            f"  FAIL {r.column} {_case_label(r)}: {r.reason} "
            f"(ratio {_ratio(r.ratio)}{ci}; {r.candidate} vs {r.baseline})"
        )
    print("\n".join(lines), file=sys.stderr)
