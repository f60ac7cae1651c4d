"""The compact end-of-run table: one line per case, humanised units, then what needs a look.

Columns: the case, its median with the half-width of the median's 95% interval, the IQR, the
throughput, peak memory, the status and the validity verdict (the test too, when several tests
contributed cases). Below the table: each case that did not end ``ok`` with its whole reason,
then each ``noisy`` or ``invalid`` one with the signal that flagged it (a table cell would cut
either).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tabulate import tabulate

from harness.core import textsafe, units
from harness.core.missing import is_missing

COLUMNS = (
    "model", "input", "batch", "dtype", "mode", "median", "IQR", "throughput", "peak mem",
    "status", "validity",
)  # fmt: skip


def _mode(row: Mapping[str, Any]) -> str:
    """``inference``, ``training``, with the memory format when not contiguous, the thread
    count when the case asked for one and ``compiled`` when run through torch.compile."""
    parts = [str(row.get("mode") or "?")]
    if row.get("memory_format") not in (None, "contiguous"):
        parts.append(str(row["memory_format"]))
    if not is_missing(row.get("threads")):
        parts.append(f"{int(row['threads'])} thr")
    if row.get("compiled"):
        parts.append("compiled")
    return " ".join(parts)


def spread_text(median: Any, lo: Any, hi: Any, rounds: Any) -> str:
    """``±0.4%``: the half-width of the value's 95% interval; ``±? (1 round)`` where the row
    has too few rounds for one (never ``±0.0%``)."""
    if is_missing(lo) or is_missing(hi) or not median:
        if is_missing(rounds):
            return ""
        n = int(rounds)
        return f" ±? ({n} round{'s' if n != 1 else ''})"
    return f" ±{units.percent((hi - lo) / 2 / median)}"


def _median(row: Mapping[str, Any]) -> str:
    median = row.get("latency_s_median")
    if is_missing(median):
        return "-"
    lo, hi = row.get("latency_s_median_ci_low"), row.get("latency_s_median_ci_high")
    return units.seconds(median) + spread_text(median, lo, hi, row.get("rounds"))


def _iqr(row: Mapping[str, Any]) -> str:
    iqr, median = row.get("latency_s_iqr"), row.get("latency_s_median")
    if is_missing(iqr) or is_missing(median) or not median:
        return "-"
    return units.percent(iqr / median, 0)


def _case(row: Mapping[str, Any]) -> str:
    return textsafe.terminal(
        f"{row.get('model')} {row.get('input_shape')} b{row.get('batch_size')} "
        f"{row.get('dtype')} {_mode(row)}"
    )


def headline(rows: Iterable[Mapping[str, Any]]) -> str:
    """``31 case(s): 20 valid, 9 noisy, 2 not ok (oom 1, skipped 1)``."""
    rows = list(rows)
    counts: dict[str, int] = {}
    for r in rows:
        key = r.get("status") or "?"
        if key == "ok":
            validity = r.get("validity")
            key = "not judged" if is_missing(validity) else str(validity)
        counts[key] = counts.get(key, 0) + 1
    kinds = ("valid", "noisy", "invalid", "not judged")
    parts = [f"{counts.pop(k)} {k}" for k in kinds if k in counts]
    not_ok = sum(counts.values())
    if not_ok:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        parts.append(f"{not_ok} not ok ({detail})")
    return f"{len(rows)} case(s): " + ", ".join(parts)


def summary_table(rows: Iterable[Mapping[str, Any]], *, show_test: bool = False) -> str:
    """Aligned table of the cases of a run (missing values shown as '-'), followed by one line
    per case that did not end ``ok`` and one per case that is not ``valid``, with the reason."""
    rows = list(rows)
    lines, failures, noisy = [], [], []
    headers = (*COLUMNS, "test") if show_test else COLUMNS
    for r in rows:
        status = r.get("status") or "?"
        validity = r.get("validity")
        if status != "ok" and r.get("error"):
            failures.append(f"  {_case(r)}: {status}: {textsafe.terminal(r['error'])}")
        if not is_missing(validity) and validity != "valid":
            why = r.get("validity_reason") or "no reason recorded"
            noisy.append(f"  {_case(r)}: {validity}: {textsafe.terminal(why)}")
        line = [
            textsafe.terminal(r.get("model")),
            r.get("input_shape"),
            r.get("batch_size"),
            r.get("dtype"),
            _mode(r),
            _median(r),
            _iqr(r),
            units.rate(r.get("throughput_per_s")),
            units.nbytes(r.get("peak_memory_bytes")),
            status,
            "-" if is_missing(validity) else validity,
        ]
        if show_test:
            line.append(textsafe.terminal(str(r.get("test_name") or "-").split("::")[-1]))
        lines.append(line)
    text = tabulate(lines, headers=headers, tablefmt="simple", disable_numparse=True)
    text += "\n\n" + headline(rows)
    if failures:
        text += f"\n\n{len(failures)} case(s) not ok, with the reason:\n" + "\n".join(failures)
    if noisy:
        text += (
            f"\n\n{len(noisy)} case(s) measured but not valid (compare and claims leave them "
            "out), with the signal:\n" + "\n".join(noisy)
        )
    return text
