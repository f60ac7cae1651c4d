"""One function per figure of the report: a cases DataFrame in, a plotly Figure out.

Each function accepts the cases table as ``load_results`` returns it (or as
``data.prepare_cases`` returns it) and reads measured columns only. Missing values are drawn as
gaps, and the figure says under its plot which cases are missing and why. The layer-by-layer
figures live in ``layers.py``, the roofline in ``roofline.py``, the cross-hardware speedups in
``speedup.py`` and the power trace in ``power.py`` (all re-exported here).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.report.data import (
    POWER_REASONS,
    esc,
    has_values,
    human_bytes,
    integer_text,
    is_missing,
    missing_summary,
    number,
    points,
    prepared,
    seconds,
    si,
    values,
)
from harness.report.layers import layer_figure
from harness.report.power import power_trace_figure
from harness.report.roofline import roofline_figure
from harness.report.speedup import speedup_figure
from harness.report.style import add_notes, colors, hover, log_batch_axis, placeholder, style

NOT_PLOTTED = "Not plotted: "


def _fmt(value: object, spec: str) -> str:
    v = number(value)
    return "—" if v is None else format(v, spec)


def _false(value: object) -> bool:
    return not is_missing(value) and not bool(value)


def _diff(a: list[float | None], b: list[float | None]) -> list[float | None]:
    return [None if x is None or y is None else x - y for x, y in zip(a, b, strict=True)]


def latency_throughput_figure(cases: pd.DataFrame, model: str) -> go.Figure:
    """Median latency per step (p90 tick, p99 whisker) and throughput against batch size for
    one model; one curve per device (and per dtype, mode... where those vary)."""
    full = prepared(cases)
    col = colors(full["series"])  # the same colour for a device in every model's figure
    df = full[full["model"] == model]
    title = f"{esc(model)}: latency and throughput against batch size"
    if df.empty:
        return placeholder(title, [esc(f"no cases of model {model} in these results")])
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("latency per step (s): median, p90 tick, p99 whisker", "throughput"),
    )
    for series, g in df.groupby("series", sort=False):
        g = points(g, ("series", "batch_size"))
        x = values(g["batch_size"])
        med, p90, p99 = (
            values(g[c]) for c in ("latency_s_median", "latency_s_p90", "latency_s_p99")
        )
        tp = values(g["throughput_per_s"])
        text = [
            hover(
                f"{model} · {series}",
                f"batch {integer_text(r['batch_size'])}",
                f"median {seconds(r['latency_s_median'])}, p90 {seconds(r['latency_s_p90'])}, "
                f"p99 {seconds(r['latency_s_p99'])}"
                + (" (from fewer than 100 samples)" if _false(r["p99_reliable"]) else ""),
                f"throughput {si(r['throughput_per_s'], 'samples/s')}",
                f"status {r['status']}",
            )
            for _, r in g.iterrows()
        ]
        c, name = col[series], esc(series)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=med,
                name=name,
                legendgroup=name,
                mode="lines+markers",
                line={"color": c},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": _diff(p99, med),
                    "arrayminus": [0 if m is not None else None for m in med],
                    "color": c,
                    "thickness": 1,
                },
                hovertext=text,
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=p90,
                name=f"{name} p90",
                legendgroup=name,
                showlegend=False,
                mode="markers",
                marker={"symbol": "line-ew-open", "size": 12, "color": c},
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=tp,
                name=name,
                legendgroup=name,
                showlegend=False,
                mode="lines+markers",
                line={"color": c},
                hovertext=text,
                hoverinfo="text",
            ),
            row=1,
            col=2,
        )
    log_batch_axis(fig, df["batch_size"].dropna())
    fig.update_yaxes(type="log", title_text="seconds", row=1, col=1)
    fig.update_yaxes(type="log", title_text="samples / s", row=1, col=2)
    style(fig, title, height=420)
    fig.update_layout(margin={"t": 85})
    return add_notes(fig, missing_summary(df, "latency_s_median", "latency"), prefix=NOT_PLOTTED)


def throughput_gmacs_figure(cases: pd.DataFrame) -> go.Figure:
    """Throughput against GMACs per sample, bubble area = parameters: cost against speed.

    One bubble per model and curve (device, dtype, mode...): the batch size with the highest
    measured throughput, named in the hover text.
    """
    df = prepared(cases)
    title = "Throughput against GMACs per sample (bubble area = parameters, best batch size)"
    ok = df[df["throughput_per_s"].notna() & df["macs"].notna() & df["batch_size"].notna()]
    if ok.empty:
        return placeholder(
            title,
            missing_summary(df, "throughput_per_s", "throughput")
            or [esc("no case has both a throughput and a MAC count")],
        )
    best = ok.loc[ok.groupby(["series", "model"], sort=False)["throughput_per_s"].idxmax()]
    max_params = max((number(p) or 0.0) for p in best["params"]) or 1.0
    fig = go.Figure()
    col = colors(df["series"])
    for series, g in best.groupby("series", sort=False):
        gmacs = [
            number(m) / number(b) / 1e9 for m, b in zip(g["macs"], g["batch_size"], strict=True)
        ]
        fig.add_trace(
            go.Scatter(
                x=gmacs,
                y=values(g["throughput_per_s"]),
                name=esc(series),
                mode="markers+text",
                text=[esc(m) for m in g["model"]],
                textposition="top center",
                textfont={"size": 10},
                marker={
                    "size": [number(p) or 0.0 for p in g["params"]],
                    "sizemode": "area",
                    "sizeref": 2.0 * max_params / 45**2,
                    "sizemin": 4,
                    "color": col[series],
                    "opacity": 0.6,
                    "line": {"width": 1, "color": "#333"},
                },
                hovertext=[
                    hover(
                        f"{r['model']} · {series}",
                        f"batch {integer_text(r['batch_size'])}",
                        f"{gm:.3g} GMACs per sample",
                        f"{si(r['params'])} parameters",
                        f"throughput {si(r['throughput_per_s'], 'samples/s')}",
                    )
                    for gm, (_, r) in zip(gmacs, g.iterrows(), strict=True)
                ],
                hoverinfo="text",
            )
        )
    fig.update_xaxes(type="log", title_text="GMACs per sample (one forward pass)")
    fig.update_yaxes(type="log", title_text="throughput (samples / s)")
    style(fig, title, height=480)
    lines = missing_summary(df, "throughput_per_s", "throughput")
    no_params = best["params"].isna().sum()
    if no_params:
        lines.append(esc(f"{no_params} bubbles have no parameter count: drawn at the minimum size"))
    return add_notes(fig, lines, prefix=NOT_PLOTTED)


def energy_figure(cases: pd.DataFrame) -> go.Figure:
    """Energy per sample (J) and samples per joule against batch size, one curve per model and
    device; where no power was measured, the reason recorded in ``power_source``."""
    df = prepared(cases)
    title = "Energy per sample and samples per joule against batch size"
    if not has_values(df, "energy_j_per_sample"):
        lines = missing_summary(df, "energy_j_per_sample", "power", POWER_REASONS)
        return placeholder(title, lines or [esc("no cases in these results")])
    per_j = "samples_per_j"
    # Rows of older files (schema v1) have no samples_per_j: the reciprocal of their measured
    # energy per sample, row by row, so a v1 file read beside a v2 one still gets its points.
    pairs = list(zip(df[per_j], df["energy_j_per_sample"], strict=True))
    derived = [number(s) is None and number(e) not in (None, 0.0) for s, e in pairs]
    df = df.assign(
        samples_per_j=[
            1.0 / number(e) if d else s for d, (s, e) in zip(derived, pairs, strict=True)
        ]
    )
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("energy per sample (J)", "samples per joule"),
    )
    df = df.assign(curve=[f"{m} · {s}" for m, s in zip(df["model"], df["series"], strict=True)])
    col = colors(df["curve"])
    for curve, g in df.groupby("curve", sort=False):
        g = points(g, ("curve", "batch_size"))
        if g["energy_j_per_sample"].isna().all():
            continue
        text = [
            hover(
                curve,
                f"batch {integer_text(r['batch_size'])}",
                f"{_fmt(r['energy_j_per_sample'], '.4g')} J per sample",
                f"mean power {si(r['power_w_mean'], 'W')}",
                f"source {r['power_source']}",
            )
            for _, r in g.iterrows()
        ]
        name = esc(curve)
        for i, column in enumerate(("energy_j_per_sample", per_j), start=1):
            fig.add_trace(
                go.Scatter(
                    x=values(g["batch_size"]),
                    y=values(g[column]),
                    name=name,
                    legendgroup=name,
                    showlegend=i == 1,
                    mode="lines+markers",
                    line={"color": col[curve]},
                    hovertext=text,
                    hoverinfo="text",
                ),
                row=1,
                col=i,
            )
    log_batch_axis(fig, df["batch_size"].dropna())
    fig.update_yaxes(type="log", title_text="joules per sample", row=1, col=1)
    fig.update_yaxes(type="log", title_text="samples per joule", row=1, col=2)
    style(fig, title, height=440)
    fig.update_layout(margin={"t": 85})
    lines = missing_summary(df, "energy_j_per_sample", "power", POWER_REASONS)
    if any(derived):
        lines.append(esc("samples per joule = 1 / energy per sample (no samples_per_j column)"))
    return add_notes(fig, lines, prefix=NOT_PLOTTED)


def memory_figure(cases: pd.DataFrame) -> go.Figure:
    """Measured peak memory (solid) beside the analytic activation bytes (dashed) against
    batch size, one curve per model and device (dtype, mode... where those vary); the analytic
    line is drawn once per model, dtype and input, in the colour of the model's first curve."""
    df = prepared(cases)
    title = "Peak memory against batch size: measured (solid) and analytic activations (dashed)"
    if df.empty:
        return placeholder(title, [esc("no cases in these results")])
    fig = go.Figure()
    curves = [f"{m} · {s}" for m, s in zip(df["model"], df["series"], strict=True)]
    col = colors(curves)
    model_color = {m: col[c] for c, m in reversed(list(zip(curves, df["model"], strict=True)))}
    for (model, series), g in df.groupby(["model", "series"], sort=False):
        g = points(g, ("model", "series", "batch_size"))
        if g["peak_memory_bytes"].isna().all():
            continue
        name = esc(f"{model} · {series}")
        fig.add_trace(
            go.Scatter(
                x=values(g["batch_size"]),
                y=values(g["peak_memory_bytes"]),
                name=name,
                mode="lines+markers",
                line={"color": col[f"{model} · {series}"]},
                hovertext=[
                    hover(
                        f"{model} · {series}",
                        f"batch {integer_text(r['batch_size'])}",
                        f"peak {human_bytes(r['peak_memory_bytes'])}",
                        f"source {r['memory_source']}",
                    )
                    for _, r in g.iterrows()
                ],
                hoverinfo="text",
            )
        )
    analytic_key = ["model", "dtype", "input_shape"]
    dtypes = df.groupby(df["model"].astype(object).fillna("?"))["dtype"].nunique()
    for key, g in df.groupby(analytic_key, sort=False, dropna=False):
        g = points(g, (*analytic_key, "batch_size"))
        if g["activation_bytes"].isna().all():
            continue
        model = key[0]
        which = f" · {key[1]}" if dtypes.get(model, 1) > 1 else ""
        label = f"{model}{which} · activations (analytic)"
        fig.add_trace(
            go.Scatter(
                x=values(g["batch_size"]),
                y=values(g["activation_bytes"]),
                name=esc(label),
                mode="lines",
                line={"color": model_color.get(model, "#888"), "dash": "dash"},
                hovertext=[
                    hover(
                        label,
                        f"batch {integer_text(r['batch_size'])}",
                        f"sum of layer outputs {human_bytes(r['activation_bytes'])}",
                    )
                    for _, r in g.iterrows()
                ],
                hoverinfo="text",
            )
        )
    if not fig.data:
        lines = missing_summary(df, "peak_memory_bytes", "peak memory", "memory_source")
        return placeholder(title, lines)
    log_batch_axis(fig, df["batch_size"].dropna())
    fig.update_yaxes(type="log", title_text="bytes", tickformat="~s")
    style(fig, title, height=480)
    lines = missing_summary(df, "peak_memory_bytes", "peak memory", "memory_source")
    return add_notes(fig, lines, prefix=NOT_PLOTTED)


__all__ = [
    "energy_figure",
    "latency_throughput_figure",
    "layer_figure",
    "memory_figure",
    "power_trace_figure",
    "roofline_figure",
    "speedup_figure",
    "throughput_gmacs_figure",
]
