"""Layer by layer: where a model keeps its activation memory and where its parameters.

Reads the ``layers`` table (one row per leaf layer per profiled case). For each model one
profile is shown (batch 1 and float32 preferred), as bars per layer, cumulative shares along the
depth, and a split by layer type; for VGG-16 the statement of the source documents (cs231n:
memory in the early convolutions, parameters in the FC layers) is written out with the measured
shares.
"""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.report.data import (
    esc,
    human_bytes,
    integer_text,
    is_missing,
    number,
    si,
    values,
)
from harness.report.style import add_notes, hover, placeholder, style

CATEGORIES = ("conv", "pool", "fc", "norm", "activation", "other")
CATEGORY_COLORS = {
    "conv": "#1f77b4",
    "pool": "#17becf",
    "fc": "#d62728",
    "norm": "#9467bd",
    "activation": "#bcbd22",
    "other": "#7f7f7f",
}
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
# cs231n "Convolutional Neural Networks" notes, VGGNet in detail: the rows list the input, the
# conv, pool and FC outputs (about 15.2 M values per image); the "TOTAL memory" line says 24 M.
CS231N_VGG16_ROWS_VALUES = 15.2e6
CS231N_VGG16_TOTAL_LINE_VALUES = 24e6
VGG16_NAME = re.compile(r"(^|[:.])vgg16$", re.IGNORECASE)


def layer_category(layer_type: object) -> str:
    """conv, pool, fc, norm, activation or other, from a module class name."""
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


KEY_COLUMNS = ("model", "input_shape", "batch_size", "dtype")


def attach_case_keys(layers: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """``layers`` with model, input shape, batch size and dtype filled from the case each row
    belongs to (joined on run_id and case_id) where the layer rows leave them null."""
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
    return out


def select_profile(layers: pd.DataFrame, model: str) -> pd.DataFrame:
    """The layer rows of one profile of ``model``: batch 1 (else the smallest), float32
    preferred, the first run; sorted by execution order, with a ``category`` column."""
    df = layers[layers["model"] == model]
    if df.empty:
        return df.assign(category=pd.Series(dtype=object))
    cands = df.drop_duplicates(["run_id", "case_id"])[["run_id", "case_id", "batch_size", "dtype"]]
    cands = cands.assign(
        _bs=[number(b) if number(b) is not None else float("inf") for b in cands["batch_size"]],
        _fp=[0 if d == "float32" else 1 for d in cands["dtype"]],
        _pos=range(len(cands)),
    ).sort_values(["_bs", "_fp", "_pos"])
    run, case = cands.iloc[0]["run_id"], cands.iloc[0]["case_id"]
    one = df[(df["run_id"] == run) & (df["case_id"] == case)].sort_values("layer_index")
    return one.assign(category=[layer_category(t) for t in one["layer_type"]])


def _share(part: float, total: float) -> float | None:
    return None if total <= 0 else 100.0 * part / total


def layer_shares(profile: pd.DataFrame) -> pd.DataFrame:
    """Per layer category of one profile: layers, params, MACs, activation bytes and their
    shares in percent of the model's totals (None where the total is 0 or unknown)."""
    rows = []
    totals = {
        c: sum(number(v) or 0.0 for v in profile[c]) for c in ("params", "macs", "activation_bytes")
    }
    for cat in CATEGORIES:
        g = profile[profile["category"] == cat]
        if g.empty:
            continue
        row: dict[str, object] = {"category": cat, "layers": len(g)}
        for c in ("params", "macs", "activation_bytes"):
            part = sum(number(v) or 0.0 for v in g[c])
            row[c] = part
            row[f"{c}_pct"] = _share(part, totals[c])
        rows.append(row)
    return pd.DataFrame(rows)


def layer_figure(layers: pd.DataFrame, model: str) -> go.Figure:
    """Activation memory and parameters per layer (bars coloured by layer type) and their
    cumulative shares along the depth, for one profile of ``model``."""
    prof = select_profile(layers, model)
    if prof.empty:
        return placeholder(f"{esc(model)}: layers", [esc(f"no layer profile of {model}")])
    first = prof.iloc[0]
    context = (
        f"input {first['input_shape']}, batch {integer_text(first['batch_size'])}, {first['dtype']}"
    )
    title = f"{esc(model)}: activation memory and parameters layer by layer ({esc(context)})"
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        row_heights=[0.36, 0.36, 0.28],
        subplot_titles=(
            "activation memory per layer (output bytes)",
            "parameters per layer",
            "cumulative share along the depth (%)",
        ),
    )
    for cat in CATEGORIES:
        g = prof[prof["category"] == cat]
        if g.empty:
            continue
        text = [
            hover(
                f"#{integer_text(r['layer_index'])} {r['layer_name']} ({r['layer_type']})",
                f"output {r['output_shape']}",
                f"activation {human_bytes(r['activation_bytes'])}",
                f"params {si(r['params'])}, MACs {si(r['macs'])}",
            )
            for _, r in g.iterrows()
        ]
        for row, column in ((1, "activation_bytes"), (2, "params")):
            fig.add_trace(
                go.Bar(
                    x=values(g["layer_index"]),
                    y=values(g[column]),
                    name=cat,
                    legendgroup=cat,
                    showlegend=row == 1,
                    marker_color=CATEGORY_COLORS[cat],
                    hovertext=text,
                    hoverinfo="text",
                ),
                row=row,
                col=1,
            )
    names = [
        hover(f"#{integer_text(i)} {n}")
        for i, n in zip(prof["layer_index"], prof["layer_name"], strict=True)
    ]
    for column, label, color in (
        ("activation_bytes", "activation memory", "#ff7f0e"),
        ("params", "parameters", "#2ca02c"),
    ):
        v = [number(x) or 0.0 for x in prof[column]]
        total = sum(v)
        if total <= 0:
            continue
        cum, run = [], 0.0
        for x in v:
            run += x
            cum.append(100.0 * run / total)
        fig.add_trace(
            go.Scatter(
                x=values(prof["layer_index"]),
                y=cum,
                name=f"cumulative {label}",
                mode="lines",
                line={"color": color, "shape": "hv"},
                hovertext=names,
                hoverinfo="text+y",
            ),
            row=3,
            col=1,
        )
    fig.update_yaxes(tickformat="~s", title_text="bytes", row=1, col=1)
    fig.update_yaxes(tickformat="~s", title_text="count", row=2, col=1)
    fig.update_yaxes(range=[0, 101], title_text="%", row=3, col=1)
    fig.update_xaxes(title_text="layer (execution order)", row=3, col=1)
    style(fig, title, height=660)
    fig.update_layout(margin={"t": 85})
    fig.update_layout(barmode="stack", bargap=0.1)
    lines = []
    for column, what in (("activation_bytes", "activation bytes"), ("params", "parameters")):
        n = int(prof[column].isna().sum())
        if n:
            lines.append(esc(f"{n} layers have no {what} recorded: drawn as gaps"))
    return add_notes(fig, lines)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}%"


