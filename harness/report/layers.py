"""Layer by layer: where a model keeps its activations, parameters and MACs (static), and where
its time goes (measured).

Reads the ``layers`` table: one row per leaf layer per profiled case (plus ``parent_ops`` rows,
the ops a parent module ran itself, where layer times were measured). Two kinds of numbers sit
side by side and are labelled for what they are:

* **static**: parameters, MACs and output bytes from the profile on the meta device: exact,
  the same on every machine;
* **measured**: ``time_s`` per layer (median over the profiled steps), and what follows from
  it (``time_share``, ``achieved_flops_per_s``), only where the run measured layer times.

A value missing in the table stays missing: it is a gap in a bar (and the note says how many
layers lacked it), never a zero. Which profile is shown, categories and shares come from
``layer_data`` (re-exported here).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.core import units
from harness.report.data import is_missing, number, records, values
from harness.report.layer_data import (
    CATEGORIES,
    CATEGORY_COLORS,
    MAX_LAYER_MODELS,
    SHARE_COLUMNS,
    VGG16_NAME,
    attach_case_keys,
    keep_wanted,
    layer_category,
    layer_models,
    layer_shares,
    select_profile,
    timed_profiles,
    vgg16_statement,
    wanted_cases,
)
from harness.report.roofline import roof_name, roof_traces, roofs_for
from harness.report.style import (
    Missing,
    Plot,
    colors,
    legend_below,
    linear_axis,
    log_range,
    short_list,
    style,
)
from harness.report.text import hover, ptext

MAX_SHARE_MODELS = 40
MAX_NAMED_TICKS = 40

__all__ = [
    "CATEGORIES",
    "CATEGORY_COLORS",
    "MAX_LAYER_MODELS",
    "VGG16_NAME",
    "attach_case_keys",
    "keep_wanted",
    "layer_category",
    "layer_figure",
    "layer_models",
    "layer_roofline",
    "layer_shares",
    "select_profile",
    "shares_figure",
    "timed_profiles",
    "vgg16_statement",
    "wanted_cases",
]


def _tick_labels(prof: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Layer names for the x axis: all of them up to ``MAX_NAMED_TICKS``, else every Nth
    (the hover names every layer)."""
    idx = [int(i) for i in prof["layer_index"]]
    names = [str(n) if not is_missing(n) else "?" for n in prof["layer_name"]]
    step = max(1, -(-len(idx) // MAX_NAMED_TICKS))
    return idx[::step], [ptext(n) for n in names[::step]]


def layer_figure(layers: pd.DataFrame, model: str) -> Plot | Missing:
    """Per layer of one profile of ``model``: output bytes, parameters and MACs (static, from
    the meta-device profile) and, where measured, the time per layer; bars coloured by layer
    type, layer names on the x axis."""
    prof = select_profile(layers, model, timed=True)
    if prof.empty:
        return Missing(f"{model}: layers", [f"no layer profile of {model}"])
    first = prof.iloc[0]
    timed = prof["time_s"].notna().any()
    context = f"input {first['input_shape']}, batch {units.integer(first['batch_size'])}, "
    context += f"{first['dtype']}"
    panels = [
        ("activation_bytes", "output bytes per layer (static)", "bytes"),
        ("params", "parameters per layer (static)", "count"),
        ("macs", "MACs per layer (static)", "count"),
    ]
    if timed:
        panels.insert(0, ("time_s", "time per layer (measured, median over steps)", "seconds"))
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.3 / len(panels),
        subplot_titles=[t for _, t, _ in panels],
    )
    recs = records(prof)
    text = {
        i: hover(
            f"#{units.integer(r['layer_index'])} {r['layer_name']} ({r['layer_type']})",
            f"output {r['output_shape']}",
            f"static: {units.nbytes(r['activation_bytes'])} output, "
            f"{units.count(r['params'])} params, {units.si(r['macs'], 'MACs')}",
            f"measured: {units.seconds(r['time_s'], micro='µ')}"
            + (
                f" ({units.percent(r['time_share'])} of the step's layer time)"
                if number(r.get("time_share")) is not None
                else ""
            )
            if number(r.get("time_s")) is not None
            else "",
            f"{units.si(r.get('achieved_flops_per_s'), 'FLOP/s')} achieved"
            if number(r.get("achieved_flops_per_s")) is not None
            else "",
        )
        for i, r in enumerate(recs)
    }
    for cat in CATEGORIES:
        pos = [i for i, c in enumerate(prof["category"]) if c == cat]
        if not pos:
            continue
        g = prof.iloc[pos]
        for row, (column, _, _) in enumerate(panels, start=1):
            fig.add_trace(
                go.Bar(
                    x=values(g["layer_index"]),
                    y=values(g[column]),
                    name=cat,
                    legendgroup=cat,
                    showlegend=row == 1,
                    marker_color=CATEGORY_COLORS[cat],
                    hovertext=[text[i] for i in pos],
                    hoverinfo="text",
                ),
                row=row,
                col=1,
            )
    tickvals, ticktext = _tick_labels(prof)
    fig.update_xaxes(tickvals=tickvals, ticktext=ticktext, tickangle=-60, tickfont={"size": 9})
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(showticklabels=True, row=len(panels), col=1)
    for row, (column, _, kind) in enumerate(panels, start=1):
        fig.update_yaxes(**linear_axis(prof[column], kind=kind), row=row, col=1)
    title = f"{model}: layer by layer ({context})"
    style(fig, title, height=170 * len(panels) + 230)
    fig.update_layout(barmode="stack", bargap=0.1, margin={"t": 80, "b": 150})
    notes = []
    for column, what in (
        ("activation_bytes", "output bytes"),
        ("params", "parameters"),
        ("macs", "MACs"),
    ):
        n = int(prof[column].isna().sum())
        if n:
            notes.append(f"{n} layers have no {what} recorded: gaps, not zeros")
    if timed:
        n = int(prof["time_s"].isna().sum())
        cov = number(first.get("case_layer_time_coverage"))
        notes.append(
            "Measured time: torch.profiler over extra steps after the timed rounds, each op's "
            "self time attributed to the layer that issued it; 'parent ops' are ops a parent "
            "module ran itself (the residual add, torch.cat, flatten)."
            + (
                f" Layer times add up to {units.percent(cov)} of the step's median latency."
                if cov is not None
                else ""
            )
            + (f" {n} layers without a measured time." if n else "")
        )
    return Plot(fig, notes)


def shares_figure(layers: pd.DataFrame, models: list[str]) -> Plot | Missing:
    """Per model, the split by layer type of measured time, MACs, parameters and output bytes
    (100%-stacked bars, one facet per quantity): does time follow MACs?"""
    title = "Shares by layer type: measured time against static MACs, parameters, output bytes"
    shown = models[:MAX_SHARE_MODELS]
    split = dict(tuple(layers.groupby("model", sort=False)))
    rows = []
    for model in shown:
        prof = select_profile(split.get(model, layers.iloc[0:0]), model, timed=True)
        if prof.empty:
            continue
        shares = layer_shares(prof)
        for _, r in shares.iterrows():
            rows.append({"model": model, **r.to_dict()})
    if not rows:
        return Missing(title, ["no layer profiles"])
    table = pd.DataFrame(rows)
    quantities = [
        (c, label)
        for c, label in SHARE_COLUMNS
        if f"{c}_share" in table and table[f"{c}_share"].notna().any()
    ]
    fig = make_subplots(
        rows=1,
        cols=len(quantities),
        shared_yaxes=True,
        horizontal_spacing=0.035,
        subplot_titles=[label for _, label in quantities],
    )
    order = [ptext(m) for m in shown if m in set(table["model"])]
    for cat in CATEGORIES:
        g = table[table["category"] == cat]
        if g.empty:
            continue
        for col, (column, label) in enumerate(quantities, start=1):
            share = values(g[f"{column}_share"])
            fig.add_trace(
                go.Bar(
                    y=[ptext(m) for m in g["model"]],
                    x=share,
                    orientation="h",
                    name=cat,
                    legendgroup=cat,
                    showlegend=col == 1,
                    marker_color=CATEGORY_COLORS[cat],
                    hovertext=[
                        hover(
                            f"{m}: {cat}",
                            f"{units.percent(s)} of the {label}",
                            f"{units.integer(n)} layers",
                        )
                        for m, s, n in zip(g["model"], share, g["layers"], strict=True)
                    ],
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(range=[0, 1], tickvals=[0, 0.5, 1], ticktext=["0", "50%", "100%"])
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], type="category")
    style(fig, title, height=190 + 22 * len(order))
    fig.update_layout(
        barmode="stack",
        bargap=0.25,
        margin={"t": 80, "l": 160, "b": 100},
        legend=legend_below(190 + 22 * len(order), 80, 100),
    )
    notes = []
    if len(models) > MAX_SHARE_MODELS:
        notes.append(
            f"{len(models) - MAX_SHARE_MODELS} more models not drawn "
            f"({short_list(models[MAX_SHARE_MODELS:], 5)}): see the table of shares"
        )
    if "time_s_share" not in table or table["time_s_share"].isna().all():
        notes.append("No measured layer times in these results: static shares only.")
    notes.append(
        "Shares are of the model's total over the layers that have the value; one profile per "
        "model (with measured times where there are, else batch 1, float32)."
    )
    return Plot(fig, notes)


def layer_roofline(layers: pd.DataFrame, cases: pd.DataFrame, model: str) -> Plot | Missing:
    """Each layer of one timed profile as a point at its arithmetic intensity and achieved
    FLOP/s, under the roofs of the configuration that measured it."""
    title = f"{model}: layer roofline (measured time, static FLOPs and bytes)"
    prof = select_profile(layers, model, timed=True)
    pts = prof.dropna(subset=["arithmetic_intensity", "achieved_flops_per_s"])
    pts = pts[(pts["arithmetic_intensity"] > 0) & (pts["achieved_flops_per_s"] > 0)]
    if pts.empty:
        return Missing(title, [f"no layer of {model} has a measured time and a MAC count"])
    fig = go.Figure()
    for cat in CATEGORIES:
        g = pts[pts["category"] == cat]
        if g.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=values(g["arithmetic_intensity"]),
                y=values(g["achieved_flops_per_s"]),
                mode="markers",
                name=cat,
                marker={
                    "color": CATEGORY_COLORS[cat],
                    "size": 8,
                    "line": {"width": 1, "color": "#333"},
                },
                hovertext=[
                    hover(
                        f"#{units.integer(r['layer_index'])} {r['layer_name']} ({r['layer_type']})",
                        f"{units.si(r['arithmetic_intensity'])} FLOP/byte "
                        f"({units.nbytes(r['bytes_moved'])} moved)",
                        f"{units.si(r['achieved_flops_per_s'], 'FLOP/s')} in "
                        f"{units.seconds(r['time_s'], micro='µ')}",
                    )
                    for r in records(g)
                ],
                hoverinfo="text",
            )
        )
    first = prof.iloc[0]
    run, case = first["run_id"], first["case_id"]
    rows = cases[(cases["run_id"] == run) & (cases["case_id"] == case)]
    config = str(first.get("case_config_short") or "this configuration")
    roofs = (
        roofs_for(cases[cases["config"] == rows["config"].iloc[0]], str(first["dtype"]))
        if not rows.empty
        else []
    )
    ai = [v for v in values(pts["arithmetic_intensity"]) if v]
    lo, hi = min(ai) / 3, max(ai) * 3
    for roof in roofs:
        ridge = roof.flops_per_s / roof.bytes_per_s
        lo, hi = min(lo, ridge / 3), max(hi, ridge * 3)
    for i, roof in enumerate(roofs):
        fig.add_trace(
            roof_traces(
                roof,
                colors([config])[config],
                lo,
                hi,
                name=roof_name(config, roof),
                dash="dash" if i else "solid",
            )
        )
    x_axis = log_range([lo, hi], kind="count")
    y_axis = log_range(
        pad=2.0,
        data=list(pts["achieved_flops_per_s"]) + [r.flops_per_s for r in roofs],
        kind="flops",
    )
    if x_axis:
        fig.update_xaxes(**x_axis)
    if y_axis:
        fig.update_yaxes(**y_axis)
    fig.update_xaxes(title_text="arithmetic intensity (FLOP per byte moved)")
    fig.update_yaxes(title_text="achieved FLOP/s")
    context = f"batch {units.integer(first['batch_size'])}, {first['dtype']}, {config}"
    style(fig, f"{title}: {context}", height=460)
    fig.update_layout(legend={"orientation": "h", "y": -0.18, "yanchor": "top"})
    notes = [
        "Per layer: achieved = 2 × MACs / measured time; bytes moved = weights + inputs + "
        "outputs at the case's dtype (each once); layers without MACs (pooling, activations) "
        "have no point."
    ]
    if not roofs:
        notes.append(f"No datasheet entry and no measured roof for {config}: points only.")
    return Plot(fig, notes)
