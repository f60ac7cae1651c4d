"""`cnnbench doctor [--device cuda:0] [--format table|json]`: what this machine offers for
measuring, and a self-test of the harness's measurement on one device (about two minutes).

Exit status: 0 when no check failed (PASS, WARN and UNAVAILABLE included), 1 when one did,
2 for bad input (an unknown device, a CUDA index that does not exist).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tabulate import tabulate

from harness.core import units
from harness.core.textsafe import terminal


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "doctor",
        help="check this machine and the harness's measurement on it",
        description="Print what this machine offers (torch, CUDA, cuDNN, driver, GPUs, NVML "
        "power readings, RAPL, CPU governor and SMT) and self-test the harness on one device: "
        "its median against an independent timer, the energy counter against the power trace, "
        "the peak memory against the analytic activation bytes, a compiled case, and recovery "
        "from out of memory. Each check: PASS, WARN, FAIL or UNAVAILABLE, with its numbers and "
        "rule. Exit status 1 when a check fails.",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="device to self-test: auto (cuda:0 where CUDA works, else cpu), cpu, cuda:N",
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="output")
    p.set_defaults(func=run)
    return p


def _number(key: str, value: Any) -> str:
    """One number for people, its unit read from the key's suffix."""
    if value is None or isinstance(value, (str, bool)):
        return terminal(str(value))
    if key.endswith("_bytes"):
        return units.nbytes(value)
    if key.endswith("_s"):
        return units.seconds(value)
    if key.endswith("_j"):
        return units.si(value, "J")
    if key.endswith("_w") or key.endswith("_w_mean"):
        return units.si(value, "W")
    if key.startswith("ratio"):
        return units.ratio(value, 4)
    if isinstance(value, int):
        return units.integer(value)
    return units.si(value)


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return rows
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            rows = []
            for i, v in enumerate(value):
                rows += _flatten(f"{prefix}[{i}]", v)
            return rows
        return [(prefix, terminal(", ".join(map(str, value))) or "-")]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [(prefix, _number(prefix, value))]
    return [(prefix, terminal(str(value)) if value is not None else "-")]


def render_table(report: dict[str, Any]) -> str:
    lines = [f"cnnbench doctor: device {report['device']} ({report['seconds']} s)", ""]
    lines.append(tabulate(_flatten("", report["machine"]), headers=["machine", "value"]))
    lines.append("")
    rows = []
    for c in report["checks"]:
        numbers = "; ".join(f"{k} {_number(k, v)}" for k, v in c["numbers"].items())
        rows.append([c["name"], c["status"], terminal(c["reason"]), numbers])
    lines.append(
        tabulate(
            rows, headers=["check", "status", "why", "numbers"], maxcolwidths=[None, None, 50, 60]
        )
    )
    lines.append("")
    lines.append("rules:")
    for c in report["checks"]:
        if c["rule"]:
            lines.append(f"  {c['name']}: {c['rule']}")
    summary = ", ".join(f"{n} {s}" for s, n in report["summary"].items() if n)
    lines.append("")
    lines.append(f"{summary}; exit status {report['exit_code']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from harness.doctor import run_doctor

    def progress(step: str) -> None:
        if args.format == "table":
            print(f"doctor: {step}...", file=sys.stderr, flush=True)

    report = run_doctor(args.device, progress=progress).to_dict()
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_table(report))
    return int(report["exit_code"])
