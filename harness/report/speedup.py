"""Across hardware: median latency ratios between configurations, per model.

Rows are grouped by configuration (host, device, CPU threads, torch version: ``runs``), one run
per configuration and one row per case (``select_runs``), so four runs on one machine are not
four devices, and a 1-thread run is labelled as such. The first configuration (of the first file
given) is the baseline; each other one is compared with it by ``harness.compare`` (the same
join, bootstrap intervals and verdicts as ``cnnbench compare``, so the figure never calls
faster what compare calls noisy). Per model the speedups (baseline median / other median:
above 1, the other is faster) of the cases compare judged are summarised by their geometric
mean with a whisker over the model's range; a model whose every shared case is noisy is drawn
hollow from those noisy ratios, hidden until the page's noisy box is ticked, and says so. Two
configurations whose cases differ in one setting (1 and 2 threads) are compared across it.
Notes go under the figure as text: they never overlap the axis labels.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from harness.compare import compare_runs
from harness.core import units
from harness.report.data import drawable, prepared
from harness.report.noisy import noisy_style
from harness.report.style import Missing, Plot, colors, log_range, short_list, style
from harness.report.text import hover, ptext

MAX_MODELS = 40


def _geo(ratios: list[float]) -> float:
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


JUDGED = ("faster", "slower", "same")


def _speedups(
    base: pd.DataFrame, other: pd.DataFrame, labels: tuple[str, str]
) -> tuple[pd.DataFrame, str, dict[str, str]]:
    """compare's latency rows for the shared cases (``speedup`` = 1 / (other / baseline), the
    verdict, both medians), the setting compared across ("" for none: the case key matched) as
    ``threads 2 (default) → 1``, and compare's verdict per model."""
    result = compare_runs(base, other, metrics=("latency",), labels=labels, across="auto")
    cases = result.cases
    cases = cases[cases["ratio"].notna() & (cases["ratio"] > 0)]
    across = ""
    if len(result.across):
        a = result.across.iloc[0]
        across = f"{a['setting']} {a['baseline_value']} → {a['candidate_value']}"
    verdicts = dict(zip(result.models["model"], result.models["verdict"], strict=True))
    return cases.assign(speedup=1.0 / cases["ratio"]), across, verdicts


def _trace(points: dict[str, list], name: str, color: str, hidden: bool) -> go.Scatter:
    """The markers of one configuration: judged models, or (``hidden``) the models whose every
    shared case is noisy, drawn only when the page's noisy box is ticked."""
    trace = {
        "x": points["x"],
        "y": points["y"],
        "mode": "markers",
        "name": ptext(name),
        "legendgroup": ptext(name),
        "marker": {"color": color, "size": 10, "symbol": "circle",
                   "line": {"width": 1.5, "color": color}},
        "error_y": {"type": "data", "symmetric": False, "array": points["hi"],
                    "arrayminus": points["lo"], "color": color, "thickness": 1.5, "width": 4},
        "hovertext": points["hover"],
        "hoverinfo": "text",
    }  # fmt: skip
    return go.Scatter(**(noisy_style(trace) if hidden else trace))


