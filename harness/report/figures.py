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
    curve_traces,
    facets,
    latency_lines,
    one_point_each,
    ordered,
    per_series,
    series_hover,
    split_by_batches,
)
from harness.report.memory import memory_figure
from harness.report.noisy import NOISY_NOTE, TRUSTED, noisy_style, split
from harness.report.style import (
    Missing,
    Plot,
    colors,
    legend_below,
    legend_once,
    log_range,
    style,
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
    multi, _ = split_by_batches(df)
    out: list[Plot | Missing] = []
    if multi:
        shown = bounded_models(multi, MAX_FACETS, notes, "models with several batch sizes")

        def draw_latency(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
            ys: list[float | None] = []
            for series, pts in per_series(g):
                traces, span = curve_traces(
                    pts,
                    "latency_s_median",
                    col[series],
                    seen,
                    extra=lambda d, s=series: {"error_y": _whisker(d, col[s], "y")},
                    axis=lambda d: values(d["latency_s_median"]) + values(d["latency_s_p90"]),
                )
                for trace in traces:
                    fig.add_trace(trace, row=row, col=c)
                ys += span
            return ys

        def draw_throughput(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
            ys: list[float | None] = []
            for series, pts in per_series(g):
                traces, span = curve_traces(pts, "throughput_per_s", col[series], seen)
                for trace in traces:
                    fig.add_trace(trace, row=row, col=c)
                ys += span
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
    out.append(batch_one_figure(df, [] if multi else notes))
    return out


def _whisker(d: pd.DataFrame, color: str, axis: str) -> dict:
    """A whisker from the median up to p90 (``axis`` "y" or "x" names the error bar's axis)."""
    med, p90 = values(d["latency_s_median"]), values(d["latency_s_p90"])
    return {
        "type": "data",
        "symmetric": False,
        "array": [None if m is None or p is None else max(0.0, p - m) for m, p in zip(med, p90,
                  strict=True)],
        "arrayminus": [0 if m is not None else None for m in med],
        "color": color,
        "thickness": 1,
        "width": 3,
    }  # fmt: skip


def _smallest_batch(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and input size, the rows at its smallest batch size (batch 1 where it has it)."""
    key = [df["model"], df["input_shape"].astype(object).fillna("?")]
    smallest = df.groupby(key, sort=False)["batch_size"].transform("min")
    return df[df["batch_size"] == smallest]


def _order(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, input) pairs: input sizes with the most models first, then within each the
    fastest per sample first (by the trusted rows; models with noisy rows only last)."""
    work = df.assign(
        _shape=df["input_shape"].astype(object).fillna("?"),
        _per=df["latency_s_median"] / df["batch_size"],
        _trusted=df["quality"].isin(TRUSTED),
    )
    sizes = work.groupby("_shape", sort=False)["model"].nunique()
    rank = {s: i for i, s in enumerate(sorted(sizes.index, key=lambda s: -sizes[s]))}
    best = work.groupby(["model", "_shape"], sort=False).apply(
        lambda g: (not g["_trusted"].any(), (g[g["_trusted"]] if g["_trusted"].any() else g)[
            "_per"].min()), include_groups=False
    )  # fmt: skip
    return sorted(best.index, key=lambda k: (rank[k[1]], *best[k]))


def batch_one_figure(df: pd.DataFrame, notes: list[str]) -> Plot:
    """Every model at batch 1 (its smallest batch where it has no batch-1 row): median latency
    with a whisker to p90, and throughput; one row per model, grouped by input size (the sizes
    with the most models first) and fastest first within each; noisy rows hidden."""
    g = _smallest_batch(df)
    pairs = _order(g)
    if len(pairs) > MAX_DOTS:
        notes.append(
            f"{len(pairs) - MAX_DOTS} more models not drawn here "
            f"({', '.join(m for m, _ in pairs[MAX_DOTS:][:6])}...): see the table of cases"
        )
        pairs = pairs[:MAX_DOTS]
    batch = g.groupby(["model", g["input_shape"].astype(object).fillna("?")])["batch_size"].min()
    shape = g["input_shape"].astype(object).fillna("?")
    trusted_any = g["quality"].isin(TRUSTED).groupby([g["model"], shape]).any()
    label = {
        k: f"{k[0]} · {k[1]}"
        + (f" (batch {units.integer(batch[k])})" if batch[k] != 1 else "")
        + ("" if trusted_any[k] else " (noisy only)")
        for k in pairs
    }
    g = g.assign(_label=[label.get((m, s if isinstance(s, str) else "?")) for m, s in zip(
        g["model"], g["input_shape"], strict=True)])  # fmt: skip
    g = g[g["_label"].notna()]
    col = colors(df["series"])
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("median latency per step (whisker: p90)", "throughput (samples / s)"),
    )
    seen: set[str] = set()
    for series, s in g.groupby("series", sort=False):
        trusted, noisy = split(s)
        for part, hidden in ((trusted, False), (noisy, True)):
            if part.empty:
                continue
            common = {
                "y": [ptext(t) for t in part["_label"]],
                "mode": "markers",
                "marker": {"color": col[series], "size": 8, "symbol": "circle"},
                "hovertext": part["_hover"].tolist(),
                **series_hover(series, part),
                "legendgroup": ptext(series),
                "name": ptext(series),
            }
            lat = {**common, "x": values(part["latency_s_median"]),
                   "error_x": _whisker(part, col[series], "x"),
                   "showlegend": False if hidden else legend_once(seen, series)}  # fmt: skip
            tput = {**common, "x": values(part["throughput_per_s"]), "showlegend": False}
            if hidden:
                lat, tput = noisy_style(lat), noisy_style(tput)
            fig.add_trace(go.Scatter(**lat), row=1, col=1)
            fig.add_trace(go.Scatter(**tput), row=1, col=2)
    trusted, noisy = split(g)
    span = trusted if not trusted.empty else noisy
    lat_span = values(span["latency_s_median"]) + values(span["latency_s_p90"])
    tput_span = values(span["throughput_per_s"])
    lat = log_range(lat_span, kind="seconds")
    tput = log_range(tput_span, kind="count")
    if lat:
        fig.update_xaxes(**lat, row=1, col=1)
    if tput:
        fig.update_xaxes(**tput, row=1, col=2)
    order = [ptext(label[k]) for k in pairs]
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], type="category")
    batches = sorted({units.integer(b) for b in g["batch_size"]}, key=int)
    title = (
        f"Every model at batch {', '.join(batches)}: latency and throughput, fastest first "
        "within each input size"
    )
    height = 190 + 22 * len(pairs)
    style(fig, title, height=height)
    fig.update_layout(margin={"t": 80, "l": 220, "b": 100}, legend=legend_below(height, 80, 100))
    if (g["quality"] == "noisy").any():
        notes.append(NOISY_NOTE)
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
            traces, span = curve_traces(pts, "samples_per_j", col[series], seen)
            for trace in traces:
                fig.add_trace(trace, row=row, col=c)
            ys += span
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
