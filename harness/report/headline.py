"""The headline: what an engineer reads first, per configuration.

For each configuration (host, device, threads, torch): how many cases are valid, noisy, invalid
or failed; the fastest model (highest measured throughput at its best batch size, inference and
training apart); the most efficient (most samples per joule, where energy was measured); and
the throughput-vs-MACs Pareto front (the models no other model beats on both cost and speed).
The winners are taken from valid rows (and unassessed rows of older files); a configuration
with no such row falls back to its noisy rows and says so, and where a noisy row is faster than
the valid winner, the fastest such row is named beside it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.core import units
from harness.report.cost import best_per_model, pareto_front
from harness.report.data import (
    FAILED,
    POWER_REASONS,
    missing_reason,
    number,
    prepared,
    records,
    validity_counts,
)
from harness.report.page import Html
from harness.report.text import esc

TRUSTED = ("valid", "unassessed")
MAX_FRONT = 8


def counts_text(counts: dict[str, int], failed_by: dict[str, int] | None = None) -> str:
    """``12 valid, 3 noisy, 1 failed (oom 1)``: the non-zero counts, valid and noisy always."""
    parts = [f"{counts['valid']} valid", f"{counts['noisy']} noisy"]
    if counts.get("invalid"):
        parts.append(f"{counts['invalid']} invalid")
    if counts.get("unassessed"):
        parts.append(f"{counts['unassessed']} unassessed")
    failed = f"{counts['failed']} failed"
    if failed_by and any(failed_by.values()):
        failed += " (" + ", ".join(f"{k} {v}" for k, v in failed_by.items() if v) + ")"
    parts.append(failed)
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']} skipped")
    return ", ".join(parts)


def _failed_by(df: pd.DataFrame) -> dict[str, int]:
    return {s: int((df["status"] == s).sum()) for s in FAILED}


def _trusted(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    ok = df[df["quality"].isin(TRUSTED)]
    if not ok.empty:
        return ok, ""
    noisy = df[df["quality"] == "noisy"]
    return noisy, " (from noisy rows: no valid one)" if not noisy.empty else ""


def _where(r: dict[str, Any]) -> str:
    """``batch 8, float16 · channels_last``: the batch and the settings (the mode is said)."""
    parts = [p for p in str(r.get("variant") or "").split(" · ") if p and p != r.get("mode")]
    return f"batch {units.integer(r['batch_size'])}" + (f", {' · '.join(parts)}" if parts else "")


def _fastest(df: pd.DataFrame, mode: str) -> str | None:
    """The fastest valid model, and the fastest noisy one where it beats it (on a noisy
    machine the winner among valid rows can be a slow model whose row happened to be valid)."""
    pool = df[(df["mode"] == mode) & df["throughput_per_s"].notna()]
    rows, caveat = _trusted(pool)
    if rows.empty:
        return None
    r = rows.loc[rows["throughput_per_s"].idxmax()].to_dict()
    text = f"{mode}: {r['model']}, {units.rate(r['throughput_per_s'])} ({_where(r)}){caveat}"
    faster = pool[(pool["quality"] == "noisy") & (pool["throughput_per_s"] > r["throughput_per_s"])]
    if not caveat and not faster.empty:
        n = faster.loc[faster["throughput_per_s"].idxmax()].to_dict()
        text += (
            f"; faster in noisy rows only: {n['model']}, {units.rate(n['throughput_per_s'])} "
            f"({_where(n)})"
        )
    return text


def _efficient(df: pd.DataFrame) -> str:
    per_j = [
        number(s) if number(s) is not None else (1 / number(e) if number(e) else None)
        for s, e in zip(df["samples_per_j"], df["energy_j_per_sample"], strict=True)
    ]
    work = df.assign(per_j=per_j)
    rows, caveat = _trusted(work[work["per_j"].notna()])
    if rows.empty:
        reasons = [missing_reason(r, "energy", POWER_REASONS) for r in records(df)]
        return reasons[0] if reasons else "energy not measured"
    r = rows.loc[rows["per_j"].idxmax()].to_dict()
    return f"{r['model']}, {units.si(r['per_j'])} samples/J ({_where(r)}){caveat}"


def _front(df: pd.DataFrame) -> str:
    """The models no other beats on both MACs per sample and throughput (inference, each model
    at its best batch size and setting), cheapest first."""
    rows, caveat = _trusted(df[df["mode"] == "inference"])
    best = best_per_model(rows.assign(_all="all"), "_all")
    if best.empty:
        return "no inference case with a throughput and a MAC count"
    front = [best.loc[i] for i in pareto_front(best)]
    names = [
        f"{r['model']} ({units.si(r['macs_per_sample'], 'MACs')}, "
        f"{units.rate(r['throughput_per_s'], '/s')}, {_where(r)})"
        for r in front[:MAX_FRONT]
    ]
    more = f" and {len(front) - MAX_FRONT} more" if len(front) > MAX_FRONT else ""
    return " → ".join(names) + more + caveat


def headline(cases: pd.DataFrame, selection_notes: list[str]) -> list[Html]:
    """The headline section's parts: a summary line, one table row per configuration, and the
    run selection's notes."""
    df = prepared(cases)
    shown = df[df["in_figures"].astype(bool)]
    counts = validity_counts(shown)
    left_out = len(df) - len(shown)
    summary = f"{len(shown)} cases in the figures: {counts_text(counts, _failed_by(shown))}." + (
        f" {left_out} more rows of other runs are in the table only." if left_out else ""
    )
    parts = [Html(f'<p class="counts">{esc(summary)}</p>')]
    rows = []
    for config, g in shown.groupby("config_short", sort=False):
        c = validity_counts(g)
        fastest = [t for t in (_fastest(g, "inference"), _fastest(g, "training")) if t]
        cells = [
            f"<b>{esc(config)}</b><br><small>{esc(g['config'].iloc[0])}</small>",
            esc(counts_text(c, _failed_by(g))),
            "<br>".join(esc(t) for t in fastest) or "—",
            esc(_efficient(g)),
            esc(_front(g)),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "configuration",
            "cases",
            "fastest (highest throughput)",
            "most efficient",
            "Pareto front: throughput vs MACs, cheapest first",
        )
    )
    parts.append(
        Html(
            f'<div class="table-wrap"><table class="headline wrap"><thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    )
    if selection_notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in selection_notes)
        parts.append(Html(f'<ul class="notes">{items}</ul>'))
    return parts
