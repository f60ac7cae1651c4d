"""`cnnbench claims`: the source documents' claims about the classic CNNs, each with its verdict
(confirmed, refuted, partly, needs measurement) and the numbers that decide it.

Static claims are decided by the profiler on the meta device (a few seconds, no compute);
``--results`` adds the measured claims from result files. Exit 0 whatever the verdicts; 2 on
bad input (a missing or foreign result file, an --only pattern matching no claim).
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from harness import units

if TYPE_CHECKING:
    from harness.claims import ClaimResult

FORMATS = ("table", "markdown", "json")
STATIC_NOTE = "Static: the harness's profiler on the meta device (float32, batch 1, no compute)"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "claims",
        help="check the source documents' claims about the classic CNNs, with the numbers",
        description="Check what the papers and course notes claim about LeNet, AlexNet, VGG, "
        "GoogLeNet, ResNet and the Inception-ResNets. Static claims are decided by the "
        "profiler on the meta device; measured claims (time, memory, energy) need result "
        "files (`pytest suites/ --benchmark-only` writes them under results/).",
    )
    p.add_argument(
        "--results",
        nargs="+",
        metavar="PATH",
        help="result files or directories for the measured claims (e.g. results/)",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output (default table)")
    p.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="only claims whose id matches this shell pattern, e.g. 'resnet*' or "
        "'vgg.*,cs231n.*' (repeatable)",
    )
    p.set_defaults(func=run)
    return p


def format_value(key: str, value: Any) -> str:
    """One measured number for people; the key's suffix says its unit (see ClaimResult)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    k = key.lower()
    if k.endswith("_share"):
        return units.percent(value, 2)
    if k.endswith("_change"):
        return f"{100 * value:+.1f}%"
    if k.endswith(("_ratio", "_ci_low", "_ci_high")):
        return f"{value:.3f}x"
    if k.endswith("_rho"):
        return f"{value:.3f}"
    if k.endswith("_gmacs_per_s"):
        return f"{value:.1f} GMAC/s"
    if k.endswith("_gmacs_per_j"):
        return f"{value:.2f} GMAC/J"
    if k.endswith("_bytes"):
        return units.nbytes(value)
    if k.endswith("_s"):
        return units.seconds(value)
    if k == "macs" or k.endswith("_macs"):
        return units.macs(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 1_000_000 else f"{units.count(value)} ({value:,})"
    return f"{value:.4g}"


def number_lines(result: ClaimResult) -> list[str]:
    return [f"{k}: {format_value(k, v)}" for k, v in result.measured.items()]


def summary(results: Sequence[ClaimResult], paths: Sequence[str] | None) -> str:
    counts = Counter(r.verdict for r in results)
    from harness.claims import VERDICTS

    parts = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    measured = ", ".join(paths) if paths else "no result files given (--results PATH)"
    return f"{len(results)} results: {parts}.\n{STATIC_NOTE}.\nMeasured: {measured}."


def _wrap(text: str, width: int) -> str:
    return "\n".join(
        textwrap.fill(line, width, break_on_hyphens=False) or line for line in text.split("\n")
    )


def table(results: Sequence[ClaimResult], width: int | None = None) -> str:
    """A grid table: claim (id and text), verdict, numbers, explanation (with the rows used)."""
    total = width or shutil.get_terminal_size((160, 40)).columns
    room = max(total, 110) - 10 - 13  # the verdict column and the grid's borders
    w_claim, w_numbers = int(room * 0.26), int(room * 0.30)
    w_text = room - w_claim - w_numbers
    rows = []
    for r in results:
        explanation = r.explanation + (f"\nrows: {r.rows}" if r.rows else "")
        rows.append(
            [
                _wrap(f"{r.id}\n{r.claim}", w_claim),
                r.verdict.replace(" ", "\n"),
                "\n".join(textwrap.fill(s, w_numbers, subsequent_indent="  ")
                          for s in number_lines(r)) or "-",
                _wrap(explanation, w_text),
            ]
        )  # fmt: skip
    headers = ["claim", "verdict", "numbers", "explanation"]
    return tabulate(rows, headers=headers, tablefmt="grid", disable_numparse=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def markdown(results: Sequence[ClaimResult]) -> str:
    """A GitHub table: id, claim, verdict, numbers, explanation (and the rows used)."""
    rows = [
        [
            f"`{r.id}`",
            _cell(r.claim),
            f"**{r.verdict}**",
            _cell("\n".join(number_lines(r)) or "-"),
            _cell(r.explanation + (f"\n(rows: {r.rows})" if r.rows else "")),
        ]
        for r in results
    ]
    headers = ["id", "claim", "verdict", "numbers", "explanation"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def to_json(results: Sequence[ClaimResult], paths: Sequence[str] | None) -> str:
    from harness.claims import VERDICTS

    counts = Counter(r.verdict for r in results)
    return json.dumps(
        {
            "claims": [r.to_dict() for r in results],
            "summary": {v: counts[v] for v in VERDICTS},
            "static": STATIC_NOTE,
            "results": list(paths) if paths else None,
        },
        indent=2,
    )


def run(args: argparse.Namespace) -> int:
    from harness.claims import check_claims  # torch is imported only when the command runs

    frame = None
    if args.results:
        from harness.results import load_results

        frame = load_results(args.results)
    results = check_claims(frame, only=args.only)
    if args.format == "json":
        print(to_json(results, args.results))
    elif args.format == "markdown":
        print(markdown(results))
        print()
        print(summary(results, args.results))
    else:
        print(table(results))
        print(summary(results, args.results))
    return 0