def vgg16_statement(layers: pd.DataFrame | None) -> str | None:
    """The cs231n VGG-16 claim with the measured shares, as escaped text; None without VGG-16."""
    if layers is None or layers.empty or "model" not in layers.columns:
        return None
    names = [
        m for m in dict.fromkeys(layers["model"]) if not is_missing(m) and VGG16_NAME.search(str(m))
    ]
    if not names:
        return None
    prof = select_profile(layers, names[0])
    tab = prof[prof["category"].isin(["conv", "pool", "fc"])]
    act = [number(v) or 0.0 for v in tab["activation_bytes"]]
    par = [number(v) or 0.0 for v in prof["params"]]
    act_total, par_total = sum(act), sum(par)
    if act_total <= 0 or par_total <= 0:
        return None
    is_cp = list(tab["category"].isin(["conv", "pool"]))
    conv_pool_act = sum(a for a, c in zip(act, is_cp, strict=True) if c)
    fc_par = sum(
        number(v) or 0.0 for v, c in zip(prof["params"], prof["category"], strict=True) if c == "fc"
    )
    pools = [i for i, c in enumerate(tab["category"]) if c == "pool"]
    early = sum(act[: pools[1] + 1]) if len(pools) >= 2 else None
    first = prof.iloc[0]
    text = (
        f"VGG-16 ({names[0]}). The source documents (cs231n) say most of the activation memory "
        "is spent in the early convolutional layers and most of the parameters sit in the fully "
        f"connected layers. Measured ({first['input_shape']}, batch "
        f"{integer_text(first['batch_size'])}, "
        f"{first['dtype']}): of the activation memory of the convolution, pooling and FC outputs "
        f"(the rows the notes tabulate), the convolution and pooling layers hold "
        f"{_pct(_share(conv_pool_act, act_total))}"
    )
    if early is not None:
        early_pct = _pct(_share(early, act_total))
        text += f", the first two blocks (up to the second pooling layer) alone {early_pct}"
    text += (
        f"; the FC layers hold {_pct(_share(fc_par, par_total))} of the parameters "
        f"({si(fc_par)} of {si(par_total)})."
    )
    size = DTYPE_BYTES.get(str(first["dtype"]))
    bs = number(first["batch_size"])
    if size and bs:
        per_sample = act_total / size / bs
        shape = [int(d) for d in re.findall(r"\d+", str(first["input_shape"]))]
        inp = 1
        for d in shape:
            inp *= d
        with_input = per_sample + inp
        text += (
            f" The input plus these outputs come to {si(with_input)} values per sample "
            f"({human_bytes(with_input * 4)} at 4 bytes each); the notes' rows sum to about "
            f"{si(CS231N_VGG16_ROWS_VALUES)} and their total line says "
            f"{si(CS231N_VGG16_TOTAL_LINE_VALUES)}: "
        )
        rows_off = abs(with_input / CS231N_VGG16_ROWS_VALUES - 1)
        total_off = abs(with_input / CS231N_VGG16_TOTAL_LINE_VALUES - 1)
        if min(rows_off, total_off) > 0.05:
            text += "the measurement agrees with neither (different input or layers?)."
        elif rows_off < total_off:
            text += "the measurement agrees with the sum of the rows, not with the total line."
        else:
            text += "the measurement agrees with the total line, not with the sum of the rows."
    return esc(text)
