"""The module calls of one profiled step, as forward hooks see them, and their join to the static
layer table (harness.measure.layer_times measures their time): each call's order, name and
module, the real sizes of its inputs and outputs, and the bytes it moves. The leaf calls must
line up one to one, in order, with the static profile's rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from harness.core.errors import HarnessError
from harness.core.spec import Case

RANGE_PREFIX = "cnnbench.layer#"


class LayerTimeError(HarnessError, RuntimeError):
    """The measured calls cannot be joined to the static rows, or the profiler gave no events."""


@dataclass
class Call:
    """One module call, as the hooks saw it in the first profiled step."""

    index: int  # order of the call's start (pre-hook)
    name: str
    module: nn.Module
    leaf: bool
    inputs: list[tuple[int, int | None]] = field(default_factory=list)  # _tensor_sizes
    outputs: list[tuple[int, int | None]] = field(default_factory=list)
    output_shape: tuple[int, ...] = ()


def _tensor_sizes(obj: Any) -> list[tuple[int, int | None]]:
    """(numel, element size) of every tensor in ``obj``; the size is None for floating-point
    tensors, which count at the case's dtype."""
    return [
        (t.numel(), None if t.is_floating_point() else t.element_size())
        for t in tree_leaves(obj)
        if isinstance(t, torch.Tensor)
    ]


def _module_names(model: nn.Module) -> dict[nn.Module, str]:
    """Module -> qualified name as the static trace names it (the last name of a module
    registered twice; the root is ``<model>``)."""
    names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
    return {m: (n or "<model>") for m, n in names.items()}


class Hooks:
    """Forward hooks on every module of ``model``: each call opens a profiler range named after
    its index in the step (``cnnbench.layer#<i>``) and closes it when the call returns. In a
    step begun with ``record=True`` they also record each call (name, leaf, the sizes of its
    inputs and outputs), outside the ranges."""

    def __init__(self, model: nn.Module) -> None:
        from torch._C._profiler import _RecordFunctionFast

        self.names = _module_names(model)
        self.calls: list[Call] = []
        self.finished: list[int] = []  # call indices in finish order
        self._record = False
        self._next = 0
        self._open: list[tuple[int, Any]] = []
        range_ = _RecordFunctionFast

        def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
            index = self._next
            self._next = index + 1
            if self._record:
                leaf = next(module.children(), None) is None
                call = Call(index, self.names[module], module, leaf)
                call.inputs = _tensor_sizes(args) + _tensor_sizes(kwargs)
                self.calls.append(call)
            rf = range_(f"{RANGE_PREFIX}{index}")
            rf.__enter__()
            self._open.append((index, rf))

        def post(module: nn.Module, args: tuple, output: Any) -> None:
            index, rf = self._open.pop()
            rf.__exit__(None, None, None)
            if self._record:
                call = self.calls[index]
                call.outputs = _tensor_sizes(output)
                first = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
                call.output_shape = tuple(first.shape) if first is not None else ()
                self.finished.append(index)

        self.handles = []
        for module in self.names:
            self.handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            self.handles.append(module.register_forward_hook(post, always_call=True))

    def begin_step(self, record: bool) -> None:
        self._record = record
        self._next = 0
        self._open.clear()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


# ------------------------------------------------------------------------- joining to static


@dataclass
class Row:
    """One output row: a call and, where the static profile has one, its static row."""

    call: Call
    static_index: int | None
    kind: str  # 'leaf' or 'parent_ops'


def join_calls(calls: list[Call], finished: list[int], static: pd.DataFrame) -> list[Row]:
    """Walk the calls in finish order beside the static rows (leaf calls, and parents that ran
    counted ops themselves, in finish order). Every leaf call takes the next static row, whose
    name must match; a parent takes the next static row if it is its own, else it becomes a
    candidate parent_ops row (kept only if it ran ops of its own)."""
    names = list(static["layer_name"]) if len(static) else []
    rows: list[Row] = []
    j = 0
    for index in finished:
        call = calls[index]
        if call.leaf:
            if j >= len(names) or names[j] != call.name:
                expected = names[j] if j < len(names) else "no more rows"
                raise LayerTimeError(
                    f"measured leaf call {len(rows)} is {call.name!r} but the static profile's "
                    f"row {j} is {expected!r}: the model runs other layers than its static "
                    "trace (e.g. a module used only in training), so times cannot be joined"
                )
            rows.append(Row(call, j, "leaf"))
            j += 1
        elif j < len(names) and names[j] == call.name:
            rows.append(Row(call, j, "parent_ops"))
            j += 1
        else:
            rows.append(Row(call, None, "parent_ops"))
    if j != len(names):
        raise LayerTimeError(
            f"the static profile has {len(names)} rows but only {j} measured calls matched "
            f"(next unmatched: {names[j]!r}): the model's calls differ from its static trace"
        )
    return rows


# ---------------------------------------------------------------------------- profile events


def float_bytes(case: Case) -> int:
    return torch.empty((), dtype=case.torch_dtype).element_size()


def bytes_moved(call: Call, float_size: int) -> int:
    """The call's own parameters and buffers + its inputs + its outputs, in bytes."""
    weights = _tensor_sizes(
        [*call.module.parameters(recurse=False), *call.module.buffers(recurse=False)]
    )
    sizes = [*weights, *call.inputs, *call.outputs]
    return sum(n * (float_size if size is None else size) for n, size in sizes)
