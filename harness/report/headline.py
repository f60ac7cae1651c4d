"""The headline: what an engineer reads first.

First, which runs the figures draw and which they leave out (with the flags that change it);
then how many cases are valid, noisy, invalid or failed; then, per input size, the fastest model
at batch 1 with its memory and validity (``fastest``: models are ranked only against models of
the same input size). Below it, per configuration (host, device, threads, torch): the highest
throughput at any batch size, the most efficient model (samples per joule, where energy was
measured) and the throughput-vs-MACs Pareto front, each per input size. Winners are taken from
valid rows (and unassessed rows of older files); a group with no such row falls back to its
noisy rows and says so, and where a noisy row is faster than the valid winner, it is named.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from harness.report.fastest import fastest_table
from harness.report.noisy import NOISY_HIDDEN, NOISY_SHOWN
from harness.report.page import Html
from harness.report.text import esc
from harness.results.runs import RUN_FLAGS, RunSelection, run_text

TRUSTED = ("valid", "unassessed")
MAX_FRONT = 8
MAX_LEFT = 6


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


def _per_input(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of each input size, the sizes with the most models first."""
    named = df[df["input_shape"].notna()]
    if named.empty:
        return []
    sizes = named.groupby("input_shape", sort=False)["model"].nunique()
    order = sorted(sizes.index, key=lambda s: (-sizes[s], list(sizes.index).index(s)))
    return [(str(s), named[named["input_shape"] == s]) for s in order]


def _fastest(df: pd.DataFrame, mode: str) -> str | None:
    """The fastest valid model, and the fastest noisy one where it beats it (on a noisy
    machine the winner among valid rows can be a slow model whose row happened to be valid)."""
    pool = df[(df["mode"] == mode) & df["throughput_per_s"].notna()]
    rows, caveat = _trusted(pool)
    if rows.empty:
        return None
    r = rows.loc[rows["throughput_per_s"].idxmax()].to_dict()
    text = f"{r['model']}, {units.rate(r['throughput_per_s'])} ({_where(r)}){caveat}"
    faster = pool[(pool["quality"] == "noisy") & (pool["throughput_per_s"] > r["throughput_per_s"])]
    if not caveat and not faster.empty:
        n = faster.loc[faster["throughput_per_s"].idxmax()].to_dict()
        text += (
            f"; faster in noisy rows only: {n['model']}, {units.rate(n['throughput_per_s'])} "
            f"({_where(n)})"
        )
    return text


def _efficient(df: pd.DataFrame) -> str | None:
    per_j = [
        number(s) if number(s) is not None else (1 / number(e) if number(e) else None)
        for s, e in zip(df["samples_per_j"], df["energy_j_per_sample"], strict=True)
    ]
    work = df.assign(per_j=per_j)
    rows, caveat = _trusted(work[work["per_j"].notna()])
    if rows.empty:
        return None
    r = rows.loc[rows["per_j"].idxmax()].to_dict()
    return f"{r['model']}, {units.si(r['per_j'])} samples/J ({_where(r)}){caveat}"


def _no_energy(df: pd.DataFrame) -> str:
    reasons = [missing_reason(r, "energy", POWER_REASONS) for r in records(df)]
    return reasons[0] if reasons else "energy not measured"


def _front(df: pd.DataFrame) -> str | None:
    """The models no other beats on both MACs per sample and throughput (inference, each model
    at its best batch size and setting), cheapest first; None for fewer than two models."""
    rows, caveat = _trusted(df[df["mode"] == "inference"])
    best = best_per_model(rows.assign(_all="all"), "_all")
    if best.empty or best["model"].nunique() < 2:
        return None
    front = [best.loc[i] for i in pareto_front(best)]
    names = [
        f"{r['model']} ({units.si(r['macs_per_sample'], 'MACs')}, "
        f"{units.rate(r['throughput_per_s'], '/s')}, {_where(r)})"
        for r in front[:MAX_FRONT]
    ]
    more = f" and {len(front) - MAX_FRONT} more" if len(front) > MAX_FRONT else ""
    return " → ".join(names) + more + caveat


def _lines(df: pd.DataFrame, what: Any) -> str:
    """One line per input size (``3x224x224: ...``) of ``what(rows)``; a dash when none."""
    lines = []
    for shape, g in _per_input(df):
        text = what(g)
        if text:
            lines.append(f"<small>{esc(shape)}:</small> {esc(text)}")
    return "<br>".join(lines) or "—"


def runs_line(selection: RunSelection, short: dict[str, str] | None = None) -> str:
    """Which runs the figures draw and which they leave out, with the flags that change it;
    ``short`` maps a configuration's full label to the one legends use."""
    short = short or {}
    drawn, left = selection.drawn()
    if not drawn:
        return "No run drawn: " + selection.rule() + "."
    several = len({r["config"] for r in drawn}) > 1
    text = "Figures draw " + "; ".join(
        (f"{short.get(r['config'], r['config'])}: " if several else "") + run_text(r) for r in drawn
    )
    text += f" ({selection.rule()})."
    if left:
        shown = "; ".join(run_text(r) for r in left[:MAX_LEFT])
        more = f" and {len(left) - MAX_LEFT} more" if len(left) > MAX_LEFT else ""
        text += f" Left out, in the table only: {shown}{more}. {RUN_FLAGS}."
    return text


def headline(
    cases: pd.DataFrame, selection: RunSelection, passed_over: Sequence[str] = ()
) -> list[Html]:
    """The headline section's parts: the runs drawn, a summary line, the fastest model per
    input size at batch 1, one table row per configuration, the run selection's notes and the
    result files passed over."""
    df = prepared(cases)
    shown = df[df["in_figures"].astype(bool)]
    counts = validity_counts(shown)
    summary = f"{len(shown)} cases in the figures: {counts_text(counts, _failed_by(shown))}."
    short = dict(zip(df["config"], df["config_short"], strict=True))
    if counts["noisy"]:  # the page's toggle starts ticked when nothing else would be drawn
        trusted = counts["valid"] + counts["unassessed"]
        summary += f" {NOISY_SHOWN if trusted == 0 else NOISY_HIDDEN}"
    parts = [
        Html(f'<p class="runs">{esc(runs_line(selection, short))}</p>'),
        Html(f'<p class="counts">{esc(summary)}</p>'),
    ]
    table = fastest_table(shown)
    if table is not None:
        parts.append(table)
    rows = []
    for config, g in shown.groupby("config_short", sort=False):
        c = validity_counts(g)
        fastest = [
            f"<b>{mode}</b><br>{_lines(g, lambda x, m=mode: _fastest(x, m))}"
            for mode in ("inference", "training")
            if (g["mode"] == mode).any()
        ]
        efficient = _lines(g, _efficient)
        cells = [
            f"<b>{esc(config)}</b><br><small>{esc(g['config'].iloc[0])}</small>",
            esc(counts_text(c, _failed_by(g))),
            "<br>".join(fastest) or "—",
            efficient if efficient != "—" else esc(_no_energy(g)),
            _lines(g, _front),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "configuration",
            "cases",
            "highest throughput (best batch), per input size",
            "most efficient, per input size",
            "Pareto front: throughput vs MACs, cheapest first, per input size",
        )
    )
    parts.append(
        Html(
            f'<div class="table-wrap whole"><table class="headline wrap"><thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    )
    notes = [*selection.notes(), *passed_over]
    if notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in notes)
        parts.append(Html(f'<ul class="notes">{items}</ul>'))
    return parts
