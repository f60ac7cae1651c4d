"""The per-model figures of the report: small multiples against batch size, and cost vs speed.

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

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness import units
from harness.report.data import (
    POWER_REASONS,
    drawable,
    missing_summary,
    number,
    points,
    prepared,
    records,
    values,
    variant_texts,
    varying_dims,
)
from harness.report.style import (
    Missing,
    Plot,
    batch_axis,
    colors,
    legend_below,
    legend_once,
    log_range,
    short_list,
    style,
    symbols,
    validity_line,
)
from harness.report.text import hover, ptext

MAX_FACETS = 12
MAX_DOTS = 40
MAX_SERIES = 8
FACET_COLUMNS = 4
FACET_ROW_PX = 210
TRAINING_MAC_FACTOR = 3  # forward + backward (about 2x forward: input and weight gradients)
NOT_PLOTTED = "Not plotted: "


def _ordered(items: Sequence[Any]) -> list[Any]:
    return [x for x in dict.fromkeys(items) if isinstance(x, str)]


def split_by_batches(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(models with a curve over two or more batch sizes, models measured at one only)."""
    models = _ordered(df["model"])
    with_bs = df[df["batch_size"].notna()]
    widest = with_bs.groupby(["model", "series"])["batch_size"].nunique().groupby(level=0).max()
    multi = [m for m in models if widest.get(m, 0) >= 2]
    return multi, [m for m in models if m not in set(multi)]


