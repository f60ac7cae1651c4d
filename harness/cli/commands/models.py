"""`cnnbench models [PATTERN]`: the registered architectures, their inputs and sizes."""

from __future__ import annotations

import argparse
import json
import re
import sys

from tabulate import tabulate

from harness.core import units
from harness.core.errors import UnknownModelError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "models",
        help="list the registered models",
        description="List the registered models: name, default input, smallest input, "
        "parameters and family.",
    )
    p.add_argument("pattern", nargs="?", default="*", help='shell-style pattern, e.g. "resnet*"')
    p.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output (default table)"
    )
    p.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="PATH",
        help="also list the models a suite file (or a directory's test files) registers "
        "(repeatable)",
    )
    p.set_defaults(func=run)
    return p


def natural_key(name: str) -> tuple[str | int, ...]:
    """Sort key that orders numbers by value: resnet18 < resnet34 < resnet101."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def model_rows(pattern: str = "*") -> list[dict]:
    """One dict per registered model matching ``pattern``, grouped by family and in natural
    order within it (resnet18 before resnet101): name, input_shape, min_input_shape (the
    registry's, else found by shape propagation), params, family."""
    from harness.models.resolve import get_entry, list_models
    from harness.profile.shapes import resolve_model, smallest_input

    names = sorted(list_models(pattern), key=lambda n: (get_entry(n).family, natural_key(n)))
    if not names:
        raise UnknownModelError(
            f"no registered model matches {pattern!r}; run `cnnbench models` for the list"
        )
    rows = []
    for name in names:
        entry = get_entry(name)
        module = resolve_model(name, None).module
        smallest = entry.min_input_shape or smallest_input(name)
        rows.append(
            {
                "name": name,
                "input_shape": units.shape(entry.input_shape),
                "min_input_shape": units.shape(smallest) if smallest else None,
                "params": sum({id(p): p.numel() for p in module.parameters()}.values()),
                "family": entry.family,
                "description": entry.description,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from harness.models.suites import load_suites

    load_suites(args.suite)
    rows = model_rows(args.pattern)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        import pandas as pd

        from harness.cli.csv_out import write_csv

        write_csv(pd.DataFrame(rows), sys.stdout)
    else:
        table = [
            [r["name"], r["input_shape"], r["min_input_shape"] or "-", units.count(r["params"]),
             r["family"]]
            for r in rows
        ]  # fmt: skip
        print(
            tabulate(
                table,
                headers=["model", "input", "min input", "params", "family"],
                colalign=("left", "right", "right", "right", "left"),
                disable_numparse=True,
            )
        )
    return 0
