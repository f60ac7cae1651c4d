"""The static profile: one LayerStat per leaf-layer call, totals, roll-ups and shares.

Definitions (units in the names; all counts are for the whole batch):

* ``params``: parameters of the layer itself; a parameter shared by several layers (or a layer
  called twice) is counted once, at its first use. The total is over ``model.parameters()``.
* ``macs``: multiply-accumulates of the ops that ran inside the layer (harness.profile.flops),
  charged to the innermost module running; ``flops = 2 * macs``.
* ``connections``: LeNet's convention: MACs plus one bias addition per output element of a
  layer that has a ``bias`` parameter.
* ``activation_bytes``: bytes of the tensors the layer returns (numel x element size, summed
  over a tuple), except outputs that alias an input: an in-place ReLU, an eval-mode Dropout or
  a Flatten view allocate nothing new. The total is the sum over leaf layers, without the
  input: the per-layer activation counts of the cs231n VGG-16 table, summed.

A layer is a leaf module (one without children), in execution order; a module called twice
gives two rows. A container that runs counted ops itself (a functional conv in its own
``forward``) gets a row too, placed when its call finishes (after its children's rows), with
its own parameters and MACs and no activation bytes (its output is a child's); so the layers'
MACs always add up to the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from harness.core.layers import roll_up
from harness.core.spec import shape_str
from harness.profile.trace import CallRecord
from harness.profile.validate import checked_trace

COUNTER_NAME = "harness-dispatch (torch.utils.flop_counter formulas, meta device)"
TOTAL_KEYS = (
    "params",
    "trainable_params",
    "param_bytes",
    "macs",
    "flops",
    "activation_bytes",
    "connections",
)
FRAME_COLUMNS = (
    "layer_index",
    "layer_name",
    "layer_type",
    "output_shape",
    "params",
    "macs",
    "connections",
    "activation_bytes",
    "cum_params_share",
    "cum_macs_share",
    "cum_activation_share",
)


@dataclass(frozen=True)
class LayerStat:
    """One call of one leaf layer. ``output_shape`` includes the batch (first tensor output)."""

    index: int
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    connections: int
    activation_bytes: int


@dataclass
class ModelProfile:
    """Totals and per-layer statistics of one model at one input, batch size and dtype."""

    model: str
    input_shape: tuple[int, ...]
    batch_size: int
    dtype: str
    params: int
    trainable_params: int
    param_bytes: int
    macs: int
    flops: int
    activation_bytes: int
    connections: int
    layers: list[LayerStat]
    unhandled_ops: dict[str, int]
    counter: str = COUNTER_NAME
    macs_by_op: dict[str, int] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        """The totals as a dict: params, trainable_params, param_bytes, macs, flops,
        activation_bytes, connections."""
        return {k: getattr(self, k) for k in TOTAL_KEYS}

    def to_frame(self) -> pd.DataFrame:
        """One row per layer call (the layers table's columns, harness.core.schema) plus
        cumulative shares of the totals along the depth (0..1)."""
        rows = [
            {
                "layer_index": s.index,
                "layer_name": s.name,
                "layer_type": s.type,
                "output_shape": shape_str(s.output_shape),
                "params": s.params,
                "macs": s.macs,
                "connections": s.connections,
                "activation_bytes": s.activation_bytes,
            }
            for s in self.layers
        ]
        frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS[:8]))
        for col, total, share in (
            ("params", self.params, "cum_params_share"),
            ("macs", self.macs, "cum_macs_share"),
            ("activation_bytes", self.activation_bytes, "cum_activation_share"),
        ):
            frame[share] = frame[col].cumsum() / total if total else float("nan")
        return frame.astype(
            {
                c: "int64"
                for c in ("layer_index", "params", "macs", "connections", "activation_bytes")
            }
        )

    def by_type(self) -> pd.DataFrame:
        """Roll-up per layer type, in order of first appearance: count (calls), params, macs,
        activation_bytes and their shares of the totals (0..1); harness.core.layers.roll_up."""
        grouped = roll_up(
            self.to_frame(),
            "layer_type",
            ("params", "macs", "activation_bytes"),
            totals={"params": self.params, "macs": self.macs,
                    "activation_bytes": self.activation_bytes},
        )  # fmt: skip
        return grouped.rename(
            columns={"layers": "count", "activation_bytes_share": "activation_share"}
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: identity, totals, counter, unhandled ops, by-type roll-ups and layers
        (keys as in the layers table: layer_index, layer_name, layer_type, output_shape, ...)."""
        layers = self.to_frame().iloc[:, :8].to_dict(orient="records")
        return {
            "model": self.model,
            "input_shape": shape_str(self.input_shape),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            **self.totals(),
            "counter": self.counter,
            "macs_by_op": dict(self.macs_by_op),
            "unhandled_ops": dict(self.unhandled_ops),
            "by_type": self.by_type().to_dict(orient="records"),
            "layers": layers,
        }


def _storage_key(t: torch.Tensor) -> int | None:
    try:  # the StorageImpl's address: equal for a view or an in-place result (also on meta)
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
        return None


def _is_alias(t: torch.Tensor, inputs: list[torch.Tensor]) -> bool:
    key = _storage_key(t)
    return key is not None and any(_storage_key(i) == key for i in inputs)


def _layer_stat(index: int, call: CallRecord, seen: set[int]) -> LayerStat:
    outputs = [t for t in tree_leaves(call.output) if isinstance(t, torch.Tensor)]
    inputs = [t for t in tree_leaves(call.inputs) if isinstance(t, torch.Tensor)]
    params = 0
    for p in call.module.parameters(recurse=False):
        if id(p) not in seen:
            seen.add(id(p))
            params += p.numel()
    out_shape = tuple(outputs[0].shape) if outputs else ()
    bias = getattr(call.module, "bias", None)
    bias_adds = outputs[0].numel() if outputs and isinstance(bias, nn.Parameter) else 0
    activation = (
        sum(t.numel() * t.element_size() for t in outputs if not _is_alias(t, inputs))
        if call.leaf
        else 0
    )
    return LayerStat(
        index=index,
        name=call.name or "<model>",
        type=type(call.module).__name__,
        output_shape=out_shape,
        params=int(params),
        macs=int(call.macs),
        connections=int(call.macs + bias_adds),
        activation_bytes=int(activation),
    )


def profile(
    model_or_name: nn.Module | str,
    input_shape: Sequence[int] | str | None = None,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
) -> ModelProfile:
    """Profile a model statically on the meta device: no real memory, no real compute.

    ``input_shape`` is without the batch (CxHxW or CxL); None takes the registry's default for
    a model name (an ``nn.Module`` needs one). A module is copied to meta without copying its
    weights. Raises InputTooSmallError / InvalidInputError for an input the model cannot take.
    """
    result, resolved, shape, torch_dtype = checked_trace(
        model_or_name, input_shape, batch_size, dtype, count=True
    )
    seen: set[int] = set()
    layers = [_layer_stat(i, call, seen) for i, call in enumerate(result.calls)]
    module = resolved.module
    unique = list({id(p): p for p in module.parameters()}.values())
    macs = sum(result.macs_by_op.values())
    return ModelProfile(
        model=resolved.label,
        input_shape=shape,
        batch_size=batch_size,
        dtype=str(torch_dtype).removeprefix("torch."),
        params=sum(p.numel() for p in unique),
        trainable_params=sum(p.numel() for p in unique if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in unique),
        macs=macs,
        flops=2 * macs,
        activation_bytes=sum(s.activation_bytes for s in layers),
        connections=sum(s.connections for s in layers),
        layers=layers,
        unhandled_ops=dict(result.unhandled_ops),
        macs_by_op=dict(result.macs_by_op),
    )
