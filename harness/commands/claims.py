"""`cnnbench claims`: placeholder until its module lands (see harness/cli.py for the contract)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("claims", help="(not yet available)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("cnnbench claims is not built yet")
