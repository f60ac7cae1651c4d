"""`cnnbench models [PATTERN]`: the registered architectures, their inputs and sizes.

The list is static (the zoo's code, the installed torch): computed once, then printed from
harness.cli.static_cache without importing torch (``--no-cache`` recomputes)."""

from __future__ import annotations

import argparse
import io
import json
import re

from tabulate import tabulate

from harness.cli import static_cache
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
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute the list (it is kept after the first run, keyed by the zoo's code and "
        "the torch version)",
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


def render(rows: list[dict], fmt: str) -> str:
    """The rows as the command prints them (a final newline included)."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        import pandas as pd

        from harness.cli.csv_out import write_csv

        out = io.StringIO()
        write_csv(pd.DataFrame(rows), out)
        return out.getvalue()
    table = [
        [r["name"], r["input_shape"], r["min_input_shape"] or "-", units.count(r["params"]),
         r["family"]]
        for r in rows
    ]  # fmt: skip
    return (
        tabulate(
            table,
            headers=["model", "input", "min input", "params", "family"],
            colalign=("left", "right", "right", "right", "left"),
            disable_numparse=True,
        )
        + "\n"
    )


def run(args: argparse.Namespace) -> int:
    key = [args.pattern, args.format]
    cacheable = not args.suite and static_cache.usable()
    text = None if args.no_cache or not cacheable else static_cache.get("models", key)
    if text is None:
        from harness.models.suites import load_suites

        load_suites(args.suite)
        text = render(model_rows(args.pattern), args.format)
        if cacheable:
            static_cache.put("models", key, text)
    print(text, end="")
    return 0
