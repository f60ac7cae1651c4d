"""Shared look of the report's figures: layout defaults, colours, notes and placeholders.

A placeholder is a small figure that says *why* a figure has nothing to draw (no power was
measured, one device only...), so missing data is visible as missing, never drawn as zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import plotly.colors
import plotly.graph_objects as go

from harness.report.data import esc

PALETTE: tuple[str, ...] = (
    *plotly.colors.qualitative.Plotly,
    *plotly.colors.qualitative.Dark24,
    *plotly.colors.qualitative.Alphabet,
)
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"
NOTE_LINE_PX = 16


def colors(keys: Iterable[str]) -> dict[str, str]:
    """One stable colour per key, in order of first appearance."""
    out: dict[str, str] = {}
    for key in keys:
        if key not in out:
            out[key] = PALETTE[len(out) % len(PALETTE)]
    return out


def style(fig: go.Figure, title: str, *, height: int = 420, legend: bool = True) -> go.Figure:
    """Apply the report's layout: ``title`` is escaped text (the caller escapes data in it)."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}},
        template="plotly_white",
        height=height,
        font={"family": FONT, "size": 12},
        margin={"l": 70, "r": 20, "t": 60, "b": 60},
        showlegend=legend,
        legend={"font": {"size": 11}},
        hoverlabel={"align": "left"},
    )
    return fig


def add_notes(fig: go.Figure, lines: Sequence[str], *, prefix: str = "") -> go.Figure:
    """Write escaped ``lines`` under the plot area (what is missing and why, approximations)."""
    if not lines:
        return fig
    shown = [wrap(line) for line in ([prefix + lines[0], *lines[1:]] if prefix else lines)]
    n = sum(line.count("<br>") + 1 for line in shown)
    margin_b = fig.layout.margin.b or 60
    fig.update_layout(
        margin={"b": margin_b + 12 + NOTE_LINE_PX * n},
        height=(fig.layout.height or 420) + 12 + NOTE_LINE_PX * n,
    )
    fig.add_annotation(
        text="<br>".join(shown),
        xref="paper",
        yref="paper",
        x=0,
        y=0,
        xanchor="left",
        yanchor="top",
        yshift=-(margin_b - 8),
        showarrow=False,
        align="left",
        font={"size": 11, "color": "#555"},
    )
    return fig


def wrap(line: str, width: int = 140) -> str:
    """Break an escaped line at spaces (never inside an entity) so it stays inside a figure."""
    out: list[str] = []
    cur = ""
    for word in line.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    out.append(cur)
    return "<br>".join(out)


def placeholder(title: str, lines: Sequence[str]) -> go.Figure:
    """A figure with no data and a visible reason: ``title`` and ``lines`` are escaped text."""
    lines = [wrap(line) for line in lines]
    n = sum(line.count("<br>") + 1 for line in lines)
    fig = go.Figure()
    style(fig, title, height=110 + NOTE_LINE_PX * n, legend=False)
    fig.update_layout(margin={"t": 50, "b": 10})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text="<br>".join(lines) if lines else "nothing to show",
        xref="paper",
        yref="paper",
        x=0,
        y=1,
        xanchor="left",
        yanchor="top",
        showarrow=False,
        align="left",
        font={"size": 13, "color": "#a33"},
    )
    return fig


def hover(*lines: str) -> str:
    """Hover text from unescaped lines: each escaped, joined with the one tag plotly needs."""
    return "<br>".join(esc(line) for line in lines)


def log_batch_axis(fig: go.Figure, batch_sizes: Iterable[float], **where: int) -> None:
    """A log2-spaced batch-size x axis with a tick at every batch size present."""
    ticks = sorted({int(b) for b in batch_sizes})
    fig.update_xaxes(
        type="log",
        tickvals=ticks,
        ticktext=[str(t) for t in ticks],
        title_text="batch size",
        **where,
    )