def speedup_figure(cases: pd.DataFrame) -> Plot | Missing:
    """Per model, the geometric mean over its judged shared cases of (baseline median latency /
    other configuration's median latency), whisker from the smallest to the largest ratio."""
    df = drawable(prepared(cases))
    df = df[df["latency_s_median"].notna() & (df["latency_s_median"] > 0)]
    configs = list(dict.fromkeys(df["config_short"]))
    title = "Across configurations: speedup against the first configuration"
    if len(configs) < 2:
        only = configs[0] if configs else "none"
        return Missing(
            title,
            [
                f"One configuration only ({only}): give result files from several devices, hosts "
                "or thread counts to compare them."
            ],
        )
    base_label = configs[0]
    base = df[df["config_short"] == base_label]
    base_full = base["config"].iloc[0]
    fig = go.Figure()
    col = colors(configs)
    notes: list[str] = []
    all_ratios: list[float] = []
    noisy_ratios: list[float] = []
    model_order: list[str] = []
    for config in configs[1:]:
        other = df[df["config_short"] == config]
        try:
            joined, across, verdicts = _speedups(base, other, ("baseline", "other"))
        except ValueError as exc:  # compare's InvalidInputError: no case in common
            notes.append(f"{config}: not compared: {str(exc).split(': ', 1)[-1]}")
            continue
        only = len(base) + len(other) - 2 * len(joined)
        if only:
            notes.append(f"{config}: {only} cases measured on one side only are not compared")
        if joined.empty:
            continue
        judged = joined[joined["verdict"].isin(JUDGED)]
        geo_all = _geo(list(judged["speedup"])) if len(judged) else None
        models = list(dict.fromkeys(joined["model"]))
        if len(models) > MAX_MODELS:
            notes.append(
                f"{config}: {len(models) - MAX_MODELS} more models not drawn "
                f"({short_list(models[MAX_MODELS:], 5)}); the geometric mean counts them"
            )
            models = models[:MAX_MODELS]
        xs, ys, lo, hi, hovers, hollow = [], [], [], [], [], []
        for model in models:
            g = joined[joined["model"] == model]
            kept = g[g["verdict"].isin(JUDGED)]
            noisy_only = kept.empty
            use = g if noisy_only else kept
            r = list(use["speedup"])
            geo = _geo(r)
            xs.append(ptext(model))
            ys.append(geo)
            lo.append(geo - min(r))
            hi.append(max(r) - geo)
            (noisy_ratios if noisy_only else all_ratios).extend(r)
            hollow.append(noisy_only)
            detail = [
                f"bs {units.integer(b)}: {units.ratio(x)} {v}"
                f" ({units.seconds(m1, micro='µ')} vs {units.seconds(m2, micro='µ')})"
                for b, x, v, m1, m2 in zip(
                    g["batch_size"],
                    g["speedup"],
                    g["verdict"],
                    g["baseline_value"],
                    g["candidate_value"],
                    strict=True,
                )
            ][:8]
            hovers.append(
                hover(
                    f"{model}: {units.ratio(geo)} (geometric mean of {len(r)} "
                    f"{'noisy ' if noisy_only else 'judged '}cases); compare's verdict: "
                    f"{verdicts.get(model, '?')}",
                    f"{config} against {base_full}",
                    *detail,
                    f"and {len(g) - 8} more" if len(g) > 8 else "",
                    "every shared case is noisy on a side: compare gives no verdict (drawn "
                    "hollow, only when noisy rows are shown)"
                    if noisy_only
                    else "",
                )
            )
            model_order.append(ptext(model))
        summary = "no judged case" if geo_all is None else units.ratio(geo_all)
        if across:
            notes.append(f"{config}: compared across {across} (the cases match on every other "
                         "setting)")  # fmt: skip
        name = f"{config} ({summary}, {len(judged)} of {len(joined)} cases judged)"
        points = {"x": xs, "y": ys, "lo": lo, "hi": hi, "hover": hovers}
        for hidden in (False, True):
            keep = [i for i, h in enumerate(hollow) if h == hidden]
            if keep:
                fig.add_trace(_trace({k: [v[i] for i in keep] for k, v in points.items()},
                                     name, col[config], hidden))  # fmt: skip
    if not fig.data:
        return Missing(title, [*notes, "no case was measured in two configurations"])
    fig.add_hline(y=1, line={"color": "#888", "dash": "dot"})
    axis = log_range([*(all_ratios or noisy_ratios), 1.0], kind="ratio", min_ratio=4)
    if axis:
        fig.update_yaxes(**axis)
    fig.update_yaxes(title_text="× faster than the baseline")
    fig.update_xaxes(
        type="category",
        categoryorder="array",
        categoryarray=list(dict.fromkeys(model_order)),
        automargin=True,
        tickangle=-30 if len(set(model_order)) > 8 else 0,
    )
    style(fig, f"Speedup against {base_label} (median latency ratio per model)", height=460)
    fig.update_layout(
        scattermode="group",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left"},
        margin={"t": 90},
    )
    notes.insert(
        0,
        f"Baseline: {base_full}. Ratios and verdicts are cnnbench compare's (a case noisy on "
        "either side gets no verdict). A marker is the geometric mean of the model's ratios over "
        "the shared cases compare judged, the whisker spans its smallest to largest ratio; the "
        "legend gives each configuration's geometric mean over all judged shared cases.",
    )
    return Plot(fig, notes)
