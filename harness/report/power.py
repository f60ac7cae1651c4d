"""The power trace figure: power over time during the timed rounds of each recorded case.

Reads the ``power`` table (run_id, case_id, t_s, power_w) that the power monitor writes beside
the cases; without one, the figure says why from the cases' ``power_source``.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from harness.core import units
from harness.report.data import (
    POWER_REASONS,
    case_label,
    missing_summary,
    normalize,
    prepared,
    values,
)
from harness.report.facets import HOVER_TEMPLATE
from harness.report.style import Missing, Plot, style
from harness.report.text import ptext


def power_trace_figure(
    power: pd.DataFrame | None, cases: pd.DataFrame, *, max_traces: int = 24, visible: int = 4
) -> Plot | Missing:
    """Power over time (W against s) of the cases that recorded a trace, one line per case;
    the first ``visible`` shown, the others a click away in the legend."""
    df = prepared(cases)
    title = "Power trace during the timed rounds"
    needed = {"run_id", "case_id", "t_s", "power_w"}
    if power is None or power.empty or not needed <= set(power.columns):
        lines = ["no power trace recorded in these results"]
        lines += missing_summary(df, "power_w_mean", "power", POWER_REASONS)[:3]
        return Missing(title, lines)
    power = normalize(power)
    info = df.drop_duplicates(["run_id", "case_id"]).set_index(["run_id", "case_id"])
    fig = go.Figure()
    groups = list(power.groupby(["run_id", "case_id"], sort=False))
    for i, ((run, case), g) in enumerate(groups[:max_traces]):
        g = g.sort_values("t_s")
        if (run, case) in info.index:
            r = info.loc[(run, case)]
            label = f"{case_label(r)} · {r['series']}"
            detail = str(r["config"])
        else:
            label, detail = str(case), str(run)
        fig.add_trace(
            go.Scatter(
                x=values(g["t_s"]),
                y=values(g["power_w"]),
                name=ptext(label),
                mode="lines",
                visible=True if i < visible else "legendonly",
                hovertext=[
                    f"{units.seconds(t, micro='µ')}: {units.si(w, 'W')}"
                    for t, w in zip(g["t_s"], g["power_w"], strict=True)
                ],
                meta=[ptext(label), ptext(detail)],
                hovertemplate=HOVER_TEMPLATE,
            )
        )
    fig.update_xaxes(title_text="time since the window started (s)")
    fig.update_yaxes(title_text="power (W)", rangemode="tozero")
    style(fig, title, height=420)
    fig.update_layout(legend={"orientation": "h", "y": -0.2, "yanchor": "top"})
    lines = []
    if len(groups) > max_traces:
        lines.append(f"{len(groups) - max_traces} more cases recorded a trace: not shown")
    return Plot(fig, lines)
