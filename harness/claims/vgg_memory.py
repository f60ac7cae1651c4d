"""The VGG-16 memory statement (cs231n notes, "VGGNet in detail"), computed from a layer table.

One function, ``vgg16_memory(layers)``, serves the claims and the HTML report. It reads the
rows of ONE profiled case (the ``layers`` table of ``load_results(paths, table="layers")``, or
``ModelProfile.to_frame()``) and returns ``Vgg16Memory``: per-sample activation values by the
notes' row kinds, parameter and MAC splits, measured layer-time splits where the table has
``time_s``, and the comparison with the notes' "TOTAL memory" line. Nothing is typed in but
the notes' own total line (``NOTES_TOTAL``), which is what the sum is compared with.

The notes' rows are the input and every convolution, max-pooling and fully connected output
(ReLUs run in place; torchvision's ``AdaptiveAvgPool2d`` is not one of their rows and is kept
apart as ``other_values``). "Early" is the first two blocks: every layer up to and including
the second max pool. Missing values stay missing (None), never 0. Torch-free: the report
imports this module.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import units
from harness.errors import InvalidInputError
from harness.results.missing import is_missing

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
    if "Conv" in t:
        return "conv"
    if "MaxPool" in t:
        return "pool"
    return "fc" if "Linear" in t else "other"


def _num(value: Any) -> float | None:
    return None if is_missing(value) else float(value)


def _sum(values: pd.Series) -> float | None:
    """Sum of a column; None when any value is missing (missing stays missing)."""
    nums = [_num(v) for v in values]
    return None if any(v is None for v in nums) else float(sum(nums))


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _first(layers: pd.DataFrame, column: str) -> Any:
    if column not in layers.columns:
        return None
    present = [v for v in layers[column] if not is_missing(v)]
    return present[0] if present else None


@dataclass(frozen=True)
class Vgg16Memory:
    """Where one profiled case of VGG-16 keeps its activations, parameters and time.

    Values are per sample (activation bytes / batch / bytes per value); None where the table
    lacks what they need. Shares are 0..1: activation shares of ``rows_values`` (the input
    plus every row the notes tabulate), parameter and MAC shares of the table's totals, time
    shares of the sum of the case's layer times (all rows, the parent's own ops included).
    """

    batch_size: int | None
    dtype: str | None
    input_shape: str | None
    input_values: int | None
    conv_values: float | None
    pool_values: float | None
    fc_values: float | None
    other_values: float | None
    early_values: float | None
    params: float | None
    conv_params: float | None
    fc_params: float | None
    early_params: float | None
    macs: float | None
    fc_macs: float | None
    time_s: float | None
    conv_time_s: float | None
    fc_time_s: float | None
    early_time_s: float | None

    @property
    def rows_values(self) -> float | None:
        """The sum of the notes' rows: input + conv + pool + FC outputs, per sample."""
        parts = (self.input_values, self.conv_values, self.pool_values, self.fc_values)
        return None if any(p is None for p in parts) else float(sum(parts))

    @property
    def shares(self) -> dict[str, float | None]:
        conv_pool = None if self.pool_values is None else _add(self.conv_values, self.pool_values)
        return {
            "conv_pool_activation_share": _div(conv_pool, self.rows_values),
            "early_activation_share": _div(self.early_values, self.rows_values),
            "fc_activation_share": _div(self.fc_values, self.rows_values),
            "fc_params_share": _div(self.fc_params, self.params),
            "conv_params_share": _div(self.conv_params, self.params),
            "early_params_share": _div(self.early_params, self.params),
            "fc_macs_share": _div(self.fc_macs, self.macs),
            "fc_time_share": _div(self.fc_time_s, self.time_s),
            "conv_time_share": _div(self.conv_time_s, self.time_s),
            "early_time_share": _div(self.early_time_s, self.time_s),
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
        s, pct = self.shares, units.percent
        rows = self.rows_values
        head = f"VGG-16 ({self.input_shape or 'input -'}, batch {self.batch_size or '-'}, "
        head += f"{self.dtype or '-'}). "
        text = head + (
            "The notes (cs231n) say most of the activation memory is in the early convolutional "
            "layers and most of the parameters in the fully connected layers. Of the input and "
            "the convolution, pooling and FC outputs (the rows the notes tabulate), the "
            f"convolution and pooling layers hold {pct(s['conv_pool_activation_share'], 2)}, the "
            f"first two blocks (to the second max pool) {pct(s['early_activation_share'])}; the "
            f"FC layers hold {pct(s['fc_params_share'])} of the parameters "
            f"({units.count(self.fc_params)} of {units.count(self.params)}) and "
            f"{pct(s['fc_macs_share'], 2)} of the MACs."
        )
        if rows is not None:
            values = f"{units.grouped(rows)} values per sample"
            size = units.nbytes(rows * NOTES_BYTES_PER_VALUE)
            ratio = units.ratio(self.total_line_ratio, 3)
            tol = "±" + units.si(NOTES_TOTAL.tolerance)
            if self.total_line_agrees:
                text += f" The rows sum to {values}: the notes' total line agrees (within {tol})."
            else:
                text += (
                    f" The rows sum to {values} ({size} at {NOTES_BYTES_PER_VALUE} bytes); the "
                    f"notes' total line ('{NOTES_TOTAL.quote}') is {ratio} that sum, beyond its "
                    f"own precision ({tol}): each row is a layer's output size, so the sum of the "
                    "rows is the right total, not the total line."
                )
        if self.time_s is not None:
            text += (
                f" Measured layer times: the FC layers take {pct(s['fc_time_share'])}, the "
                f"convolutions {pct(s['conv_time_share'])} and the first two blocks "
                f"{pct(s['early_time_share'])} of {units.seconds(self.time_s)}."
            )
        return text


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _shape_values(shape: Any) -> int | None:
    dims = [int(d) for d in re.findall(r"\d+", "" if is_missing(shape) else str(shape))]
    return math.prod(dims) if dims else None


def vgg16_memory(
    layers: pd.DataFrame,
    *,
    batch_size: int | None = None,
    dtype: str | None = None,
    input_shape: str | None = None,
) -> Vgg16Memory:
    """The VGG-16 memory statement's numbers from the layer rows of ONE profiled case.

    ``layers`` needs ``layer_type``, ``activation_bytes`` and ``params`` (``layer_index``
    orders the rows; ``macs`` and ``time_s`` are used where present). ``batch_size``, ``dtype``
    and ``input_shape`` (``"3x224x224"``) default to the table's own columns; without them the
    per-sample values are None. Rows of several cases (``case_id``) are an InvalidInputError.
    """
    missing = [c for c in ("layer_type", "activation_bytes", "params") if c not in layers]
    if missing:
        raise InvalidInputError(f"the layer table lacks the column(s) {', '.join(missing)}")
    if "case_id" in layers and layers["case_id"].dropna().nunique() > 1:
        raise InvalidInputError("vgg16_memory reads the layer rows of one case; got several")
    if "layer_index" in layers:
        layers = layers.sort_values("layer_index", kind="stable")
    batch = batch_size if batch_size is not None else _first(layers, "batch_size")
    dtype = dtype if dtype is not None else _first(layers, "dtype")
    shape = input_shape if input_shape is not None else _first(layers, "input_shape")
    size = BYTES_PER_VALUE.get(str(dtype))
    scale = None if batch is None or size is None else 1.0 / (int(batch) * size)
    kind = pd.Series([_kind(t) for t in layers["layer_type"]], index=layers.index)
    leaf = (
        layers["layer_kind"].astype("string").fillna("leaf").ne("parent_ops")
        if "layer_kind" in layers
        else pd.Series(True, index=layers.index)
    )
    pools = [i for i, (k, lf) in enumerate(zip(kind, leaf, strict=True)) if k == "pool" and lf]
    early = pd.Series(False, index=layers.index)
    if len(pools) >= 2:
        early.iloc[: pools[1] + 1] = True

    def values(mask: pd.Series) -> float | None:
        total = _sum(layers.loc[mask & leaf, "activation_bytes"])
        return None if total is None or scale is None else total * scale

    def column(name: str, mask: pd.Series | None = None) -> float | None:
        if name not in layers:
            return None
        return _sum(layers.loc[mask if mask is not None else leaf, name])

    timed = "time_s" in layers and layers["time_s"].notna().any()
    every = pd.Series(True, index=layers.index)
    return Vgg16Memory(
        batch_size=None if batch is None else int(batch),
        dtype=None if dtype is None else str(dtype),
        input_shape=None if shape is None else str(shape),
        input_values=_shape_values(shape),
        conv_values=values(kind == "conv"),
        pool_values=values(kind == "pool"),
        fc_values=values(kind == "fc"),
        other_values=values(kind == "other"),
        early_values=values(early & kind.isin(["conv", "pool"])),
        params=column("params"),
        conv_params=column("params", leaf & (kind == "conv")),
        fc_params=column("params", leaf & (kind == "fc")),
        early_params=column("params", leaf & early),
        macs=column("macs", every),
        fc_macs=column("macs", kind == "fc"),
        time_s=column("time_s", every) if timed else None,
        conv_time_s=column("time_s", kind == "conv") if timed else None,
        fc_time_s=column("time_s", kind == "fc") if timed else None,
        early_time_s=column("time_s", early) if timed else None,
    )
