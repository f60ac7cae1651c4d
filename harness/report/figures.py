"""Latency, throughput and energy against batch size, per model (small multiples).

Each function takes the cases table (as ``load_results`` or ``data.prepare_cases`` returns it),
reads measured columns only, and returns a ``Plot`` (figure and notes) or a ``Missing`` (why
there is nothing to draw). Models measured at several batch sizes get one facet each (small
multiples, shared batch axis, each facet's own labelled log axis spanning at least a factor of
10); models measured at one batch size share one compact dot chart. Beyond ``MAX_FACETS``
models (``MAX_DOTS`` for the dot chart) and ``MAX_SERIES`` curves, figures name what they left
out, and the table of cases holds every row: the page stays the same size at 50,000 cases.

Noisy rows are drawn hollow with the reason in the hover; rows with impossible timings and rows
of runs the selection left out are not drawn (the table shows them).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.core import units
from harness.report.cost import TRAINING_MAC_FACTOR, cost_figure
from harness.report.data import (
    POWER_REASONS,
    drawable,
    missing_summary,
    number,
    prepared,
    values,
)
from harness.report.facets import (
    MAX_DOTS,
    MAX_FACETS,
    NOT_PLOTTED,
    bounded_models,
    bounded_series,
    case_hover,
    facets,
    latency_lines,
    one_point_each,
    ordered,
    per_series,
    series_hover,
    series_trace,
    split_by_batches,
)
from harness.report.memory import memory_figure
from harness.report.style import (
    Missing,
    Plot,
    colors,
    legend_below,
    legend_once,
    log_range,
    style,
    symbols,
)
from harness.report.text import ptext

# ----------------------------------------------------------------------- latency, throughput


def latency_figures(cases: pd.DataFrame) -> list[Plot | Missing]:
    """Median latency per step (whisker to p90) and throughput against batch size, one facet
    per model measured at several batch sizes; the others in one dot chart."""
    full = prepared(cases)
    df = drawable(full)
    df = df[df["latency_s_median"].notna()]
    lost = missing_summary(
        full[full["in_figures"] & full["latency_s_median"].isna()], "latency_s_median", "latency"
    )
    if df.empty:
        return [Missing("Latency and throughput", lost or ["no case has a measured latency"])]
    notes: list[str] = [NOT_PLOTTED + line for line in lost[:1]] + lost[1:]
    df = bounded_series(df, notes)
    df = one_point_each(df, lambda r: case_hover(r, *latency_lines(r)))
    col = colors(df["series"])
    multi, single = split_by_batches(df)
    out: list[Plot | Missing] = []
    if multi:
        shown = bounded_models(multi, MAX_FACETS, notes, "models with several batch sizes")

        def draw_latency(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
            ys: list[float | None] = []
            for series, pts in per_series(g):
                med, p90 = values(pts["latency_s_median"]), values(pts["latency_s_p90"])
                whisker = [
                    None if m is None or p is None else max(0.0, p - m)
                    for m, p in zip(med, p90, strict=True)
                ]
                fig.add_trace(
                    series_trace(
                        pts,
                        "latency_s_median",
                        col[series],
                        seen,
                        error_y={
                            "type": "data",
                            "symmetric": False,
                            "array": whisker,
                            "arrayminus": [0 if m is not None else None for m in med],
                            "color": col[series],
                            "thickness": 1,
                            "width": 3,
                        },
                    ),
                    row=row,
                    col=c,
                )
                ys += med + p90
            return ys

        def draw_throughput(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
            ys: list[float | None] = []
            for series, pts in per_series(g):
                fig.add_trace(
                    series_trace(pts, "throughput_per_s", col[series], seen), row=row, col=c
                )
                ys += values(pts["throughput_per_s"])
            return ys

        multi_df = df[df["model"].isin(shown)]
        out.append(
            facets(
                multi_df,
                shown,
                "Median latency per step against batch size (whisker: p90; hollow: noisy)",
                "latency per step",
                "seconds",
                draw_latency,
                notes,
            )
        )
        out.append(
            facets(
                multi_df,
                shown,
                "Throughput against batch size (batch size / median latency)",
                "samples / s",
                "count",
                draw_throughput,
                [],
            )
        )
    if single:
        out.append(_dots(df, single, [] if multi else notes))
    return out


def _dots(df: pd.DataFrame, models: list[str], notes: list[str]) -> Plot:
    """Latency and throughput of models measured at one batch size: one row per model."""
    models = bounded_models(models, MAX_DOTS, notes, "models measured at one batch size")
    g = df[df["model"].isin(models)]
    col = colors(df["series"])
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(
            "median latency per step (whisker: p90)",
            "throughput (samples / s)",
        ),
    )
    seen: set[str] = set()
    for series, s in g.groupby("series", sort=False):
        text = s["_hover"].tolist()
        names = [ptext(m) for m in s["model"]]
        med, p90 = values(s["latency_s_median"]), values(s["latency_s_p90"])
        marker = {"color": col[series], "size": 8, "symbol": symbols(s["quality"])}
        common = {
            "y": names,
            "mode": "markers",
            "marker": marker,
            "hovertext": text,
            **series_hover(series, s),
            "legendgroup": ptext(series),
            "name": ptext(series),
        }
        fig.add_trace(
            go.Scatter(
                x=med,
                showlegend=legend_once(seen, series),
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        None if m is None or p is None else max(0.0, p - m)
                        for m, p in zip(med, p90, strict=True)
                    ],
                    "arrayminus": [0 if m is not None else None for m in med],
                    "color": col[series],
                    "thickness": 1,
                    "width": 3,
                },
                **common,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(x=values(s["throughput_per_s"]), showlegend=False, **common), row=1, col=2
        )
    lat = log_range(list(g["latency_s_median"]) + list(g["latency_s_p90"]), kind="seconds")
    tput = log_range(g["throughput_per_s"], kind="count")
    if lat:
        fig.update_xaxes(**lat, row=1, col=1)
    if tput:
        fig.update_xaxes(**tput, row=1, col=2)
    order = [ptext(m) for m in models]
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], type="category")
    batches = sorted({units.integer(b) for b in g["batch_size"]})
    title = (
        f"Models measured at one batch size (batch {', '.join(batches)}): latency and throughput"
    )
    height = 190 + 22 * len(models)
    style(fig, title, height=height)
    fig.update_layout(margin={"t": 80, "l": 160, "b": 100}, legend=legend_below(height, 80, 100))
    return Plot(fig, notes)


# ------------------------------------------------------------------------ energy and memory


def energy_figure(cases: pd.DataFrame) -> Plot | Missing:
    """Samples per joule against batch size (energy per sample in the hover), one facet per
    model with measured energy; where none was measured, the recorded reason."""
    full = prepared(cases)
    df = drawable(full)
    title = "Energy efficiency: samples per joule against batch size"
    per_j = [
        number(s) if number(s) is not None else (1 / number(e) if number(e) else None)
        for s, e in zip(df["samples_per_j"], df["energy_j_per_sample"], strict=True)
    ]
    df = df.assign(samples_per_j=per_j)
    lines = missing_summary(full[full["in_figures"]], "energy_j_per_sample", "power", POWER_REASONS)
    has = df[df["samples_per_j"].notna()]
    if has.empty:
        return Missing(title, lines or ["no cases in these results"])
    notes = [NOT_PLOTTED + lines[0], *lines[1:]] if lines else []
    has = bounded_series(has, notes)
    has = one_point_each(
        has,
        lambda r: case_hover(
            r,
            f"{units.si(r['samples_per_j'])} samples per joule",
            f"{units.si(r['energy_j_per_sample'], 'J')} per sample",
            f"mean power {units.si(r['power_w_mean'], 'W')}",
            f"source {r['power_source']}",
        ),
    )
    col = colors(has["series"])
    models = ordered(has["model"])
    models = bounded_models(models, MAX_FACETS, notes, "models with energy")

    def draw(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
        ys: list[float | None] = []
        for series, pts in per_series(g):
            fig.add_trace(series_trace(pts, "samples_per_j", col[series], seen), row=row, col=c)
            ys += values(pts["samples_per_j"])
        return ys

    return facets(has, models, title, "samples / J", "count", draw, notes)


__all__ = [
    "MAX_FACETS",
    "TRAINING_MAC_FACTOR",
    "cost_figure",
    "energy_figure",
    "latency_figures",
    "memory_figure",
    "split_by_batches",
]
