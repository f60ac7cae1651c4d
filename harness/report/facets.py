"""Small multiples against batch size: one facet per model, shared by the per-model figures.

Each figure that plots a quantity against batch size (latency, throughput, memory, energy) draws
one facet per model through ``facets``: a shared batch axis per facet, each facet's own labelled
log axis spanning at least a factor of 10 (``style.log_range``), one colour per curve (a
configuration and its varying settings) and one legend entry per curve. Figures are bounded:
at most ``MAX_FACETS`` models and ``MAX_SERIES`` curves (those with the most cases); what is
left out is named in the notes, and the table of cases holds every row.

A point's hover carries its own lines (``case_hover``); the curve's setting and configuration
head it once per trace (``series_hover``), so a page of 2,000 cases stays small.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.core import units
from harness.core.stats import MIN_SAMPLES_FOR_CI, half_width_rel
from harness.report.data import (
    number,
    points,
    records,
    values,
)
from harness.report.noisy import TRUSTED, axis_values, noisy_style, split
from harness.report.style import (
    Plot,
    batch_axis,
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
NOT_PLOTTED = "Not plotted: "


def ordered(items: Sequence[Any]) -> list[Any]:
    return [x for x in dict.fromkeys(items) if isinstance(x, str)]


def split_by_batches(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(models with a curve over two or more batch sizes, models measured at one only)."""
    models = ordered(df["model"])
    with_bs = df[df["batch_size"].notna()]
    widest = with_bs.groupby(["model", "series"])["batch_size"].nunique().groupby(level=0).max()
    multi = [m for m in models if widest.get(m, 0) >= 2]
    return multi, [m for m in models if m not in set(multi)]


def bounded_series(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
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


def bounded_models(models: list[str], limit: int, notes: list[str], what: str) -> list[str]:
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


def latency_lines(r: dict[str, Any]) -> list[str]:
    p99 = units.seconds(r["latency_s_p99"], micro="µ")
    if r.get("p99_reliable") is False:
        p99 += " (unreliable: fewer than 100 samples)"
    rounds = number(r.get("rounds"))
    return [
        f"median {units.seconds(r['latency_s_median'], micro='µ')}{interval_text(r)}, "
        f"p90 {units.seconds(r['latency_s_p90'], micro='µ')} (whisker), p99 {p99}",
        f"throughput {units.rate(r['throughput_per_s'])}",
        f"{units.integer(rounds)} round{'' if rounds == 1 else 's'}"
        + (f", stopped: {r['stop_reason']}" if isinstance(r.get("stop_reason"), str) else ""),
    ]


def interval_text(r: dict[str, Any]) -> str:
    """`` ±1.2%`` (the half-width of the median's 95% interval), or `` ±? (1 round)`` where the
    rounds are too few for one (an interval of one round is [median, median]: ±0.0% would
    read as the most precise number of the page)."""
    rounds = number(r.get("rounds"))
    half = half_width_rel(
        r.get("latency_s_median_ci_low"), r.get("latency_s_median_ci_high"), r["latency_s_median"]
    )
    if half is None or rounds is None or rounds < MIN_SAMPLES_FOR_CI:
        shown = "?" if rounds is None else f"{int(rounds)} round{'' if rounds == 1 else 's'}"
        return f" ±? ({shown})"
    return f" ±{units.percent(half)}"


# ------------------------------------------------------------------------------- facet engine

Draw = Callable[[go.Figure, pd.DataFrame, int, int, set[str]], list[float | None]]


def facets(
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
    by_model = {m: g for m, g in df.groupby("model", sort=False)}
    titles = [
        ptext(m) + ("" if by_model[m]["quality"].isin(TRUSTED).any() else " (noisy rows only)")
        for m in models
    ]
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.06 if cols > 1 else 0.0,
        vertical_spacing=min(0.12, 0.5 / rows) if rows > 1 else 0.0,
    )
    fig._validate = False  # the traces are built here from checked values: skip plotly's checks
    seen: set[str] = set()
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


def series_kwargs(g: pd.DataFrame, column: str, color: str, seen: set[str], **extra: Any) -> dict:
    """The scatter settings of one curve: ``g``'s points joined by a line, one legend entry."""
    series = g["series"].iloc[0]
    return {
        "x": values(g["batch_size"]),
        "y": values(g[column]),
        "name": ptext(series),
        "legendgroup": ptext(series),
        "showlegend": legend_once(seen, series),
        "mode": "lines+markers",
        "line": {"color": color, "width": 1.5},
        "marker": {"color": color, "size": 7, "symbol": symbols(g["quality"])},
        "hovertext": g["_hover"].tolist(),
        **series_hover(series, g),
        **extra,
    }


def series_trace(
    g: pd.DataFrame, column: str, color: str, seen: set[str], **extra: Any
) -> go.Scatter:
    return go.Scatter(**series_kwargs(g, column, color, seen, **extra))


def curve_traces(
    pts: pd.DataFrame,
    column: str,
    color: str,
    seen: set[str],
    extra: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
    axis: Callable[[pd.DataFrame], list[float | None]] | None = None,
) -> tuple[list[go.Scatter], list[float | None]]:
    """One curve through the trusted points and, apart, its noisy points (hidden, no line:
    ``harness.report.noisy``); and the values its axis spans (the trusted ones, else the
    noisy ones). ``extra`` gives per-subset settings (a whisker), ``axis`` the values a subset
    spans (default: ``column``)."""
    trusted, noisy = split(pts)
    span = axis or (lambda d: values(d[column]))
    traces = []
    if not trusted.empty:
        traces.append(
            series_trace(trusted, column, color, seen, **(extra(trusted) if extra else {}))
        )
    if not noisy.empty:
        kwargs = series_kwargs(noisy, column, color, set(), **(extra(noisy) if extra else {}))
        traces.append(go.Scatter(**noisy_style(kwargs)))
    ys = axis_values(span(trusted) if not trusted.empty else [], span(noisy) if not noisy.empty
                     else [])  # fmt: skip
    return traces, ys


def per_series(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Each curve's rows by batch size (``one_point_each`` has made them one per batch)."""
    return [
        (s, g.sort_values("batch_size", kind="stable")) for s, g in df.groupby("series", sort=False)
    ]


def one_point_each(df: pd.DataFrame, hover: Callable[[dict[str, Any]], str]) -> pd.DataFrame:
    """One row per model, curve and batch size (the latest where a point was measured twice),
    with each point's hover text in ``_hover`` (made once per figure, not per curve)."""
    df = points(df, ("model", "series", "batch_size"))
    return df.assign(_hover=[hover(r) for r in records(df)])
