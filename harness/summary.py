"""The compact end-of-run table: one line per case, humanised units."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from tabulate import tabulate

COLUMNS = ("model", "input", "batch", "dtype", "mode", "median", "throughput", "peak mem", "status")


def _seconds(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _bytes(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return "-"


def _rate(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.1f}/s"


def summary_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Aligned table of the cases of a run (missing values shown as '-')."""
    lines = []
    for r in rows:
        status = r.get("status") or "?"
        if status != "ok" and r.get("error"):
            status = f"{status}: {str(r['error'])[:60]}"
        mode = r.get("mode", "")
        if r.get("memory_format") == "channels_last":
            mode += "/cl"
        if r.get("compiled"):
            mode += "/compiled"
        lines.append(
            (
                r.get("model"),
                r.get("input_shape"),
                r.get("batch_size"),
                r.get("dtype"),
                mode,
                _seconds(r.get("latency_s_median")),
                _rate(r.get("throughput_per_s")),
                _bytes(r.get("peak_memory_bytes")),
                status,
            )
        )
    return tabulate(lines, headers=COLUMNS, tablefmt="simple", disable_numparse=True)
