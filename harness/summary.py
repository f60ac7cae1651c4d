"""The compact end-of-run table: one line per case, humanised units, then each failure in full."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from tabulate import tabulate

from harness import units

COLUMNS = ("model", "input", "batch", "dtype", "mode", "median", "throughput", "peak mem", "status")


def _rate(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.1f}/s"


def _mode(row: Mapping[str, Any]) -> str:
    """``inference``, ``training``, with the memory format when not contiguous and
    ``compiled`` when run through torch.compile: ``inference channels_last compiled``."""
    parts = [str(row.get("mode") or "?")]
    if row.get("memory_format") not in (None, "contiguous"):
        parts.append(str(row["memory_format"]))
    if row.get("compiled"):
        parts.append("compiled")
    return " ".join(parts)


def summary_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Aligned table of the cases of a run (missing values shown as '-'), followed by one
    line per case that did not end ``ok`` with its whole reason (a table cell would cut it)."""
    lines, failures = [], []
    for r in rows:
        status = r.get("status") or "?"
        if status != "ok" and r.get("error"):
            failures.append(
                f"  {r.get('model')} {r.get('input_shape')} b{r.get('batch_size')} "
                f"{r.get('dtype')} {_mode(r)}: {status}: {r['error']}"
            )
        lines.append(
            (
                r.get("model"),
                r.get("input_shape"),
                r.get("batch_size"),
                r.get("dtype"),
                _mode(r),
                units.seconds(r.get("latency_s_median")),
                _rate(r.get("throughput_per_s")),
                units.nbytes(r.get("peak_memory_bytes")),
                status,
            )
        )
    text = tabulate(lines, headers=COLUMNS, tablefmt="simple", disable_numparse=True)
    if failures:
        text += f"\n\n{len(failures)} case(s) not ok, with the reason:\n" + "\n".join(failures)
    return text