def _bounded_series(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """At most ``MAX_SERIES`` curves: those with the most points; the rest named in a note."""
    counts = df["series"].value_counts(sort=False)
    if len(counts) <= MAX_SERIES:
        return df
    keep = list(counts.sort_values(ascending=False, kind="stable").index[:MAX_SERIES])
    dropped = [s for s in counts.index if s not in set(keep)]
    notes.append(
        f"{len(dropped)} more settings not drawn (only the {MAX_SERIES} with the most cases "
        f"are): {short_list(dropped, 4)}; every case is in the table"
    )
    return df[df["series"].isin(keep)]


def _bounded_models(models: list[str], limit: int, notes: list[str], what: str) -> list[str]:
    if len(models) <= limit:
        return models
    notes.append(
        f"{len(models) - limit} more {what} not drawn ({short_list(models[limit:], 6)}): "
        "see the table of cases"
    )
    return models[:limit]


# The setting and configuration head every point's hover once per trace (``meta``), so each
# point carries only its own lines: a page of 2,000 cases stays small.
HOVER_TEMPLATE = "<b>%{meta[0]}</b><br>%{meta[1]}<br>%{hovertext}<extra></extra>"


def series_hover(series: str, frame: pd.DataFrame) -> dict[str, Any]:
    """The trace-level hover settings: the setting and its full configuration label."""
    config = frame["config"].iloc[0] if "config" in frame and len(frame) else ""
    return {"meta": [ptext(series), ptext(config)], "hovertemplate": HOVER_TEMPLATE}


def case_hover(r: dict[str, Any], *lines: str) -> str:
    """A point's own hover lines: model and batch, the given lines, and whether the row is
    noisy and why."""
    return hover(
        f"{r['model']}, batch {units.integer(r['batch_size'])}",
        *lines,
        validity_line(r.get("quality"), r.get("validity_reason")),
    )


def _latency_lines(r: dict[str, Any]) -> list[str]:
    p99 = units.seconds(r["latency_s_p99"], micro="µ")
    if r.get("p99_reliable") is False:
        p99 += " (unreliable: fewer than 100 samples)"
    return [
        f"median {units.seconds(r['latency_s_median'], micro='µ')}, "
        f"p90 {units.seconds(r['latency_s_p90'], micro='µ')} (whisker), p99 {p99}",
        f"throughput {units.rate(r['throughput_per_s'])}",
        f"{units.integer(r.get('rounds'))} rounds"
        + (f", stopped: {r['stop_reason']}" if isinstance(r.get("stop_reason"), str) else ""),
    ]


# ------------------------------------------------------------------------------- facet engine

Draw = Callable[[go.Figure, pd.DataFrame, int, int, set[str]], list[float | None]]


def _facets(
    df: pd.DataFrame,
    models: list[str],
    title: str,
    y_title: str,
    kind: str,
    draw: Draw,
    notes: list[str],
) -> Plot:
    """One facet per model (in ``models`` order), each drawn by ``draw`` (which returns the
    y values it drew, for that facet's axis range)."""
    cols = min(FACET_COLUMNS, len(models))
    rows = math.ceil(len(models) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[ptext(m) for m in models],
        horizontal_spacing=0.06 if cols > 1 else 0.0,
        vertical_spacing=min(0.12, 0.5 / rows) if rows > 1 else 0.0,
    )
    fig._validate = False  # the traces are built here from checked values: skip plotly's checks
    seen: set[str] = set()
    by_model = {m: g for m, g in df.groupby("model", sort=False)}
    axes: dict[str, Any] = {}
    for i, model in enumerate(models):
        row, col = divmod(i, cols)
        g = by_model[model]
        ys = draw(fig, g, row + 1, col + 1, seen)
        suffix = "" if i == 0 else str(i + 1)
        y_axis = log_range(ys, kind=kind) or {}
        x_axis = batch_axis(g["batch_size"])
        if row == rows - 1 or i + cols >= len(models):
            x_axis["title_text"] = "batch size"
        if col == 0:
            y_axis["title_text"] = ptext(y_title)
        axes[f"xaxis{suffix}"] = x_axis
        axes[f"yaxis{suffix}"] = y_axis
    fig.update_layout(axes)
    height = 150 + FACET_ROW_PX * rows
    style(fig, title, height=height)
    fig.update_layout(margin={"t": 80, "b": 100}, legend=legend_below(height, 80, 100))
    fig.update_annotations(font_size=12)
    return Plot(fig, notes)


def _series_trace(
    g: pd.DataFrame, column: str, color: str, seen: set[str], **extra: Any
) -> go.Scatter:
    series = g["series"].iloc[0]
    return go.Scatter(
        x=values(g["batch_size"]),
        y=values(g[column]),
        name=ptext(series),
        legendgroup=ptext(series),
        showlegend=legend_once(seen, series),
        mode="lines+markers",
        line={"color": color, "width": 1.5},
        marker={"color": color, "size": 7, "symbol": symbols(g["quality"])},
        hovertext=g["_hover"].tolist(),
        **series_hover(series, g),
        **extra,
    )


def _per_series(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Each curve's rows by batch size (``one_point_each`` has made them one per batch)."""
    return [
        (s, g.sort_values("batch_size", kind="stable")) for s, g in df.groupby("series", sort=False)
    ]


def one_point_each(df: pd.DataFrame, hover: Callable[[dict[str, Any]], str]) -> pd.DataFrame:
    """One row per model, curve and batch size (the latest where a point was measured twice),
    with each point's hover text in ``_hover`` (made once per figure, not per curve)."""
    df = points(df, ("model", "series", "batch_size"))
    return df.assign(_hover=[hover(r) for r in records(df)])


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
    df = _bounded_series(df, notes)
    df = one_point_each(df, lambda r: case_hover(r, *_latency_lines(r)))
    col = colors(df["series"])
    multi, single = split_by_batches(df)
    out: list[Plot | Missing] = []
    if multi:
        shown = _bounded_models(multi, MAX_FACETS, notes, "models with several batch sizes")

        def draw_latency(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
            ys: list[float | None] = []
            for series, pts in _per_series(g):
                med, p90 = values(pts["latency_s_median"]), values(pts["latency_s_p90"])
                whisker = [
                    None if m is None or p is None else max(0.0, p - m)
                    for m, p in zip(med, p90, strict=True)
                ]
                fig.add_trace(
                    _series_trace(
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
            for series, pts in _per_series(g):
                fig.add_trace(
                    _series_trace(pts, "throughput_per_s", col[series], seen), row=row, col=c
                )
                ys += values(pts["throughput_per_s"])
            return ys

        multi_df = df[df["model"].isin(shown)]
        out.append(
            _facets(
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
            _facets(
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
    models = _bounded_models(models, MAX_DOTS, notes, "models measured at one batch size")
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


# ----------------------------------------------------------------------------- speed vs cost


def _pareto(points_: list[tuple[float, float, int]]) -> list[int]:
    """Indices of the (cost, speed) points no other point beats on both (cheaper and faster),
    cheapest first."""
    front, best = [], -math.inf
    for _cost, speed, i in sorted(points_, key=lambda p: (p[0], -p[1])):
        if speed > best:
            front.append(i)
            best = speed
    return front


def best_per_model(df: pd.DataFrame, key: str = "series") -> pd.DataFrame:
    """Per model, mode and ``key``: the row with the highest measured throughput (its best
    batch size)."""
    ok = df[df["throughput_per_s"].notna() & df["macs"].notna() & df["batch_size"].notna()]
    if ok.empty:
        return ok
    mode = ok["mode"].astype(object).where(ok["mode"].notna(), "?")
    idx = ok.groupby([ok["model"], ok[key], mode], sort=False)["throughput_per_s"].idxmax()
    best = ok.loc[idx]
    return best.assign(
        macs_per_sample=[
            number(m) / number(b) for m, b in zip(best["macs"], best["batch_size"], strict=True)
        ]
    )


def pareto_front(best: pd.DataFrame) -> list[int]:
    """Row labels of ``best`` on the throughput-vs-MACs Pareto front, cheapest first."""
    pts = [
        (c, t, i)
        for c, t, i in zip(
            best["macs_per_sample"], best["throughput_per_s"], best.index, strict=True
        )
        if c is not None and t is not None and c > 0
    ]
    return _pareto(pts)


def cost_figure(cases: pd.DataFrame) -> Plot | Missing:
    """Throughput against MACs per sample at each model's best batch size: inference and
    training in separate panels (a training step costs about 3x the forward MACs), the Pareto
    front of each curve drawn and labelled, the other models named in the hover."""
    full = prepared(cases)
    df = drawable(full)
    title = "Speed against cost: throughput at the best batch size against MACs per sample"
    dims = [d for d in varying_dims(df) if d != "mode"]
    key = df["config_short"].astype(str)
    if dims:
        key = key.str.cat(variant_texts(df, dims).astype(str), sep=" · ")
    df = df.assign(cost_series=key)
    best = best_per_model(df, "cost_series")
    if best.empty:
        return Missing(
            title,
            missing_summary(full, "throughput_per_s", "throughput")
            or ["no case has both a throughput and a MAC count"],
        )
    notes: list[str] = []
    modes = [m for m in ("inference", "training") if (best["mode"] == m).any()]
    others = [m for m in _ordered(best["mode"]) if m not in modes]
    panels = modes + others
    titles = [
        "inference: forward MACs per sample"
        if m == "inference"
        else f"training: about {TRAINING_MAC_FACTOR} × forward MACs per sample"
        if m == "training"
        else f"{m}: forward MACs per sample"
        for m in panels
    ]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.08)
    col = colors(best["cost_series"])
    seen: set[str] = set()
    for p, mode in enumerate(panels, start=1):
        factor = TRAINING_MAC_FACTOR if mode == "training" else 1
        g = best[best["mode"] == mode]
        xs_all: list[float] = []
        for series, s in g.groupby("cost_series", sort=False):
            x = [c * factor for c in s["macs_per_sample"]]
            xs_all += x
            front = set(pareto_front(s))
            recs = records(s)
            labels = [
                ptext(r["model"]) if i in front else "" for i, r in zip(s.index, recs, strict=True)
            ]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=values(s["throughput_per_s"]),
                    name=ptext(series),
                    legendgroup=ptext(series),
                    showlegend=legend_once(seen, series),
                    mode="markers+text",
                    text=labels,
                    textposition=[
                        "top center" if k % 2 == 0 else "bottom center" for k in range(len(labels))
                    ],
                    textfont={"size": 10, "color": "#444"},
                    marker={
                        "color": col[series],
                        "size": 9,
                        "symbol": symbols(s["quality"]),
                        "line": {"width": 1, "color": col[series]},
                    },
                    hovertext=[
                        case_hover(
                            r,
                            f"{units.si(r['macs_per_sample'], 'MACs')} per sample forward"
                            + (
                                f", about {units.si(xv, 'MACs')} per training step sample"
                                if factor != 1
                                else ""
                            ),
                            f"throughput {units.rate(r['throughput_per_s'])} (best batch)",
                            f"{units.count(r['params'])} parameters",
                            "on the Pareto front" if i in front else "",
                        )
                        for i, r, xv in zip(s.index, recs, x, strict=True)
                    ],
                    **series_hover(series, s),
                ),
                row=1,
                col=p,
            )
            order = [i for i in pareto_front(s)]
            fx = [s.loc[i, "macs_per_sample"] * factor for i in order]
            fy = [s.loc[i, "throughput_per_s"] for i in order]
            if len(order) > 1:
                fig.add_trace(
                    go.Scatter(
                        x=fx,
                        y=fy,
                        mode="lines",
                        line={"color": col[series], "width": 1, "dash": "dot"},
                        hoverinfo="skip",
                        showlegend=False,
                        legendgroup=ptext(series),
                    ),
                    row=1,
                    col=p,
                )
        axis = log_range(xs_all, kind="macs", min_ratio=100, pad=2.0)
        if axis:
            axis["ticktext"] = [units.si(t, "MAC") for t in axis["tickvals"]]
            fig.update_xaxes(**axis, row=1, col=p)
        ys = log_range(g["throughput_per_s"], kind="count", min_ratio=100, pad=1.6)
        if ys:
            fig.update_yaxes(**ys, row=1, col=p)
    fig.update_yaxes(title_text="samples / s", col=1)
    style(fig, title, height=520)
    fig.update_layout(margin={"t": 80, "b": 100}, legend=legend_below(520, 80, 100))
    if "training" in panels:
        notes.append(
            f"Training cost is taken as {TRAINING_MAC_FACTOR} × the forward MACs: the backward "
            "pass computes gradients for the inputs and for the weights, each about one forward."
        )
    notes.append(
        "Labelled points and the dotted line: the Pareto front of each setting (no other model "
        "is both cheaper and faster); every point names its model in the hover."
    )
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
    has = _bounded_series(has, notes)
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
    models = _ordered(has["model"])
    models = _bounded_models(models, MAX_FACETS, notes, "models with energy")

    def draw(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
        ys: list[float | None] = []
        for series, pts in _per_series(g):
            fig.add_trace(
                go.Scatter(
                    x=values(pts["batch_size"]),
                    y=values(pts["samples_per_j"]),
                    name=ptext(series),
                    legendgroup=ptext(series),
                    showlegend=legend_once(seen, series),
                    mode="lines+markers",
                    line={"color": col[series], "width": 1.5},
                    marker={"color": col[series], "size": 7, "symbol": symbols(pts["quality"])},
                    hovertext=pts["_hover"].tolist(),
                    **series_hover(series, pts),
                ),
                row=row,
                col=c,
            )
            ys += values(pts["samples_per_j"])
        return ys

    return _facets(has, models, title, "samples / J", "count", draw, notes)


def memory_figure(cases: pd.DataFrame) -> list[Plot | Missing]:
    """Measured peak memory (solid, one curve per setting) beside the analytic activation
    bytes (dashed grey: the sum of the layer outputs of one forward pass) against batch size,
    one facet per model; models measured at one batch size as dots."""
    full = prepared(cases)
    df = drawable(full)
    title = "Peak memory against batch size: measured (solid) and analytic activations (dashed)"
    lost = missing_summary(
        full[full["in_figures"]], "peak_memory_bytes", "peak memory", "memory_source"
    )
    has = df[df["peak_memory_bytes"].notna() | df["activation_bytes"].notna()]
    if has.empty:
        return [Missing(title, lost or ["no case has a measured or analytic memory figure"])]
    notes = [NOT_PLOTTED + lost[0], *lost[1:]] if lost else []
    has = _bounded_series(has, notes)
    has = one_point_each(
        has,
        lambda r: case_hover(
            r,
            f"measured peak {units.nbytes(r['peak_memory_bytes'])}",
            f"analytic activations {units.nbytes(r['activation_bytes'])}",
            f"source {r['memory_source']}",
        ),
    )
    col = colors(has["series"])
    multi, single = split_by_batches(has)

    def draw(fig: go.Figure, g: pd.DataFrame, row: int, c: int, seen: set[str]):
        ys: list[float | None] = []
        for series, pts in _per_series(g):
            if pts["peak_memory_bytes"].isna().all():
                continue
            fig.add_trace(
                go.Scatter(
                    x=values(pts["batch_size"]),
                    y=values(pts["peak_memory_bytes"]),
                    name=ptext(series),
                    legendgroup=ptext(series),
                    legendgrouptitle_text="measured peak (solid)" if not seen else None,
                    showlegend=legend_once(seen, series),
                    mode="lines+markers",
                    line={"color": col[series], "width": 1.5},
                    marker={"color": col[series], "size": 7, "symbol": symbols(pts["quality"])},
                    hovertext=pts["_hover"].tolist(),
                    **series_hover(series, pts),
                ),
                row=row,
                col=c,
            )
            ys += values(pts["peak_memory_bytes"])
        analytic = g[g["activation_bytes"].notna()]
        for (dtype, shape), a in analytic.groupby(
            ["dtype", "input_shape"], sort=False, dropna=False
        ):
            a = points(a, ("dtype", "input_shape", "batch_size"))
            label = "analytic activations"
            fig.add_trace(
                go.Scatter(
                    x=values(a["batch_size"]),
                    y=values(a["activation_bytes"]),
                    name=ptext(label),
                    legendgroup="analytic",
                    legendgrouptitle_text=None if "analytic" in seen else "analytic (dashed)",
                    showlegend=legend_once(seen, "analytic"),
                    mode="lines+markers",
                    line={"color": "#777", "dash": "dash", "width": 1.5},
                    marker={"color": "#777", "size": 5, "symbol": "diamond"},
                    hovertext=[
                        hover(
                            f"{r['model']}: analytic activations ({dtype}, input {shape})",
                            f"batch {units.integer(r['batch_size'])}",
                            f"sum of layer outputs {units.nbytes(r['activation_bytes'])}",
                        )
                        for r in records(a)
                    ],
                    hoverinfo="text",
                ),
                row=row,
                col=c,
            )
            ys += values(a["activation_bytes"])
        return ys

    out: list[Plot | Missing] = []
    if multi:
        models = _bounded_models(multi, MAX_FACETS, notes, "models with several batch sizes")
        out.append(_facets(has, models, title, "bytes", "bytes", draw, notes))
    if single:
        out.append(_memory_dots(has, single, [] if multi else notes, col))
    out[-1].notes.append(
        "Analytic activations: the sum of the leaf layers' output bytes of one forward pass "
        "(static, from the profile); the measured peak adds weights, workspace and the "
        "allocator's rounding. Hollow markers: noisy rows."
    )
    return out


def _memory_dots(
    df: pd.DataFrame, models: list[str], notes: list[str], col: dict[str, str]
) -> Plot:
    """Measured peak and analytic activations of models measured at one batch size."""
    models = _bounded_models(models, MAX_DOTS, notes, "models measured at one batch size")
    g = df[df["model"].isin(models)]
    fig = go.Figure()
    seen: set[str] = set()
    for series, s in g[g["peak_memory_bytes"].notna()].groupby("series", sort=False):
        fig.add_trace(
            go.Scatter(
                x=values(s["peak_memory_bytes"]),
                y=[ptext(m) for m in s["model"]],
                mode="markers",
                name=ptext(series),
                legendgroup=ptext(series),
                legendgrouptitle_text="measured peak" if not seen else None,
                showlegend=legend_once(seen, series),
                marker={"color": col[series], "size": 9, "symbol": symbols(s["quality"])},
                hovertext=[
                    case_hover(
                        r,
                        f"measured peak {units.nbytes(r['peak_memory_bytes'])}",
                        f"source {r['memory_source']}",
                    )
                    for r in records(s)
                ],
                **series_hover(series, s),
            )
        )
    a = g[g["activation_bytes"].notna()].drop_duplicates(
        ["model", "dtype", "input_shape", "batch_size"]
    )
    if not a.empty:
        fig.add_trace(
            go.Scatter(
                x=values(a["activation_bytes"]),
                y=[ptext(m) for m in a["model"]],
                mode="markers",
                name="sum of layer outputs",
                legendgroup="analytic",
                legendgrouptitle_text="analytic",
                marker={"color": "#777", "size": 8, "symbol": "diamond"},
                hovertext=[
                    hover(
                        f"{r['model']}: analytic activations ({r['dtype']}, input "
                        f"{r['input_shape']}, batch {units.integer(r['batch_size'])})",
                        f"sum of layer outputs {units.nbytes(r['activation_bytes'])}",
                    )
                    for r in records(a)
                ],
                hoverinfo="text",
            )
        )
    axis = log_range(list(g["peak_memory_bytes"]) + list(g["activation_bytes"]), kind="bytes")
    if axis:
        fig.update_xaxes(**axis)
    order = [ptext(m) for m in models]
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], type="category")
    batches = sorted({units.integer(b) for b in g["batch_size"]})
    height = 190 + 22 * len(models)
    style(
        fig,
        f"Memory of models measured at one batch size (batch {', '.join(batches)}): measured "
        "peak and analytic activations",
        height=height,
    )
    fig.update_layout(margin={"t": 60, "l": 160, "b": 100}, legend=legend_below(height, 60, 100))
    return Plot(fig, notes)


__all__ = [
    "MAX_FACETS",
    "cost_figure",
    "energy_figure",
    "latency_figures",
    "memory_figure",
    "split_by_batches",
]
