"""The first screen's answer: per input size, the fastest model at batch 1, its memory and validity.

Models are ranked only against models of the same input size (lenet5 on 1x32x32 is not faster
than resnet50 on 3x224x224: it does 1/1000 of the work), at batch 1 (one sample: the latency a
single request sees), inference only. Where an input size has no batch-1 row, its smallest batch
is used and named. The winner is the fastest valid row (or unassessed: an older file's); where an
input size has only noisy rows the fastest of them is shown and says so, and where a noisy row is
faster than the valid winner it is named as such. Peak memory is measured memory, which does not
depend on timing noise. Torch-free; reads measured columns only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.core import units
from harness.report.data import MISSING_TEXT, missing_reason, records
from harness.report.page import Html
from harness.report.text import esc

TRUSTED = ("valid", "unassessed")
MAX_OTHERS = 3
MAX_REASON = 70


def _variant(r: dict[str, Any]) -> str:
    """The settings of the row that differ between the rows of the table (``_shown``)."""
    parts = [p for p in str(r.get("variant") or "").split(" · ") if p in r.get("_shown", ())]
    return f" ({' · '.join(parts)})" if parts else ""


def _mark_settings(groups: list[tuple[str, str, int, list[dict[str, Any]]]]) -> None:
    """Give each row the setting words (``float16``, ``channels_last``...) that not every row
    of the table shares: a word every row has says nothing."""
    words = [set(str(r.get("variant") or "").split(" · ")) - {""} for *_, rs in groups for r in rs]
    common = set.intersection(*words) if words else set()
    for *_, recs in groups:
        for r in recs:
            r["_shown"] = {w for w in str(r.get("variant") or "").split(" · ")
                           if w and w not in common and not w.startswith("input ")}  # fmt: skip


def _cut(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validity(r: dict[str, Any]) -> str:
    quality = r["quality"]
    if quality == "noisy":
        reason = r.get("validity_reason")
        why = reason if isinstance(reason, str) and reason else "no reason recorded"
        return (
            f'<span class="noisy" title="{esc(why)}">noisy</span>'
            f' <small title="{esc(why)}">{esc(_cut(why))}</small>'
        )
    if quality == "unassessed":
        return '<span title="an older file: validity not assessed">unassessed</span>'
    return '<span class="valid">valid</span>'


def _memory(r: dict[str, Any]) -> str:
    value = r.get("peak_memory_bytes")
    if value is None:
        why = missing_reason(r, "peak memory", "memory_source")
        return f'<span title="{esc(why)}">{MISSING_TEXT}</span>'
    return esc(units.nbytes(value))


def _latency(r: dict[str, Any]) -> str:
    return units.seconds(r["latency_s_median"], micro="µ")


def _other(r: dict[str, Any]) -> str:
    mark = "" if r["quality"] in TRUSTED else ", noisy"
    return f"{r['model']}{_variant(r)} {_latency(r)}{mark}"


def ranked(cases: pd.DataFrame) -> list[tuple[str, str, int, list[dict[str, Any]]]]:
    """Per (input size, configuration): (input, configuration, batch, rows fastest first) for
    inference rows with a median latency, at batch 1 (else the group's smallest batch). The
    input sizes with the most models come first."""
    df = cases[
        (cases["mode"] == "inference")
        & cases["latency_s_median"].notna()
        & cases["input_shape"].notna()
        & cases["batch_size"].notna()
        & cases["quality"].isin(("valid", "unassessed", "noisy"))
    ]
    if df.empty:
        return []
    sizes = df.groupby("input_shape", sort=False)["model"].nunique()
    order = sorted(sizes.index, key=lambda s: (-sizes[s], list(sizes.index).index(s)))
    configs = list(dict.fromkeys(df["config_short"]))
    out = []
    for shape in order:
        for config in configs:
            g = df[(df["input_shape"] == shape) & (df["config_short"] == config)]
            if g.empty:
                continue
            batch = 1 if (g["batch_size"] == 1).any() else int(g["batch_size"].min())
            g = g[g["batch_size"] == batch].sort_values("latency_s_median", kind="stable")
            out.append((str(shape), str(config), batch, records(g)))
    return out


def _winner(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The fastest trusted row (else the fastest noisy one) and a note on the other kind."""
    trusted = [r for r in rows if r["quality"] in TRUSTED]
    if not trusted:
        return rows[0], "no valid row here: the fastest noisy one is shown"
    best = trusted[0]
    faster = [r for r in rows if r["quality"] == "noisy" and r["latency_s_median"] < best[
        "latency_s_median"]]  # fmt: skip
    note = ""
    if faster:
        f = faster[0]
        note = f"faster in a noisy row only: {f['model']}{_variant(f)} {_latency(f)}"
    return best, note


def fastest_table(cases: pd.DataFrame) -> Html | None:
    """The table: input size, (configuration), fastest model at batch 1, its median latency,
    its peak memory, its validity, and the next models at that input size."""
    groups = ranked(cases)
    if not groups:
        return None
    _mark_settings(groups)
    several = len({c for _, c, _, _ in groups}) > 1
    head = ["input", *(["configuration"] if several else []), "fastest at batch 1",
            "median latency", "peak memory", "validity", "next at this input size"]  # fmt: skip
    rows = []
    for shape, config, batch, recs in groups:
        best, note = _winner(recs)
        others = [r for r in recs if r is not best][:MAX_OTHERS]
        more = len(recs) - 1 - len(others)
        rest = "; ".join(_other(r) for r in others) + (f"; {more} more" if more > 0 else "")
        if note:
            rest = f"<i>{esc(note)}</i>" + ("<br>" + esc(rest) if rest else "")
        else:
            rest = esc(rest) or MISSING_TEXT
        model = f"<b>{esc(best['model'])}</b>{esc(_variant(best))}"
        if batch != 1:
            model += f" <small>(batch {batch}: no batch-1 row)</small>"
        cells = [f'<span class="nowrap">{esc(shape)}</span>', *([esc(config)] if several else []),
                 model, esc(_latency(best)), _memory(best), _validity(best), rest]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    caption = (
        "Fastest model per input size at batch 1 (inference): models are ranked only against "
        "models of the same input size; winners come from valid rows."
    )
    return Html(
        f'<table class="headline fastest wrap"><caption>{esc(caption)}</caption><thead><tr>'
        f"{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
