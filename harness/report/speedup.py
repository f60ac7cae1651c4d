"""Cross-hardware speedups: the ratio of median latencies per case against the first device.

Cases are joined on the case key (model, input shape, batch size, dtype, memory format, mode,
compiled); a case measured on one side only is counted and named in the figure's notes.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from harness.report.data import (
    CASE_KEY,
    esc,
    integer_text,
    is_missing,
    number,
    points,
    prepared,
    seconds,
)
from harness.report.style import add_notes, colors, hover, placeholder, style


def speedup_figure(cases: pd.DataFrame) -> go.Figure:
    """Cross-hardware speedup per case: median latency on the first device / on each other
    device (above 1: faster than the first), joined on the case key, drawn as a marker on a
    stem from 1; geometric means in the legend, the first device in the title."""
    df = prepared(cases)
    devices = list(dict.fromkeys(df["device_label"]))
    title = "Speedup against the first device (ratio of median latencies)"
    if len(devices) < 2:
        return placeholder(
            title,
            [
                esc(
                    f"one device only ({devices[0] if devices else 'none'})"
                    ": no cross-hardware comparison"
                )
            ],
        )
    base_label = devices[0]
    key = list(CASE_KEY)
    ok = df[df["latency_s_median"].notna()].astype({"compiled": object})
    ok = ok.assign(compiled=ok["compiled"].map(lambda v: None if is_missing(v) else bool(v)))
    base = points(ok[ok["device_label"] == base_label], tuple(key))
    fig = go.Figure()
    col = colors(devices)
    lines: list[str] = []
    for dev in devices[1:]:
        other = points(ok[ok["device_label"] == dev], tuple(key))
        joined = base.merge(other, on=key, suffixes=("_base", "_other"))
        only = len(base) + len(other) - 2 * len(joined)
        if only:
            lines.append(esc(f"{dev}: {only} cases measured on one side only are not compared"))
        if joined.empty:
            continue
        joined = joined.sort_values(["model", "batch_size"], kind="stable")
        ratio = [
            number(a) / number(b)
            for a, b in zip(
                joined["latency_s_median_base"], joined["latency_s_median_other"], strict=True
            )
        ]
        geo = math.exp(sum(math.log(r) for r in ratio) / len(ratio))
        raw = [
            f"{m} bs {integer_text(b)}" + (f" · {v}" if v else "")
            for m, b, v in zip(
                joined["model"], joined["batch_size"], joined["variant_base"], strict=True
            )
        ]
        # A lollipop per case: a marker at the ratio on a stem from 1, so a case slower than the
        # first device points down from 1 (bars on a log axis would start at the axis edge).
        fig.add_trace(
            go.Scatter(
                x=[esc(lab) for lab in raw],
                y=ratio,
                mode="markers",
                marker={"color": col[dev], "size": 10},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [max(0.0, 1 - r) for r in ratio],
                    "arrayminus": [max(0.0, r - 1) for r in ratio],
                    "color": col[dev],
                    "thickness": 3,
                    "width": 0,
                },
                name=esc(f"{dev} (geometric mean {geo:.3g}×)"),
                hovertext=[
                    hover(
                        f"{dev} vs {base_label}",
                        lab,
                        f"speedup {r:.3g}×",
                        f"median {seconds(b)} vs {seconds(a)}",
                    )
                    for lab, r, a, b in zip(
                        raw,
                        ratio,
                        joined["latency_s_median_base"],
                        joined["latency_s_median_other"],
                        strict=True,
                    )
                ],
                hoverinfo="text",
            )
        )
    if not fig.data:
        return placeholder(title, [*lines, esc("no case was measured on two devices")])
    fig.add_hline(y=1, line={"color": "#888", "dash": "dot"})
    ticks = _ticks([y for t in fig.data for y in t.y])
    fig.update_yaxes(
        type="log",
        title_text="× faster than the first device",
        tickvals=ticks,
        ticktext=[f"{t:g}" for t in ticks],
    )
    fig.update_xaxes(tickangle=-45, automargin=True)
    style(fig, f"Speedup against {esc(base_label)} (ratio of median latencies)", height=480)
    fig.update_layout(scattermode="group")
    return add_notes(fig, lines)


def _ticks(ratios: list[float]) -> list[float]:
    """1-2-5 ticks spanning ``ratios`` and 1 (plotly's own log ticks label 0.3 as "3")."""
    lo, hi = min([*ratios, 1.0]), max([*ratios, 1.0])
    out = []
    for exp in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        out += [m * 10.0**exp for m in (1, 2, 5)]
    keep = [t for t in out if lo / 2.5 <= t <= hi * 2.5]
    return [float(f"{t:.6g}") for t in keep]
