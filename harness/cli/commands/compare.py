"""`cnnbench compare BASELINE CANDIDATE [CANDIDATE ...]`: result files side by side, noise-aware.

Exit codes: 0 done; 1 some case is worse than a ``--fail-on`` threshold (listed on stderr);
2 bad input (not a result file, corrupt, no common cases, a bad option), one line on stderr.

Strings from result files (model names, errors, device names) are data somebody else may have
written: every format prints them through harness.core.textsafe, so none drives the terminal, forges
a line or breaks a markdown table.
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np
import pandas as pd

from harness.cli.compare_text import case_label, ci_text, json_document, ratio_text, text_report
from harness.cli.csv_out import write_csv
from harness.compare.across import SETTINGS, check_setting
from harness.compare.compare import compare_across, compare_runs
from harness.compare.verdicts import METRICS, metric_column
from harness.core.errors import InvalidInputError
from harness.core.schema import CASE_KEY
from harness.core.textsafe import terminal

FORMATS = ("table", "markdown", "csv", "json")
SORTS = ("case", "ratio", "change", "verdict")
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
        "interval from the raw samples, and each model gets a verdict over its cases. Two "
        "inputs that differ in one setting (1 and 2 threads, float32 and float16...) are "
        "compared across it; --across SETTING asks for it, and with one input compares its "
        "settings with each other. Exit 1 when --fail-on finds a regression, 2 on bad input.",
    )
    p.add_argument("baseline", metavar="BASELINE", help="result file or directory")
    p.add_argument(
        "candidates",
        metavar="CANDIDATE",
        nargs="*",
        help="result file or directory; several are each compared with BASELINE (none: give "
        "--across to compare BASELINE's settings with each other)",
    )
    p.add_argument(
        "--across",
        default=None,
        metavar="SETTING",
        help=f"compare across this setting ({'|'.join(SETTINGS)}): cases are matched on the "
        "other key columns; with one input, its rows are split by the setting (default: "
        "across the one setting two inputs without common cases differ in)",
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
    p.add_argument(
        "--changed",
        action="store_true",
        help="only the changes: hide rows whose verdict is 'same', and the noisy and invalid "
        "ones (noise is not a change; --include-noisy keeps them)",
    )
    p.add_argument(
        "--valid-only",
        action="store_true",
        help="hide the rows of cases measured noisy or invalid on either side",
    )
    _add_gate_options(p)
    p.set_defaults(func=run)
    return p


def _add_gate_options(p: argparse.ArgumentParser) -> None:
    """--fail-on, --include-noisy and the settings of the bootstrap."""
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
        help="let --fail-on judge cases measured noisy or invalid on either side, and let "
        "--changed list them (left out by default: noise is never a regression)",
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


# A percentile interval needs resamples beyond each of its ends: with fewer than this many in
# each tail its bound is an extreme of the resamples, not a percentile of anything.
MIN_TAIL_RESAMPLES = 5
MIN_CI_LEVEL = 0.5


def check_ci_level(level: float, resamples: int) -> None:
    """``--ci-level``: at least 0.5 (a narrower interval is not a confidence statement) and at
    most what the resamples can resolve (``MIN_TAIL_RESAMPLES`` beyond each end)."""
    most = 1 - 2 * MIN_TAIL_RESAMPLES / max(resamples, 1)
    if not MIN_CI_LEVEL <= level <= most:  # NaN fails too
        raise InvalidInputError(
            f"--ci-level {level:g}: pass a confidence level from {MIN_CI_LEVEL} to {most:g} "
            f"(with --resamples {resamples}, each end of the interval needs "
            f"{MIN_TAIL_RESAMPLES} resamples beyond it; more resamples allow a higher level), "
            "e.g. 0.95"
        )


def check_bootstrap_options(resamples: int, seed: int) -> None:
    """One usage line naming the option and its bound."""
    if resamples < 100:
        raise InvalidInputError(
            f"--resamples {resamples} are too few for an interval: pass 100 to "
            f"{MAX_RESAMPLES} (default 2000)"
        )
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
    check_ci_level(args.ci_level, args.resamples)
    thresholds = parse_fail_on(args.fail_on)
    shown = [metric_column(m) for m in (args.metric or METRICS)]
    options = {
        "metrics": list(dict.fromkeys([*shown, *thresholds])),
        "models": args.model,
        "min_effect": parse_percent(args.min_effect, "--min-effect"),
        "ci_level": args.ci_level,
        "n_resamples": args.resamples,
        "seed": args.seed,
    }
    if args.across is not None:
        check_setting(args.across)
    if args.candidates:
        comp = compare_runs(
            args.baseline, *args.candidates, across=args.across or "auto", **options
        )
    elif args.across:
        comp = compare_across(args.baseline, args.across, **options)
    else:
        raise InvalidInputError(
            "give a CANDIDATE to compare with BASELINE, or --across SETTING (threads, dtype, "
            "...) to compare BASELINE's settings with each other"
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
        write_csv(cases, sys.stdout)  # streamed, every string inert
    elif args.format == "json":  # json.dumps escapes every control character (ensure_ascii)
        print(json_document(comp, cases, failures))
    else:
        hide = (args.changed and not args.include_noisy) or args.valid_only
        print(text_report(comp, cases, markdown=args.format == "markdown", noisy_listed=not hide))
    if len(failures):
        _report_failures(failures)
        return 1
    return 0


def _select(cases: pd.DataFrame, shown: list[str], args: argparse.Namespace) -> pd.DataFrame:
    """The rows to print: the shown metrics, optionally only changes, sorted within each pair."""
    df = cases[cases["column"].isin(shown)].copy()
    if args.changed:
        df = df[df["verdict"] != "same"]
    if (args.changed and not args.include_noisy) or args.valid_only:
        df = df[~df["verdict"].isin(("noisy", "invalid"))]
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


def _report_failures(failures: pd.DataFrame) -> None:
    lines = [f"cnnbench compare: {len(failures)} regression(s) over the --fail-on thresholds:"]
    for r in failures.itertuples():
        ci = "" if ci_text(r.ci_low, r.ci_high) == "-" else f", CI {ci_text(r.ci_low, r.ci_high)}"
        lines.append(
            terminal(
                f"  FAIL {r.column} {case_label(r)}: {r.reason} "
                f"(ratio {ratio_text(r.ratio)}{ci}; {r.candidate} vs {r.baseline})"
            )
        )
    print("\n".join(lines), file=sys.stderr)
