"""`cnnbench` (and `python -m harness`): one sub-command per module in harness.commands.

Every sub-command module exposes ``add_parser(subparsers)``, which registers its parser and
sets ``func`` (``args -> exit code``). A ``HarnessError`` prints one clear line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from harness.errors import HarnessError

COMMANDS = ("models", "profile", "claims", "compare", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnbench",
        description="Profile, compare and report CNN benchmarks. "
        "Measurements run through `pytest suites/ --benchmark-only`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"harness.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"cnnbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cnnbench models | head`
        return 0
