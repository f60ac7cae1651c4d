"""Across hardware: median latency ratios between configurations, per model.

Rows are grouped by configuration (host, device, CPU threads, torch version: ``runs``), one run
per configuration and one row per case (``select_runs``), so four runs on one machine are not
four devices, and a 1-thread run is labelled as such. The first configuration (of the first file
given) is the baseline; each other one is joined to it on the case key, and per model the
ratios (baseline median / other median: above 1, the other is faster) are summarised by their
geometric mean with a whisker over the model's range. A model with a noisy case on either side
is drawn hollow. Notes go under the figure as text: they never overlap the axis labels.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from harness.core import units
from harness.report.data import CASE_KEY, drawable, points, prepared
from harness.report.style import Missing, Plot, colors, log_range, short_list, style
from harness.report.text import hover, ptext

MAX_MODELS = 40


def _geo(ratios: list[float]) -> float:
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def speedup_figure(cases: pd.DataFrame) -> Plot | Missing:
    """Per model, the geometric mean over its shared cases of (baseline median latency / other
    configuration's median latency), whisker from the smallest to the largest ratio."""
    df = drawable(prepared(cases))
    df = df[df["latency_s_median"].notna() & (df["latency_s_median"] > 0)]
    configs = list(dict.fromkeys(df["config_short"]))
    title = "Across hardware: speedup against the first configuration"
    if len(configs) < 2:
        only = configs[0] if configs else "none"
        return Missing(
            title,
            [
                f"One configuration only ({only}): give result files from several devices, hosts "
                "or thread counts to compare them."
            ],
        )
    base_label = configs[0]
    key = list(CASE_KEY)
    work = df.assign(compiled=[None if c is None else bool(c) for c in df["compiled"]])
    work[key] = work[key].astype(object).where(work[key].notna(), "-")
    base = points(work[work["config_short"] == base_label], tuple(key))
    base_full = base["config"].iloc[0]
    fig = go.Figure()
    col = colors(configs)
    notes: list[str] = []
    all_ratios: list[float] = []
    model_order: list[str] = []
    for config in configs[1:]:
        other = points(work[work["config_short"] == config], tuple(key))
        joined = base.merge(other, on=key, suffixes=("_base", "_other"))
        only = len(base) + len(other) - 2 * len(joined)
        if only:
            notes.append(f"{config}: {only} cases measured on one side only are not compared")
        if joined.empty:
            continue
        joined = joined.assign(
            ratio=joined["latency_s_median_base"] / joined["latency_s_median_other"],
            noisy=(joined["quality_base"] == "noisy") | (joined["quality_other"] == "noisy"),
        )
        geo_all = _geo(list(joined["ratio"]))
        models = list(dict.fromkeys(joined["model"]))
        if len(models) > MAX_MODELS:
            notes.append(
                f"{config}: {len(models) - MAX_MODELS} more models not drawn "
                f"({short_list(models[MAX_MODELS:], 5)}); the geometric mean counts them"
            )
            models = models[:MAX_MODELS]
        xs, ys, lo, hi, hovers, hollow = [], [], [], [], [], []
        for model in models:
            g = joined[joined["model"] == model]
            r = list(g["ratio"])
            geo = _geo(r)
            xs.append(ptext(model))
            ys.append(geo)
            lo.append(geo - min(r))
            hi.append(max(r) - geo)
            all_ratios += r
            hollow.append(bool(g["noisy"].any()))
            detail = [
                f"bs {units.integer(b)}{' · ' + v if v else ''}: {units.ratio(x)}"
                f" ({units.seconds(m1, micro='µ')} vs {units.seconds(m2, micro='µ')})"
                + (" noisy" if n else "")
                for b, v, x, m1, m2, n in zip(
                    g["batch_size"],
                    g["variant_base"],
                    g["ratio"],
                    g["latency_s_median_base"],
                    g["latency_s_median_other"],
                    g["noisy"],
                    strict=True,
                )
            ][:8]
            hovers.append(
                hover(
                    f"{model}: {units.ratio(geo)} (geometric mean of {len(r)} cases)",
                    f"{g['config_other'].iloc[0]} against {base_full}",
                    *detail,
                    f"and {len(g) - 8} more" if len(g) > 8 else "",
                    "hollow: a noisy case on either side" if hollow[-1] else "",
                )
            )
            model_order.append(ptext(model))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name=ptext(f"{config} ({units.ratio(geo_all)}, {len(joined)} cases)"),
                marker={
                    "color": col[config],
                    "size": 10,
                    "symbol": ["circle-open" if h else "circle" for h in hollow],
                    "line": {"width": 1.5, "color": col[config]},
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": hi,
                    "arrayminus": lo,
                    "color": col[config],
                    "thickness": 1.5,
                    "width": 4,
                },
                hovertext=hovers,
                hoverinfo="text",
            )
        )
    if not fig.data:
        return Missing(title, [*notes, "no case was measured in two configurations"])
    fig.add_hline(y=1, line={"color": "#888", "dash": "dot"})
    axis = log_range([*all_ratios, 1.0], kind="ratio", min_ratio=4)
    if axis:
        fig.update_yaxes(**axis)
    fig.update_yaxes(title_text="× faster than the baseline")
    fig.update_xaxes(
        type="category",
        categoryorder="array",
        categoryarray=list(dict.fromkeys(model_order)),
        automargin=True,
        tickangle=-30 if len(set(model_order)) > 8 else 0,
    )
    style(fig, f"Speedup against {base_label} (median latency ratio per model)", height=460)
    fig.update_layout(
        scattermode="group",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left"},
        margin={"t": 90},
    )
    notes.insert(
        0,
        f"Baseline: {base_full}. A marker is the geometric mean of the model's ratios over the "
        "cases both configurations measured, the whisker spans its smallest to largest ratio; "
        "the legend gives each configuration's geometric mean over all shared cases.",
    )
    return Plot(fig, notes)
