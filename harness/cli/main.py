"""`cnnbench` (and `python -m harness`): one sub-command per module in harness.cli.commands.

Every sub-command module exposes ``add_parser(subparsers)``, which registers its parser and
sets ``func`` (``args -> exit code``). What a user can get wrong is one line on stderr and exit
2: a ``HarnessError`` and a bad option alike. Ctrl-C is one line and exit 130. The current
directory is not on the import path: a file there named like an optional dependency of pandas
or tabulate (``pytz.py``) would run on every command. It is searched only to resolve a model
named ``mymodule:factory`` (harness.models.resolve), and only then.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from harness.core.errors import HarnessError
from harness.core.textsafe import terminal

COMMANDS = ("models", "profile", "claims", "compare", "report", "doctor", "submit", "query")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {terminal(message)} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or of ``only`` (its module alone is imported: a
    command costs the imports it needs, not those of the other five)."""
    parser = OneLineParser(
        prog="cnnbench",
        description="Profile, compare and report CNN benchmarks. "
        "Measurements run through `pytest suites/ --benchmark-only`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (only,) if only else COMMANDS:
        module = importlib.import_module(f"harness.cli.commands.{name}")
        module.add_parser(sub)
    return parser


def _warnings_as_lines(command: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints each warning once, as one inert line (a result
    file passed over: harness.results.loader.ResultFileWarning)."""
    seen: set[str] = set()

    def show(message: Warning | str, *_: object, **__: object) -> None:
        text = terminal(message)
        if text not in seen:
            seen.add(text)
            print(f"{command}: warning: {text}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = f"cnnbench {argv[0]}" if argv and argv[0] in COMMANDS else "cnnbench"
    try:
        parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
        args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.showwarning = _warnings_as_lines(command)
            return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"{command}: error: {terminal(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cnnbench models | head`
        return 0
