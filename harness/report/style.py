"""Shared look of the report's figures: layout, colours, labelled log axes, hollow markers.

A figure function returns a ``Plot`` (the plotly figure and the plain-text notes printed under
it as HTML, so a note can never overlap an axis label) or a ``Missing`` (nothing to draw, and
why, shown as a red paragraph instead of an empty figure).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.colors
import plotly.graph_objects as go

from harness.core import units
from harness.report.text import ptext

PALETTE: tuple[str, ...] = (
    *plotly.colors.qualitative.Plotly,
    *plotly.colors.qualitative.Dark24,
)
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"
MAX_TICKS = 7
# Noisy rows are drawn with the open variant of their marker: the measurement is shown, and
# visibly not trusted (the reason is in the hover and in the table).
HOLLOW = "-open"


@dataclass
class Plot:
    """One figure block: a plotly figure and notes (plain text) printed under it."""

    figure: go.Figure
    notes: list[str] = field(default_factory=list)


@dataclass
class Missing:
    """A figure with nothing to draw: its title and why (plain text), shown as a paragraph."""

    title: str
    lines: list[str] = field(default_factory=list)


def colors(keys: Iterable[str]) -> dict[str, str]:
    """One stable colour per key, in order of first appearance."""
    out: dict[str, str] = {}
    for key in keys:
        if key not in out:
            out[key] = PALETTE[len(out) % len(PALETTE)]
    return out


def style(fig: go.Figure, title: str, *, height: int = 420, legend: bool = True) -> go.Figure:
    """Apply the report's layout. ``title`` is plain text (escaped here for plotly)."""
    fig.update_layout(
        title={"text": ptext(title), "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        template="plotly_white",
        height=height,
        font={"family": FONT, "size": 12},
        margin={"l": 70, "r": 20, "t": 60, "b": 50},
        showlegend=legend,
        legend={"font": {"size": 11}, "groupclick": "toggleitem"},
        hoverlabel={"align": "left"},
    )
    return fig


def symbols(qualities: Iterable[Any], base: str = "circle") -> list[str] | str:
    """The marker of each point: ``base``, or its open variant for a noisy row (one value for
    the whole trace when every point has the same)."""
    out = [base + HOLLOW if q == "noisy" else base for q in qualities]
    return out[0] if out and len(set(out)) == 1 else out


def validity_line(quality: Any, reason: Any) -> str:
    """The hover line that says a point is noisy and why ("" for a valid point)."""
    if quality == "noisy":
        return f"NOISY (drawn hollow): {reason if isinstance(reason, str) else 'no reason'}"
    if quality == "unassessed":
        return "validity not assessed (an older file)"
    return ""


def _formatter(kind: str) -> Callable[[float], str]:
    if kind == "seconds":
        return lambda v: units.seconds(v, micro="µ")
    if kind == "bytes":
        return lambda v: units.nbytes(v, digits=0)
    if kind == "flops":
        return lambda v: units.si(v, "FLOP/s")
    if kind == "ratio":
        return lambda v: units.ratio(v)
    return lambda v: units.si(v)


def _thin(ticks: list[float], base: float) -> list[float]:
    """At most ``MAX_TICKS`` ticks: 1-2-5 first, then 1-only, then every other decade."""
    if len(ticks) <= MAX_TICKS:
        return ticks
    step = 1024.0 if base != 10 else 10.0
    ones = [t for t in ticks if abs(math.log(t, step) - round(math.log(t, step))) < 1e-9]
    if base != 10 and len(ones) < 2:
        ones = [t for t in ticks if abs(math.log10(t) - round(math.log10(t))) < 1e-9] or ones
    while len(ones) > MAX_TICKS:
        ones = ones[::2]
    return ones if len(ones) >= 2 else ticks[:: max(1, len(ticks) // MAX_TICKS)]


def log_range(
    data: Iterable[Any], *, kind: str = "count", min_ratio: float = 10.0, pad: float = 1.25
) -> dict[str, Any] | None:
    """Axis settings for a labelled log axis over ``data``: 1-2-5 ticks labelled in the
    quantity's unit (µs/ms/s, KiB/MiB/GiB, K/M/G), and a range spanning at least ``min_ratio``
    (a factor of 10 by default) around the data, so a 5% spread between two points is not
    stretched over the whole axis. None when there is no positive value."""
    vals = [v for v in (units.value_of(x) for x in data) if v is not None and v > 0]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if hi / lo < min_ratio:
        centre = math.sqrt(lo * hi)
        lo, hi = centre / math.sqrt(min_ratio), centre * math.sqrt(min_ratio)
    lo, hi = lo / pad, hi * pad
    base = 1024.0 if kind == "bytes" else 10.0
    ticks = _thin(units.ticks_125(lo, hi, base=base), base)
    if ticks:
        lo, hi = min(lo, ticks[0] / 1.1), max(hi, ticks[-1] * 1.1)
    fmt = _formatter(kind)
    return {
        "type": "log",
        "range": [math.log10(lo), math.log10(hi)],
        "tickvals": ticks,
        "ticktext": [fmt(t) for t in ticks],
    }


def linear_axis(data: Iterable[Any], *, kind: str = "count", ticks: int = 5) -> dict[str, Any]:
    """A linear axis from 0 with at most ``ticks`` + 1 ticks at a 1-2-5 step, labelled in the
    quantity's unit (bytes in KiB/MiB/GiB)."""
    vals = [v for v in (units.value_of(x) for x in data) if v is not None and math.isfinite(v)]
    top = max([v for v in vals if v > 0], default=0.0)
    if top <= 0:
        return {"rangemode": "tozero"}
    base = 1024.0 if kind == "bytes" else 10.0
    steps = units.ticks_125(top / (ticks * 20), top, base=base)
    step = next((s for s in steps if top / s <= ticks), top)
    vals_ = [k * step for k in range(int(top // step) + 1)]
    fmt = _formatter(kind)
    return {
        "range": [0, top * 1.05],
        "tickvals": vals_,
        "ticktext": ["0" if t == 0 else fmt(t) for t in vals_],
    }


def batch_axis(batch_sizes: Iterable[Any]) -> dict[str, Any]:
    """A log2-spaced batch-size axis with a tick at every batch size present."""
    ticks = sorted({int(v) for v in (units.value_of(b) for b in batch_sizes) if v is not None})
    if len(ticks) > 10:
        ticks = [t for t in ticks if t & (t - 1) == 0] or ticks
    span = [max(ticks[0], 1) / 1.4, ticks[-1] * 1.4] if ticks else [0.7, 1.4]
    return {
        "type": "log",
        "range": [math.log10(span[0]), math.log10(span[1])],
        "tickvals": ticks,
        "ticktext": [str(t) for t in ticks],
    }


def legend_below(height: int, top: int, bottom: int) -> dict[str, Any]:
    """A horizontal legend under the plot area, below the x axis title (``bottom`` px of margin
    hold the tick labels, the axis title and the legend's first line)."""
    area = max(1, height - top - bottom)
    return {"orientation": "h", "x": 0, "xanchor": "left", "y": -62 / area, "yanchor": "top"}


def legend_once(seen: set[str], name: str) -> bool:
    """True the first time ``name`` is drawn in a figure (one legend entry per series)."""
    if name in seen:
        return False
    seen.add(name)
    return True


def short_list(items: Sequence[str], limit: int = 8) -> str:
    """``a, b, c and 5 more``."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"
