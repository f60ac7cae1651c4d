"""Layer by layer: where a model keeps its activations, parameters and MACs (static), and where
its time goes (measured).

Reads the ``layers`` table: one row per leaf layer per profiled case (plus ``parent_ops`` rows,
the ops a parent module ran itself, where layer times were measured). Two kinds of numbers sit
side by side and are labelled for what they are:

* **static**: parameters, MACs and output bytes from the profile on the meta device: exact,
  the same on every machine;
* **measured**: ``time_s`` per layer (median over the profiled steps), and what follows from
  it (``time_share``, ``achieved_flops_per_s``), only where the run measured layer times.

A value missing in the table stays missing: it is a gap in a bar, left out of a share (and the
note says how many layers lacked it), never a zero. The VGG-16 statement of the source
documents comes from ``harness.claims.vgg_memory.vgg16_memory``, the one implementation the
claims use too.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness import units
from harness.claims.vgg_memory import vgg16_memory
from harness.report.data import is_missing, number, records, values
from harness.report.roofline import roof_name, roof_traces, roofs_for
from harness.report.style import (
    Missing,
    Plot,
    colors,
    linear_axis,
    log_range,
    short_list,
    style,
)
from harness.report.text import hover, ptext

CATEGORIES = ("conv", "pool", "fc", "norm", "activation", "other", "parent ops")
CATEGORY_COLORS = {
    "conv": "#1f77b4",
    "pool": "#17becf",
    "fc": "#d62728",
    "norm": "#9467bd",
    "activation": "#bcbd22",
    "other": "#7f7f7f",
    "parent ops": "#ff7f0e",
}
VGG16_NAME = re.compile(r"(^|[:.])vgg16$", re.IGNORECASE)
KEY_COLUMNS = ("model", "input_shape", "batch_size", "dtype")
# The shares compared per layer type: (column, label, static or measured)
SHARE_COLUMNS = (
    ("time_s", "measured time"),
    ("macs", "MACs (static)"),
    ("params", "parameters (static)"),
    ("activation_bytes", "output bytes (static)"),
)
MAX_LAYER_MODELS = 3  # per-layer figures; every model is in the shares figure and table
MAX_SHARE_MODELS = 40
MAX_NAMED_TICKS = 40


def layer_category(layer_type: object, layer_kind: object = None) -> str:
    """conv, pool, fc, norm, activation, other, or parent ops (a parent's own ops)."""
    if not is_missing(layer_kind) and str(layer_kind) == "parent_ops":
        return "parent ops"
    t = "" if is_missing(layer_type) else str(layer_type).lower()
    if "conv" in t:
        return "conv"
    if "pool" in t or "subsampl" in t:
        return "pool"
    if "linear" in t or "rbf" in t:
        return "fc"
    if "norm" in t or "lrn" in t:
        return "norm"
    if any(a in t for a in ("relu", "sigmoid", "tanh", "gelu", "silu", "softmax", "hardswish")):
        return "activation"
    return "other"


def attach_case_keys(layers: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """``layers`` with model, input shape, batch size and dtype filled from the case each row
    belongs to (joined on run_id and case_id) where the layer rows leave them null, plus the
    case's configuration columns (for the layer roofline's roofs)."""
    if layers.empty or not {"run_id", "case_id"} <= set(cases.columns):
        return layers
    keys = cases.drop_duplicates(["run_id", "case_id"]).set_index(["run_id", "case_id"])
    index = pd.MultiIndex.from_arrays([layers["run_id"], layers["case_id"]])
    out = layers.copy()
    for column in KEY_COLUMNS:
        if column not in keys.columns:
            continue
        from_case = keys[column].reindex(index).to_numpy()
        if column not in out.columns:
            out[column] = from_case
            continue
        own = out[column].to_numpy(dtype=object)
        out[column] = [c if is_missing(o) else o for o, c in zip(own, from_case, strict=True)]
    for column in ("config", "config_short", "latency_s_median", "layer_time_coverage"):
        if column in keys.columns:
            out[f"case_{column}"] = keys[column].reindex(index).to_numpy()
    return out


def wanted_cases(cases: pd.DataFrame) -> set[tuple[Any, Any]]:
    """The (run_id, case_id) whose layer rows the report reads: per model the one static
    profile it shows (a case the figures draw, batch 1 or the smallest, float32 first) and the
    cases with measured layer times (one per batch size). A 50,000-case directory holds a layer
    table per case; the page needs a few hundred of them."""
    if cases.empty:
        return set()
    df = cases[["run_id", "case_id", "model", "batch_size", "dtype", "in_figures",
                "layer_time_coverage"]].copy()  # fmt: skip
    df["_drawn"] = ~df["in_figures"].astype(bool)
    df["_bs"] = df["batch_size"].fillna(float("inf"))
    df["_fp"] = df["dtype"] != "float32"
    df["_pos"] = range(len(df))
    ordered = df.sort_values(["_drawn", "_bs", "_fp", "_pos"], kind="stable")
    static = ordered.drop_duplicates("model")
    timed = ordered[ordered["layer_time_coverage"].notna()]
    timed = timed.drop_duplicates(["model", "batch_size"])
    keys = pd.concat([static, timed])
    return set(zip(keys["run_id"], keys["case_id"], strict=True))


def keep_wanted(layers: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``layers`` the report reads (``wanted_cases``); layer rows of a case the
    cases table does not hold are kept too (nothing says they are not wanted)."""
    if layers.empty:
        return layers
    wanted = wanted_cases(cases)
    known = pd.MultiIndex.from_arrays(
        [cases["run_id"].astype(object), cases["case_id"].astype(object)]
    )
    pairs = pd.MultiIndex.from_arrays(
        [layers["run_id"].astype(object), layers["case_id"].astype(object)]
    )
    mask = pairs.isin(list(wanted)) | ~pairs.isin(known)
    return layers[mask]


def _profiles(layers: pd.DataFrame, model: str) -> pd.DataFrame:
    df = layers[layers["model"] == model]
    cands = df.drop_duplicates(["run_id", "case_id"])[["run_id", "case_id", "batch_size", "dtype"]]
    timed = df.groupby(["run_id", "case_id"], sort=False)["time_s"].count() > 0
    return cands.assign(
        _bs=pd.to_numeric(cands["batch_size"], errors="coerce").fillna(float("inf")),
        _fp=(cands["dtype"] != "float32").astype(int),
        _pos=range(len(cands)),
        timed=[
            bool(timed.get((r, c), False))
            for r, c in zip(cands["run_id"], cands["case_id"], strict=True)
        ],
    )


def _one(layers: pd.DataFrame, run: Any, case: Any) -> pd.DataFrame:
    one = layers[(layers["run_id"] == run) & (layers["case_id"] == case)]
    one = one.sort_values("layer_index", kind="stable")
    kind = one["layer_kind"] if "layer_kind" in one else [None] * len(one)
    return one.assign(
        category=[layer_category(t, k) for t, k in zip(one["layer_type"], kind, strict=True)]
    )


def select_profile(layers: pd.DataFrame, model: str, *, timed: bool = False) -> pd.DataFrame:
    """The layer rows of one profiled case of ``model``: with measured times first when
    ``timed``, then batch 1 (else the smallest), float32, the first run; sorted by execution
    order, with a ``category`` column."""
    if layers.empty or model not in set(layers["model"]):
        return layers.iloc[0:0].assign(category=pd.Series(dtype=object))
    cands = _profiles(layers, model)
    order = (["timed"] if timed else []) + ["_bs", "_fp", "_pos"]
    asc = ([False] if timed else []) + [True, True, True]
    best = cands.sort_values(order, ascending=asc, kind="stable").iloc[0]
    return _one(layers, best["run_id"], best["case_id"])


def timed_profiles(layers: pd.DataFrame, model: str) -> list[pd.DataFrame]:
    """Every profiled case of ``model`` with measured layer times, by batch size."""
    cands = _profiles(layers, model)
    cands = cands[cands["timed"]].sort_values(["_bs", "_fp", "_pos"], kind="stable")
    return [_one(layers, r, c) for r, c in zip(cands["run_id"], cands["case_id"], strict=True)]


def layer_shares(profile: pd.DataFrame) -> pd.DataFrame:
    """Per layer category of one profile: layers, params, MACs, output bytes and measured time,
    with their shares (0..1) of the model's totals over the layers that have the value; None
    where no layer of the category (or of the model) has it."""
    columns = [c for c, _ in SHARE_COLUMNS if c in profile.columns]
    if profile.empty:
        return pd.DataFrame()
    nums = profile[columns].astype("float64")
    sums = nums.groupby(profile["category"], sort=False).sum(min_count=1)
    counts = profile.groupby("category", sort=False).size()
    totals = nums.sum(min_count=1)
    rows = []
    for cat in CATEGORIES:
        if cat not in sums.index:
            continue
        row: dict[str, object] = {"category": cat, "layers": int(counts[cat])}
        for c in columns:
            part, total = number(sums.loc[cat, c]), number(totals[c])
            row[c] = part
            row[f"{c}_share"] = None if part is None or not total else part / total
        rows.append(row)
    return pd.DataFrame(rows)


def _tick_labels(prof: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Layer names for the x axis: all of them up to ``MAX_NAMED_TICKS``, else every Nth
    (the hover names every layer)."""
    idx = [int(i) for i in prof["layer_index"]]
    names = [str(n) if not is_missing(n) else "?" for n in prof["layer_name"]]
    step = max(1, -(-len(idx) // MAX_NAMED_TICKS))
    return idx[::step], [ptext(n) for n in names[::step]]


def layer_figure(layers: pd.DataFrame, model: str) -> Plot | Missing:
    """Per layer of one profile of ``model``: output bytes, parameters and MACs (static, from
    the meta-device profile) and, where measured, the time per layer; bars coloured by layer
    type, layer names on the x axis."""
    prof = select_profile(layers, model, timed=True)
    if prof.empty:
        return Missing(f"{model}: layers", [f"no layer profile of {model}"])
    first = prof.iloc[0]
    timed = prof["time_s"].notna().any()
    context = f"input {first['input_shape']}, batch {units.integer(first['batch_size'])}, "
    context += f"{first['dtype']}"
    panels = [
        ("activation_bytes", "output bytes per layer (static)", "bytes"),
        ("params", "parameters per layer (static)", "count"),
        ("macs", "MACs per layer (static)", "count"),
    ]
    if timed:
        panels.insert(0, ("time_s", "time per layer (measured, median over steps)", "seconds"))
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.3 / len(panels),
        subplot_titles=[t for _, t, _ in panels],
    )
    recs = records(prof)
    text = {
        i: hover(
            f"#{units.integer(r['layer_index'])} {r['layer_name']} ({r['layer_type']})",
            f"output {r['output_shape']}",
            f"static: {units.nbytes(r['activation_bytes'])} output, "
            f"{units.count(r['params'])} params, {units.si(r['macs'], 'MACs')}",
            f"measured: {units.seconds(r['time_s'], micro='µ')}"
            + (
                f" ({units.percent(r['time_share'])} of the step's layer time)"
                if number(r.get("time_share")) is not None
                else ""
            )
            if number(r.get("time_s")) is not None
            else "",
            f"{units.si(r.get('achieved_flops_per_s'), 'FLOP/s')} achieved"
            if number(r.get("achieved_flops_per_s")) is not None
            else "",
        )
        for i, r in enumerate(recs)
    }
    for cat in CATEGORIES:
        pos = [i for i, c in enumerate(prof["category"]) if c == cat]
        if not pos:
            continue
        g = prof.iloc[pos]
        for row, (column, _, _) in enumerate(panels, start=1):
            fig.add_trace(
                go.Bar(
                    x=values(g["layer_index"]),
                    y=values(g[column]),
                    name=cat,
                    legendgroup=cat,
                    showlegend=row == 1,
                    marker_color=CATEGORY_COLORS[cat],
                    hovertext=[text[i] for i in pos],
                    hoverinfo="text",
                ),
                row=row,
                col=1,
            )
    tickvals, ticktext = _tick_labels(prof)
    fig.update_xaxes(tickvals=tickvals, ticktext=ticktext, tickangle=-60, tickfont={"size": 9})
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(showticklabels=True, row=len(panels), col=1)
    for row, (column, _, kind) in enumerate(panels, start=1):
        fig.update_yaxes(**linear_axis(prof[column], kind=kind), row=row, col=1)
    title = f"{model}: layer by layer ({context})"
    style(fig, title, height=170 * len(panels) + 230)
    fig.update_layout(barmode="stack", bargap=0.1, margin={"t": 80, "b": 150})
    notes = []
    for column, what in (
        ("activation_bytes", "output bytes"),
        ("params", "parameters"),
        ("macs", "MACs"),
    ):
        n = int(prof[column].isna().sum())
        if n:
            notes.append(f"{n} layers have no {what} recorded: gaps, not zeros")
    if timed:
        n = int(prof["time_s"].isna().sum())
        cov = number(first.get("case_layer_time_coverage"))
        notes.append(
            "Measured time: torch.profiler over extra steps after the timed rounds, each op's "
            "self time attributed to the layer that issued it; 'parent ops' are ops a parent "
            "module ran itself (the residual add, torch.cat, flatten)."
            + (
                f" Layer times add up to {units.percent(cov)} of the step's median latency."
                if cov is not None
                else ""
            )
            + (f" {n} layers without a measured time." if n else "")
        )
    return Plot(fig, notes)


def shares_figure(layers: pd.DataFrame, models: list[str]) -> Plot | Missing:
    """Per model, the split by layer type of measured time, MACs, parameters and output bytes
    (100%-stacked bars, one facet per quantity): does time follow MACs?"""
    title = "Shares by layer type: measured time against static MACs, parameters, output bytes"
    shown = models[:MAX_SHARE_MODELS]
    split = dict(tuple(layers.groupby("model", sort=False)))
    rows = []
    for model in shown:
        prof = select_profile(split.get(model, layers.iloc[0:0]), model, timed=True)
        if prof.empty:
            continue
        shares = layer_shares(prof)
        for _, r in shares.iterrows():
            rows.append({"model": model, **r.to_dict()})
    if not rows:
        return Missing(title, ["no layer profiles"])
    table = pd.DataFrame(rows)
    quantities = [
        (c, label)
        for c, label in SHARE_COLUMNS
        if f"{c}_share" in table and table[f"{c}_share"].notna().any()
    ]
    fig = make_subplots(
        rows=1,
        cols=len(quantities),
        shared_yaxes=True,
        horizontal_spacing=0.035,
        subplot_titles=[label for _, label in quantities],
    )
    order = [ptext(m) for m in shown if m in set(table["model"])]
    for cat in CATEGORIES:
        g = table[table["category"] == cat]
        if g.empty:
            continue
        for col, (column, label) in enumerate(quantities, start=1):
            share = values(g[f"{column}_share"])
            fig.add_trace(
                go.Bar(
                    y=[ptext(m) for m in g["model"]],
                    x=share,
                    orientation="h",
                    name=cat,
                    legendgroup=cat,
                    showlegend=col == 1,
                    marker_color=CATEGORY_COLORS[cat],
                    hovertext=[
                        hover(
                            f"{m}: {cat}",
                            f"{units.percent(s)} of the {label}",
                            f"{units.integer(n)} layers",
                        )
                        for m, s, n in zip(g["model"], share, g["layers"], strict=True)
                    ],
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(range=[0, 1], tickvals=[0, 0.5, 1], ticktext=["0", "50%", "100%"])
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], type="category")
    style(fig, title, height=150 + 22 * len(order))
    fig.update_layout(
        barmode="stack",
        bargap=0.25,
        margin={"t": 80, "l": 160},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
    )
    notes = []
    if len(models) > MAX_SHARE_MODELS:
        notes.append(
            f"{len(models) - MAX_SHARE_MODELS} more models not drawn "
            f"({short_list(models[MAX_SHARE_MODELS:], 5)}): see the table of shares"
        )
    if "time_s_share" not in table or table["time_s_share"].isna().all():
        notes.append("No measured layer times in these results: static shares only.")
    notes.append(
        "Shares are of the model's total over the layers that have the value; one profile per "
        "model (with measured times where there are, else batch 1, float32)."
    )
    return Plot(fig, notes)


def layer_roofline(layers: pd.DataFrame, cases: pd.DataFrame, model: str) -> Plot | Missing:
    """Each layer of one timed profile as a point at its arithmetic intensity and achieved
    FLOP/s, under the roofs of the configuration that measured it."""
    title = f"{model}: layer roofline (measured time, static FLOPs and bytes)"
    prof = select_profile(layers, model, timed=True)
    pts = prof.dropna(subset=["arithmetic_intensity", "achieved_flops_per_s"])
    pts = pts[(pts["arithmetic_intensity"] > 0) & (pts["achieved_flops_per_s"] > 0)]
    if pts.empty:
        return Missing(title, [f"no layer of {model} has a measured time and a MAC count"])
    fig = go.Figure()
    for cat in CATEGORIES:
        g = pts[pts["category"] == cat]
        if g.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=values(g["arithmetic_intensity"]),
                y=values(g["achieved_flops_per_s"]),
                mode="markers",
                name=cat,
                marker={
                    "color": CATEGORY_COLORS[cat],
                    "size": 8,
                    "line": {"width": 1, "color": "#333"},
                },
                hovertext=[
                    hover(
                        f"#{units.integer(r['layer_index'])} {r['layer_name']} ({r['layer_type']})",
                        f"{units.si(r['arithmetic_intensity'])} FLOP/byte "
                        f"({units.nbytes(r['bytes_moved'])} moved)",
                        f"{units.si(r['achieved_flops_per_s'], 'FLOP/s')} in "
                        f"{units.seconds(r['time_s'], micro='µ')}",
                    )
                    for r in records(g)
                ],
                hoverinfo="text",
            )
        )
    first = prof.iloc[0]
    run, case = first["run_id"], first["case_id"]
    rows = cases[(cases["run_id"] == run) & (cases["case_id"] == case)]
    config = str(first.get("case_config_short") or "this configuration")
    roofs = (
        roofs_for(cases[cases["config"] == rows["config"].iloc[0]], str(first["dtype"]))
        if not rows.empty
        else []
    )
    ai = [v for v in values(pts["arithmetic_intensity"]) if v]
    lo, hi = min(ai) / 3, max(ai) * 3
    for roof in roofs:
        ridge = roof.flops_per_s / roof.bytes_per_s
        lo, hi = min(lo, ridge / 3), max(hi, ridge * 3)
    for i, roof in enumerate(roofs):
        fig.add_trace(
            roof_traces(
                roof,
                colors([config])[config],
                lo,
                hi,
                name=roof_name(config, roof),
                dash="dash" if i else "solid",
            )
        )
    x_axis = log_range([lo, hi], kind="count")
    y_axis = log_range(
        list(pts["achieved_flops_per_s"]) + [r.flops_per_s for r in roofs], kind="flops"
    )
    if x_axis:
        fig.update_xaxes(**x_axis)
    if y_axis:
        fig.update_yaxes(**y_axis)
    fig.update_xaxes(title_text="arithmetic intensity (FLOP per byte moved)")
    fig.update_yaxes(title_text="achieved FLOP/s")
    context = f"batch {units.integer(first['batch_size'])}, {first['dtype']}, {config}"
    style(fig, f"{title}: {context}", height=460)
    fig.update_layout(legend={"orientation": "h", "y": -0.18, "yanchor": "top"})
    notes = [
        "Per layer: achieved = 2 × MACs / measured time; bytes moved = weights + inputs + "
        "outputs at the case's dtype (each once); layers without MACs (pooling, activations) "
        "have no point."
    ]
    if not roofs:
        notes.append(f"No datasheet entry and no measured roof for {config}: points only.")
    return Plot(fig, notes)


def vgg16_statement(layers: pd.DataFrame | None) -> str | None:
    """The cs231n VGG-16 statement with the numbers of this table (plain text), and its
    measured time shares at each batch size measured; None without VGG-16."""
    if layers is None or layers.empty or "model" not in layers.columns:
        return None
    names = [
        m for m in dict.fromkeys(layers["model"]) if not is_missing(m) and VGG16_NAME.search(str(m))
    ]
    if not names:
        return None
    static = select_profile(layers, names[0])
    text = vgg16_memory(static).statement()
    # The static statement may carry one case's time; the measured sentences below cover
    # every timed batch size.
    text = text.split(" Measured layer times:")[0]
    timed = timed_profiles(layers, names[0])
    parts = []
    for prof in timed:
        m = vgg16_memory(prof)
        s = m.shares
        first = prof.iloc[0]
        config = first.get("case_config_short")
        parts.append(
            f"batch {units.integer(m.batch_size)} ({m.dtype}"
            + (f", {config}" if isinstance(config, str) else "")
            + f"): the FC layers take {units.percent(s['fc_time_share'])} of "
            f"{units.seconds(m.time_s, micro='µ')} (they hold "
            f"{units.percent(s['fc_params_share'])} of the parameters and "
            f"{units.percent(s['fc_macs_share'], 2)} of the MACs), the "
            f"convolutions {units.percent(s['conv_time_share'])}, the first two blocks "
            f"{units.percent(s['early_time_share'])}"
        )
    if parts:
        text += " Measured layer times: " + "; ".join(parts) + "."
    return f"{names[0]}: {text}" if names[0] != "vgg16" else text


def layer_models(layers: pd.DataFrame) -> list[str]:
    """Models to draw layer by layer (at most ``MAX_LAYER_MODELS``): VGG-16 first, then those
    with measured layer times, then the rest in table order."""
    models = [m for m in dict.fromkeys(layers["model"]) if isinstance(m, str)]
    vgg = [m for m in models if VGG16_NAME.search(m)][:1]
    timed = [
        m
        for m in models
        if m not in vgg and layers.loc[layers["model"] == m, "time_s"].notna().any()
    ]
    rest = [m for m in models if m not in vgg and m not in timed]
    return (vgg + timed + rest)[:MAX_LAYER_MODELS]
