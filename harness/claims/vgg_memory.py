"""The VGG-16 memory statement (cs231n notes, "VGGNet in detail"), computed from a layer table.

One function, ``vgg16_memory(layers)``, serves the claims and the HTML report. It reads the
rows of ONE profiled case (the ``layers`` table of ``load_results(paths, table="layers")``, or
``ModelProfile.to_frame()``) and returns ``Vgg16Memory``: per-sample activation values by the
notes' row kinds, parameter and MAC splits, measured layer-time splits where the table has
``time_s``, and the comparison with the notes' "TOTAL memory" line. Nothing is typed in but
the notes' own lines (``NOTES_TOTAL``, ``NOTES_PARAMS``), which the numbers are compared with.

The notes' rows are the input and every convolution, max-pooling and fully connected output
(ReLUs run in place; torchvision's ``AdaptiveAvgPool2d`` is not one of their rows: kind
``other``). "Early" is the first two blocks: every layer up to the second max pool. Missing
values stay missing (None), never 0. Torch-free: the report imports this module.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.core import units
from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing

BYTES_PER_VALUE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
NOTES_BYTES_PER_VALUE = 4  # the notes count float32


@dataclass(frozen=True)
class SourceFigure:
    """A number as a source states it: the quote, the value, and the precision it is given to
    (half a unit of its last digit: '24M' is 24M ± 0.5M)."""

    quote: str
    value: float
    tolerance: float


NOTES_TOTAL = SourceFigure(
    "TOTAL memory: 24M * 4 bytes ~= 93MB / image (only forward!)", 24e6, 0.5e6
)
NOTES_PARAMS = SourceFigure("TOTAL params: 138M parameters", 138e6, 0.5e6)


def _kind(layer_type: Any) -> str:
    """conv, pool (max pooling) or fc: the notes' row kinds; other for every other layer."""
    t = "" if is_missing(layer_type) else str(layer_type)
    return "conv" if "Conv" in t else "pool" if "MaxPool" in t else "fc" if "Linear" in t else (
        "other")  # fmt: skip


def _sum(values: pd.Series) -> float | None:
    """Sum of a column; None when any value is missing (missing stays missing)."""
    return None if any(is_missing(v) for v in values) else float(sum(float(v) for v in values))


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _first(layers: pd.DataFrame, column: str) -> Any:
    present = [v for v in layers[column] if not is_missing(v)] if column in layers else []
    return present[0] if present else None


@dataclass(frozen=True)
class Vgg16Memory:
    """Where one profiled case of VGG-16 keeps its activations, parameters and time.

    ``values`` are activation values per sample (bytes / batch / bytes per value) by kind
    (conv, pool, fc, other, early); ``params``, ``macs`` and ``times`` (seconds, None when the
    case has no layer times) by kind and ``all``. Each is None where the table lacks what it
    needs. ``shares`` are 0..1: activation shares of ``rows_values`` (the input plus every row
    the notes tabulate), parameter and MAC shares of the table's totals, time shares of the sum
    of the case's layer times (every row, a parent's own ops included).
    """

    batch_size: int | None
    dtype: str | None
    input_shape: str | None
    input_values: int | None
    values: dict[str, float | None]
    params: dict[str, float | None]
    macs: dict[str, float | None]
    times: dict[str, float | None] | None

    @property
    def time_s(self) -> float | None:
        return None if self.times is None else self.times["all"]

    @property
    def rows_values(self) -> float | None:
        """The sum of the notes' rows: input + conv + pool + FC outputs, per sample."""
        parts = [self.input_values, *(self.values[k] for k in ("conv", "pool", "fc"))]
        return None if None in parts else float(sum(parts))

    @property
    def shares(self) -> dict[str, float | None]:
        v, p, t, rows = self.values, self.params, self.times or {}, self.rows_values
        conv_pool = None if None in (v["conv"], v["pool"]) else v["conv"] + v["pool"]
        return {
            "conv_pool_activation_share": _div(conv_pool, rows),
            "early_activation_share": _div(v["early"], rows),
            "fc_activation_share": _div(v["fc"], rows),
            **{f"{k}_params_share": _div(p[k], p["all"]) for k in ("fc", "conv", "early")},
            "fc_macs_share": _div(self.macs["fc"], self.macs["all"]),
            **{f"{k}_time_share": _div(t.get(k), t.get("all")) for k in ("fc", "conv", "early")},
        }

    @property
    def total_line_ratio(self) -> float | None:
        """The notes' total line over the sum of their rows (1 would be agreement)."""
        return _div(NOTES_TOTAL.value, self.rows_values)

    @property
    def total_line_agrees(self) -> bool | None:
        """Whether the sum of the rows is within the total line's own precision (24M ± 0.5M)."""
        rows = self.rows_values
        return None if rows is None else abs(rows - NOTES_TOTAL.value) <= NOTES_TOTAL.tolerance

    def statement(self) -> str:
        """The cs231n statement with these numbers, in plain text (escape it for HTML)."""
        s, pct, rows = self.shares, units.percent, self.rows_values
        text = (
            f"VGG-16 ({self.input_shape or 'input -'}, batch {self.batch_size or '-'}, "
            f"{self.dtype or '-'}). The notes (cs231n) say most of the activation memory is in "
            "the early convolutional layers and most of the parameters in the fully connected "
            "layers. Of the input and the convolution, pooling and FC outputs (the rows the "
            "notes tabulate), the convolution and pooling layers hold "
            f"{pct(s['conv_pool_activation_share'], 2)}, the first two blocks (to the second "
            f"max pool) {pct(s['early_activation_share'])}; the FC layers hold "
            f"{pct(s['fc_params_share'])} of the parameters ({units.count(self.params['fc'])} "
            f"of {units.count(self.params['all'])}) and {pct(s['fc_macs_share'], 2)} of the MACs."
        )
        if rows is not None:
            values, tol = (
                f"{units.grouped(rows)} values per sample",
                units.si(NOTES_TOTAL.tolerance),
            )
            if self.total_line_agrees:
                text += f" The rows sum to {values}: the notes' total line agrees (within ±{tol})."
            else:
                text += (
                    f" The rows sum to {values} ({units.nbytes(rows * NOTES_BYTES_PER_VALUE)} at "
                    f"{NOTES_BYTES_PER_VALUE} bytes); the notes' total line ('{NOTES_TOTAL.quote}')"
                    f" is {units.ratio(self.total_line_ratio, 3)} that sum, beyond its own "
                    f"precision (±{tol}): each row is a layer's output size, so the sum of the "
                    "rows is the right total, not the total line."
                )
        if self.time_s is not None:
            text += (
                f" Measured layer times: the FC layers take {pct(s['fc_time_share'])}, the "
                f"convolutions {pct(s['conv_time_share'])} and the first two blocks "
                f"{pct(s['early_time_share'])} of {units.seconds(self.time_s)}."
            )
        return text


