"""`cnnbench report PATHS ... [-o reports/NAME.html]`: one self-contained HTML report.

Reads result files (parquet written by the runner, or directories of them) and nothing else;
prints the path of the page written.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import InvalidInputError


def default_output(now: datetime | None = None) -> Path:
    """``reports/report-<UTC timestamp>.html``."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"report-{stamp}.html"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="render result files as one self-contained HTML report",
        description="Render result files (or directories of them) as one HTML page that opens "
        "offline: figures of latency, throughput, memory, energy, layers, roofline and "
        "cross-hardware speedups, and a sortable table of every case.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="result parquet files or directories holding them"
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="HTML file to write, or a directory to write report-<UTC timestamp>.html into "
        "(default: reports/report-<UTC timestamp>.html)",
    )
    p.add_argument("--title", default=None, help="title of the page (default: cnnbench report)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from harness.report import write_report

    out = args.output or default_output()
    if out.is_dir():  # -o reports/: a fresh name inside it
        out = out / default_output().name
    try:
        path = write_report(args.paths, out, title=args.title)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write the report to {out}: {exc.strerror or exc}; pass -o with a writable "
            "file path"
        ) from None
    print(path)
    return 0
