"""Speed against cost: throughput at each model's best batch size against MACs per sample.

Inference and training in separate panels (a training step costs about 3x the forward MACs:
the backward pass computes gradients for the inputs and for the weights, each about one
forward), the Pareto front of each setting drawn and labelled, every model named in the hover.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.core import units
from harness.report.data import (
    drawable,
    missing_summary,
    number,
    prepared,
    records,
    values,
    variant_texts,
    varying_dims,
)
from harness.report.facets import case_hover, ordered, series_hover
from harness.report.noisy import NOISY_NOTE, noisy_style, split
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

TRAINING_MAC_FACTOR = 3  # forward + backward (about 2x forward: input and weight gradients)


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


def _noisy_points(
    fig: go.Figure, rows: pd.DataFrame, factor: int, col: dict[str, str], panel: int
) -> None:
    """Each model's best noisy row, hidden until noisy rows are shown; never on the front."""
    for series, s in rows.groupby("cost_series", sort=False):
        trace = {
            "x": [c * factor for c in s["macs_per_sample"]],
            "y": values(s["throughput_per_s"]),
            "name": ptext(series),
            "legendgroup": ptext(series),
            "marker": {"color": col[series], "size": 9, "symbol": "circle"},
            "hovertext": [
                case_hover(
                    r,
                    f"{units.si(r['macs_per_sample'], 'MACs')} per sample forward",
                    f"throughput {units.rate(r['throughput_per_s'])} (best batch)",
                )
                for r in records(s)
            ],
            **series_hover(series, s),
        }
        fig.add_trace(go.Scatter(**noisy_style(trace)), row=1, col=panel)


def cost_figure(cases: pd.DataFrame) -> Plot | Missing:
    """Throughput against MACs per sample at each model's best batch size: inference and
    training in separate panels (a training step costs about 3x the forward MACs), the Pareto
    front of each curve drawn and labelled, the other models named in the hover."""
    full = prepared(cases)
    df = drawable(full)
    title = "Speed against cost: throughput at the best batch size against MACs per sample"
    dims = [d for d in varying_dims(df) if d != "mode"]
    key = df["config_short"].astype(str)
    if dims and key.nunique() <= 1:
        key = variant_texts(df, dims).astype(str)
    elif dims:
        key = key.str.cat(variant_texts(df, dims).astype(str), sep=" · ")
    df = df.assign(cost_series=key)
    trusted, noisy = split(df)
    best = best_per_model(trusted, "cost_series")  # the front: valid rows only
    best_noisy = best_per_model(noisy, "cost_series")
    if best.empty and not best_noisy.empty:
        best = best_noisy.iloc[0:0]
    if best.empty and best_noisy.empty:
        return Missing(
            title,
            missing_summary(full, "throughput_per_s", "throughput")
            or ["no case has both a throughput and a MAC count"],
        )
    notes: list[str] = []
    both = pd.concat([best, best_noisy])
    modes = [m for m in ("inference", "training") if (both["mode"] == m).any()]
    others = [m for m in ordered(both["mode"]) if m not in modes]
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
    col = colors(both["cost_series"])
    seen: set[str] = set()
    for p, mode in enumerate(panels, start=1):
        factor = TRAINING_MAC_FACTOR if mode == "training" else 1
        g = best[best["mode"] == mode]
        xs_all: list[float] = []
        _noisy_points(fig, best_noisy[best_noisy["mode"] == mode], factor, col, p)
        named: set[str] = set()  # a model on several settings' fronts is labelled once
        for series, s in g.groupby("cost_series", sort=False):
            x = [c * factor for c in s["macs_per_sample"]]
            xs_all += x
            front = set(pareto_front(s))
            recs = records(s)
            labels = []
            for i, r in zip(s.index, recs, strict=True):
                on = i in front and r["model"] not in named
                labels.append(ptext(r["model"]) if on else "")
                named |= {r["model"]} if on else set()
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
        if g.empty:  # only noisy rows in this panel: their range
            g = best_noisy[best_noisy["mode"] == mode]
            xs_all = [c * factor for c in g["macs_per_sample"]]
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
        "is both cheaper and faster), from valid rows; every point names its model in the hover."
    )
    if not best_noisy.empty:
        notes.append(NOISY_NOTE)
    return Plot(fig, notes)