def vgg16_memory(
    layers: pd.DataFrame,
    *,
    batch_size: int | None = None,
    dtype: str | None = None,
    input_shape: str | None = None,
) -> Vgg16Memory:
    """The VGG-16 memory statement's numbers from the layer rows of ONE profiled case.

    ``layers`` needs ``layer_type``, ``activation_bytes`` and ``params`` (``layer_index``
    orders the rows; ``macs``, ``time_s`` and ``layer_kind`` are used where present; a
    ``parent_ops`` row counts where it has a value, a leaf row must have one).
    ``batch_size``, ``dtype`` and ``input_shape`` (``"3x224x224"``) default to the table's own
    columns; without them the per-sample values are None. Several cases are an
    InvalidInputError.
    """
    lacking = [c for c in ("layer_type", "activation_bytes", "params") if c not in layers]
    if lacking:
        raise InvalidInputError(f"the layer table lacks the column(s) {', '.join(lacking)}")
    if "case_id" in layers and layers["case_id"].dropna().nunique() > 1:
        raise InvalidInputError("vgg16_memory reads the layer rows of one case; got several")
    if "layer_index" in layers:
        layers = layers.sort_values("layer_index", kind="stable")
    batch = batch_size if batch_size is not None else _first(layers, "batch_size")
    dtype = dtype if dtype is not None else _first(layers, "dtype")
    shape = input_shape if input_shape is not None else _first(layers, "input_shape")
    size = BYTES_PER_VALUE.get(str(dtype))
    every = pd.Series(True, index=layers.index)
    leaf = every if "layer_kind" not in layers else (
        layers["layer_kind"].astype("string").fillna("leaf").ne("parent_ops"))  # fmt: skip
    kind = pd.Series([_kind(t) for t in layers["layer_type"]], index=layers.index)
    pools = [i for i, (k, lf) in enumerate(zip(kind, leaf, strict=True)) if k == "pool" and lf]
    early = pd.Series([i <= pools[1] if len(pools) >= 2 else False for i in range(len(kind))],
                      index=layers.index)  # fmt: skip
    masks = {k: kind == k for k in ("conv", "pool", "fc", "other")}
    masks |= {"early": early, "all": every}

    def total(column: str, of: str) -> float | None:
        """Leaf rows must all have a value; a parent's own-ops row counts where it has one."""
        leaves = _sum(layers.loc[masks[of] & leaf, column])
        own = [float(v) for v in layers.loc[masks[of] & ~leaf, column] if not is_missing(v)]
        return None if leaves is None else leaves + sum(own)

    masks["early_outputs"] = early & kind.isin(["conv", "pool"])
    values = {k: total("activation_bytes", k) for k in ("conv", "pool", "fc", "other")}
    values["early"] = total("activation_bytes", "early_outputs")
    scale = None if batch is None or size is None else 1.0 / (int(batch) * size)
    timed = "time_s" in layers and layers["time_s"].notna().any()
    dims = [int(d) for d in re.findall(r"\d+", "" if shape is None else str(shape))]
    return Vgg16Memory(
        batch_size=None if batch is None else int(batch),
        dtype=None if dtype is None else str(dtype),
        input_shape=None if shape is None else str(shape),
        input_values=math.prod(dims) if dims else None,
        values={k: None if v is None or scale is None else v * scale for k, v in values.items()},
        params={k: total("params", k) for k in ("all", "conv", "fc", "early")},
        macs={k: total("macs", k) if "macs" in layers else None for k in ("all", "fc")},
        times={k: total("time_s", k) for k in ("all", "conv", "fc", "early")} if timed else None,
    )
