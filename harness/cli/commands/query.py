"""`cnnbench query "SQL" --results DIR [--format table|csv|json]`: DuckDB over result files.

The views are named after the tables: ``cases``, ``layers``, ``power`` (harness.core.schema's
columns, plus ``sweep``, ``host`` and ``shard`` from a results tree's directories). Strings from
result files go through harness.core.textsafe in the table; csv and json escape them as their
formats do. Exit 2 for a bad query or no result files, one line on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from typing import Any

from harness.core.textsafe import terminal

FORMATS = ("table", "csv", "json")
EXAMPLE = (
    "SELECT device_name, model, min(latency_s_median) AS best_s FROM cases "
    "WHERE batch_size = 1 AND status = 'ok' GROUP BY ALL ORDER BY best_s"
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "query",
        help="SQL (DuckDB) over result files: views cases, layers, power",
        description="Run one SQL statement (DuckDB) over the result files of a results tree or "
        "directory, in place. Views: cases (one row per case), layers (one per layer of a "
        "profiled case), power (the power trace of each case); files in a results tree add "
        "the columns sweep, host and shard. Columns: harness/core/schema.py. Example: "
        f'cnnbench query "{EXAMPLE}" --results results/',
    )
    p.add_argument("sql", metavar="SQL", help="one SQL statement")
    p.add_argument(
        "--results",
        action="append",
        metavar="PATH",
        help="a results tree, directory or file (repeatable; default: results)",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output (default table)")
    p.set_defaults(func=run)
    return p


def _cell(value: Any) -> Any:
    """A value for csv/json: lists as lists, floats as they are (NaN as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} values]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return terminal(str(value))


def run(args: argparse.Namespace) -> int:
    from harness.cluster.query import run_query

    columns, rows = run_query(args.results or ["results"], args.sql)
    if args.format == "json":
        records = [dict(zip(columns, map(_cell, r), strict=True)) for r in rows]
        print(json.dumps(records, indent=1, default=str))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            cells = [_cell(v) for v in r]
            writer.writerow(
                [json.dumps(c) if isinstance(c, list) else ("" if c is None else c) for c in cells]
            )
    else:
        from tabulate import tabulate

        print(
            tabulate(
                [[_shown(v) for v in r] for r in rows],
                headers=[terminal(c) for c in columns],
                disable_numparse=True,
            )
        )
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0
