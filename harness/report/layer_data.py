"""The layer table made ready for the report: which profile to show, categories, shares, and
the VGG-16 statement.

Reads the ``layers`` table: one row per leaf layer per profiled case (plus ``parent_ops`` rows,
the ops a parent module ran itself, where layer times were measured). A 50,000-case directory
holds a layer table per case; ``keep_wanted`` cuts it to the profiles the page shows. A value
missing in the table stays missing: left out of a share, never a zero. The VGG-16 statement of
the source documents comes from ``harness.claims.vgg_memory.vgg16_memory``, the one
implementation the claims use too.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from harness.claims.vgg_memory import vgg16_memory
from harness.core import units
from harness.core.layers import roll_up
from harness.report.data import is_missing

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
    columns = ["run_id", "case_id", "model", "batch_size", "dtype", "in_figures"]
    df = cases[columns].copy()
    df["_timed"] = cases["layer_time_coverage"].notna() | cases["layer_time_steps"].notna()
    df["_drawn"] = ~df["in_figures"].astype(bool)
    df["_bs"] = df["batch_size"].fillna(float("inf"))
    df["_fp"] = df["dtype"] != "float32"
    df["_pos"] = range(len(df))
    ordered = df.sort_values(["_drawn", "_bs", "_fp", "_pos"], kind="stable")
    static = ordered.drop_duplicates("model")
    timed = ordered[ordered["_timed"]]
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
    """Per layer category of one profile (in ``CATEGORIES`` order): layers, params, MACs, output
    bytes and measured time, with their shares (0..1) of the model's totals over the layers
    that have the value (harness.core.layers.roll_up); missing where no layer of the category
    (or of the model) has it."""
    if profile.empty:
        return pd.DataFrame()
    columns = [c for c, _ in SHARE_COLUMNS if c in profile.columns]
    shares = roll_up(profile, "category", columns)
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    shares = shares[shares["category"].isin(rank)]
    return shares.sort_values("category", key=lambda s: s.map(rank)).reset_index(drop=True)


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
    # the static statement; the measured sentence below covers every timed batch size
    text = vgg16_memory(static.drop(columns=["time_s"], errors="ignore")).statement()
    parts = []
    for prof in timed_profiles(layers, names[0]):
        m = vgg16_memory(prof)
        s = m.shares
        config = prof.iloc[0].get("case_config_short")
        where = ", ".join(
            p for p in (m.dtype, config if isinstance(config, str) else None,
                        units.seconds(m.time_s, micro="µ")) if p
        )  # fmt: skip
        parts.append(
            f"batch {units.integer(m.batch_size)} ({where}): FC layers "
            f"{units.percent(s['fc_time_share'])}, convolutions "
            f"{units.percent(s['conv_time_share'])}, first two blocks "
            f"{units.percent(s['early_time_share'])}"
        )
    if parts:
        text += (
            " Measured layer times, as shares of the layers' summed time: " + "; ".join(parts) + "."
        )
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
