"""`cnnbench profile`: placeholder until its issue lands (see harness/cli.py for the contract)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("profile", help="(not yet available)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("cnnbench profile is not built yet")
