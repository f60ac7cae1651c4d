"""Memory against batch size: measured peak (per setting) beside the analytic activations.

The two measure different things (``FOOTNOTE``): the measured peak is the most memory live at
one moment of a step, weights and input included; the analytic line is the sum of every leaf
layer's output of one forward pass, as if all were kept at once. In inference each output is
freed once the next layer has read it, so the peak can sit below the sum; in training the
outputs are kept for the backward pass. Peak memory does not depend on timing noise, so every
measured row is drawn, noisy or not. Bytes are in binary units on every axis and in every hover.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from harness.core import units
from harness.report.data import (
    drawable,
    missing_summary,
    points,
    prepared,
    records,
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
    one_point_each,
    per_series,
    series_hover,
    series_trace,
    split_by_batches,
)
from harness.report.style import (
    Missing,
    Plot,
    colors,
    legend_below,
    legend_once,
    log_range,
    style,
)
from harness.report.text import hover, ptext

FOOTNOTE = (
    "Measured peak (solid): the most memory live at any one moment of one step, weights and "
    "input included (CPU: every tensor the step allocates, tracked op by op, without kernels' "
    "scratch buffers; GPU: the CUDA allocator's peak, rounded to its blocks, with cuDNN/cuBLAS "
    "workspaces). Analytic activations (dashed): the sum of every layer's output of one forward "
    "pass, as if all were kept at once. In inference nothing is kept for a backward pass: each "
    "output is freed once the next layer has read it, so only a few are live together and the "
    "peak can be below the sum; in training the outputs are kept for the backward pass and the "
    "peak adds gradients and optimizer state. Peak memory does not depend on timing noise: "
    "every measured row is drawn, noisy or not."
)


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
    has = bounded_series(has, notes)
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
        for series, pts in per_series(g):
            if pts["peak_memory_bytes"].isna().all():
                continue
            title = "measured peak (solid)" if not seen else None
            fig.add_trace(
                series_trace(
                    pts,
                    "peak_memory_bytes",
                    col[series],
                    seen,
                    legendgrouptitle_text=title,
                    marker={"color": col[series], "size": 7, "symbol": "circle"},
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
        models = bounded_models(multi, MAX_FACETS, notes, "models with several batch sizes")
        out.append(facets(has, models, title, "bytes", "bytes", draw, notes))
    if single:
        out.append(_memory_dots(has, single, [] if multi else notes, col))
    out[-1].notes.append(FOOTNOTE)
    return out


def _memory_dots(
    df: pd.DataFrame, models: list[str], notes: list[str], col: dict[str, str]
) -> Plot:
    """Measured peak and analytic activations of models measured at one batch size."""
    models = bounded_models(models, MAX_DOTS, notes, "models measured at one batch size")
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
                marker={"color": col[series], "size": 9, "symbol": "circle"},
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
