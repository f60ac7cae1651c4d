"""`cnnbench claims`: the source documents' claims about the classic CNNs, each with its verdict
(confirmed, refuted, partly, undecided (noisy), insufficient data), the numbers that decide it
and the rule.

By default one line per verdict, refuted and undecided first, numeric evidence apart from the
structural checks; ``--details`` adds the explanation, quantities, rules and source;
``--format json`` is for tools. ``--results`` adds the measured claims from result files (one
run per configuration; ``--all-runs`` pools them). Exit 0 whatever the verdicts; 2 on bad
input. Strings from result files pass through harness.core.textsafe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

from harness.core.errors import InvalidInputError, ResultFileError
from harness.core.textsafe import markdown_cell, terminal

if TYPE_CHECKING:
    import pandas as pd

    from harness.claims import ClaimResult

FORMATS = ("table", "markdown", "json")
VERDICT_NAMES = ("confirmed", "refuted", "partly", "undecided", "insufficient")
SECTIONS = (
    ("evidence", "Numeric evidence (static: the profiler on the meta device, float32, batch 1; "
                 "measured: result rows, valid rows only)"),
    ("structural", "Structural checks (the zoo's models built as the documents describe them: "
                   "they confirm the implementation, not the documents)"),
)  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "claims",
        help="check the source documents' claims about the classic CNNs, with the numbers",
        description="Check what the papers and course notes claim about LeNet, AlexNet, VGG, "
        "GoogLeNet, ResNet and the Inception-ResNets. Static and structural claims are decided "
        "by the profiler on the meta device; measured claims (time, memory, energy) need result "
        "files (`pytest suites/ --benchmark-only` writes them under results/).",
    )
    p.add_argument(
        "--results",
        nargs="+",
        metavar="PATH",
        help="result files or directories for the measured claims (e.g. results/)",
    )
    p.add_argument(
        "--all-runs",
        action="store_true",
        help="pool every run of a configuration (default: the latest complete one)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="only claims whose id matches this shell pattern, e.g. 'resnet*' or "
        "'vgg.*,cs231n.*' (repeatable)",
    )
    p.add_argument(
        "--verdict",
        action="append",
        metavar="VERDICT",
        help=f"only these verdicts: {', '.join(VERDICT_NAMES)} (repeatable or comma-separated)",
    )
    p.add_argument(
        "--details",
        action="store_true",
        help="the full explanation, quantities, rule and source of each verdict",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output (default table)")
    p.set_defaults(func=run)
    return p  # fmt: skip


def _verdicts(items: Sequence[str] | None) -> set[str] | None:
    from harness.claims import VERDICTS

    if not items:
        return None
    wanted = [w.strip().lower() for item in items for w in item.split(",") if w.strip()]
    bad = [w for w in wanted if not any(v.startswith(w) for v in VERDICTS)]
    if bad:
        raise InvalidInputError(
            f"--verdict {', '.join(bad)}: use one of {', '.join(VERDICT_NAMES)}"
        )
    return {v for v in VERDICTS for w in wanted if v.startswith(w)}


def _sorted(results: Sequence[ClaimResult]) -> list[ClaimResult]:
    from harness.claims import VERDICTS

    return sorted(results, key=lambda r: VERDICTS.index(r.verdict))  # stable: ORDER within


def _line(r: ClaimResult, width: int) -> str:
    """verdict, id, the configuration (measured), and the outcome that decided, cut at a word
    to ``width`` (never inside a number); --details has the rest."""
    first = r.outcomes[0]
    more = f" (+{len(r.outcomes) - 1} more)" if len(r.outcomes) > 1 else ""
    line = f"{r.verdict:<18} {r.id}{f' [{r.rows}]' if r.rows else ''}: {first.status}: "
    text = terminal(first.text + more)  # escaped before shortening joins lines
    if len(line) + len(text) > width:
        text = textwrap.shorten(text, max(width - len(line), 70), placeholder=" ...")
    return line + text


def _details(r: ClaimResult) -> list[str]:
    c = r.claim
    lines = [
        f"{r.verdict:<18} {r.id} ({c.kind})",
        f"  source: {c.source}",
        f"  quote: {c.quote}",
        f"  statement: {c.statement}",
    ]
    if r.rows:
        lines.append(f"  rows: {r.rows}")
    lines += [f"  rule: {rule}" for rule in r.rules]
    lines += [f"  {o.status}: {o.text}" for o in r.outcomes]
    lines.append("  quantities: " + "; ".join(f"{k} {v.text()}" for k, v in r.quantities.items()))
    return lines  # fmt: skip


def _summary(results: Sequence[ClaimResult], paths: Sequence[str] | None) -> str:
    from harness.claims import COMBINATION_RULE, VERDICTS

    counts = Counter(r.verdict for r in results)
    parts = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    given = ", ".join(paths) if paths else "none (--results PATH)"
    return f"{len(results)} results: {parts or 'none'}. Rule: {COMBINATION_RULE}. Results: {given}."


def table(results: Sequence[ClaimResult], details: bool = False, width: int = 0) -> str:
    width = width or max(shutil.get_terminal_size((160, 40)).columns, 100)
    out = []
    for kind, title in SECTIONS:
        part = [r for r in _sorted(results) if (r.kind == "structural") == (kind == "structural")]
        if part:
            out += ["", title + ":"] if out else [title + ":"]
            for r in part:
                out += _details(r) if details else [_line(r, width)]
    return "\n".join(terminal(line) for line in out)


def markdown(results: Sequence[ClaimResult], details: bool = False) -> str:
    out = []
    for kind, title in SECTIONS:
        part = [r for r in _sorted(results) if (r.kind == "structural") == (kind == "structural")]
        if not part:
            continue
        rows = []
        for r in part:
            row = [f"`{r.id}`", f"**{r.verdict}**", r.rows or "-", r.explanation]
            if details:
                row += ["<br>".join(r.rules), f"{r.claim.source}: {r.claim.quote}"]
            rows.append([markdown_cell(cell) for cell in row])
        headers = ["id", "verdict", "rows", "explanation"] + (["rule", "source"] * details)
        out += [f"**{title}**", "", tabulate(rows, headers, tablefmt="github",
                                             disable_numparse=True), ""]  # fmt: skip
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from harness.claims import as_data, check_claims  # torch only when a static claim runs

    wanted = _verdicts(args.verdict)  # a bad --verdict fails before anything is read
    from harness.claims.rows import Measured

    cases, layers = None, None
    if args.results:
        from harness.results import load_results

        cases = load_results(args.results)

        def layers() -> pd.DataFrame | None:  # read only if a claim asks for layer rows
            try:
                return load_results(args.results, table="layers")
            except ResultFileError:  # no layers files: the layer-time claim says so
                return None

    measured = Measured(cases, layers, args.all_runs)
    results = check_claims(only=args.only, measured=measured)
    if wanted is not None:
        results = [r for r in results if r.verdict in wanted]
    if args.format == "json":
        data = as_data(results) | {"results": args.results, "runs": measured.notes,
                                   "all_runs": args.all_runs}  # fmt: skip
        print(json.dumps(data, indent=2))
        return 0
    if args.format == "markdown":
        print(markdown(results, args.details))
    else:
        print(table(results, args.details))
    for note in measured.notes:
        print(terminal(f"runs: {note}"))
    print(terminal(_summary(results, args.results)))
    return 0
