"""Measured time per layer, joined to the static layer table, so that the rows add up.

Method. After a case's timed rounds (never inside them) the runner calls
``measure_layer_times``. It runs the case's own step a few more times:

1. ``steps`` (K) *profiled steps* under ``torch.profiler`` (CPU activity; CUDA activity through
   CUPTI on a GPU). A forward pre-hook on every module opens a ``record_function`` range per
   module call (``torch._C._profiler._RecordFunctionFast``, the cheap C++ range Dynamo uses)
   and the forward hook closes it, so every ATen op the profiler records sits inside the range
   of the innermost module whose forward issued it.
2. In the first profiled step the hooks also record each call (in execution order) and the
   real sizes of its inputs and outputs, outside the ranges. The leaf calls must line up one to
   one, in order, with the static profile's rows (harness.profile.layers: one row per
   leaf-layer call, a module called twice has two rows); a model whose calls differ from the
   static trace's (a module that runs only in training) is refused with the first difference.
3. Each ATen op's time goes to that innermost module call: on the CPU the op's CPU time (its
   self time plus its nested ops' self time), on a GPU the time of the kernels (and memcpy /
   memset) it launched, measured on the device by CUPTI. An op issued by a parent module's own
   forward, outside its children (the residual add, ``torch.cat``, ``flatten``, a functional
   ReLU), goes to that parent: one ``layer_kind = 'parent_ops'`` row per parent call that ran
   ops of its own, placed after its children (where the static profile places a parent's row).
   A layer's ``time_s`` is the median over the K steps.

Why this method. Hooks that read a clock (DeepSpeed's flops profiler, ``flops-profiler``) bill
each module the hooks' own cost and, on a GPU, need a synchronise per module; their per-module
latencies do not add up to the step. ``torch.profiler``'s ``key_averages()`` gives time per op
name, not per layer. Here the hooks only open and close a range; their Python (a few
microseconds per module call) runs between ops, the clock is the profiler's, and only op time
is billed, so a small module is not inflated by the hooks. What the profiler itself costs (the
hooks, and its bookkeeping of every op) shows in ``layer_time_source``: the profiled steps'
wall time as a multiple of the timed median (``profiled_step_ratio`` reads it back).

What the rows add up to. ``layer_time_coverage`` = (sum of ``time_s`` + sum of
``time_s_backward``) / the timed median step. On the CPU the rest is Python time between ops
(module calls, the hooks) and whatever the step runs outside the model; the profiler's own
bookkeeping of nested ops sits inside the op times and can push coverage above 1 on small models.
On a GPU the kernels' sum is at most the step and the rest is launch and idle time (the CPU
issuing work while the GPU waits, and the final synchronise).

Training. The forward runs as in inference. Backward time per layer comes from autograd's
sequence numbers: the op that creates an autograd node records the node's sequence number, and
the backward event ``autograd::engine::evaluate_function: <Node>`` carries the same number; so
each node's backward time (CPU time of the event, or its kernels' time on a GPU) goes to the
module call whose range held the op that created it, in ``time_s_backward``. Ops record the
number that is current when they start, so the node is placed by the *last* op to start with
that number (the creating op: the number advances as the node is made). The loss, the optimizer
step, ``zero_grad`` and gradient accumulation (``AccumulateGrad`` nodes have no sequence number)
belong to no layer and are outside the coverage.

Columns (harness.core.schema LAYERS). ``time_share`` = time_s / sum of time_s (forward).
``achieved_flops_per_s`` = 2 x macs / time_s; ``bytes_moved`` = the layer's own parameters and
buffers (read at every call, so a shared module counts them at each) + every tensor it gets +
every tensor it returns, floating-point tensors at the case's dtype (the precision the case asks
for, also under autocast; other tensors at their own size), from the sizes seen in the first
profiled step, views included (Flatten copies nothing but counts its input and output);
``arithmetic_intensity`` = 2 x macs / bytes_moved. Null, never 0, where a value cannot be had:
FLOP/s and intensity of a layer without counted MACs (ReLU, pooling, the residual add: the MAC
counter counts multiply-accumulates only) or with no measured time; ``bytes_moved`` of a
``parent_ops`` row (the tensors a parent's own ops read are not seen by module hooks); backward
time of an inference case.

Row order and ``layer_index``: execution order, renumbered 0..n-1 over the leaf rows and the
parent_ops rows together (a parent_ops row follows its parent's last child).

Nothing stays behind: the hooks are removed, the profiler stops, and on a GPU CUPTI is torn
down when it stops (harness.measure.profiling), so a case after a profiled one in the same
process runs as it would have without it.

Not measured (``layer_time_source`` says why, the time columns are null): torch.compile'd cases,
since Inductor fuses ops of neighbouring layers into one kernel (a fused conv+bn+relu belongs to
no single layer) and hooks added after compiling would force a recompile of the graph being
measured; measure the eager case instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from harness.core.errors import InvalidInputError
from harness.core.schema import column_names
from harness.core.spec import Case, shape_str
from harness.measure.layer_calls import (
    RANGE_PREFIX,
    Hooks,
    LayerTimeError,
    Row,
    bytes_moved,
    float_bytes,
    join_calls,
)
from harness.measure.profiling import CUPTI_SOURCE, STEP_PREFIX, profile_steps

LAYER_COLUMNS = column_names("layers")
BACKWARD_PREFIX = "autograd::engine::evaluate_function: "
TIME_COLUMNS = (
    "layer_kind",
    "time_s",
    "time_s_backward",
    "time_share",
    "achieved_flops_per_s",
    "bytes_moved",
    "arithmetic_intensity",
)
PROFILED_RATIO_TEXT = (
    "a profiled step took {ratio:.3f}x the timed median (the profiler's overhead, and any "
    "change of load since the rounds)"
)
PROFILED_RATIO_PATTERN = r"a profiled step took ([0-9.]+)x the timed median"
COMPILED_REASON = (
    "not measured: compiled case (torch.compile fuses ops of neighbouring layers into one "
    "kernel, so no op belongs to one layer); measure the eager case"
)


@dataclass
class LayerTimes:
    """``layers``: the static layer frame with the time columns filled (and parent_ops rows);
    ``columns``: the case row's layer_time_coverage, layer_time_steps, layer_time_source."""

    layers: pd.DataFrame
    columns: dict[str, Any]


def _in_cuda(device: torch.device) -> bool:
    return device.type == "cuda"


def _op_time_us(event: Any, cuda: bool) -> float:
    """An op's time (its nested ops included): CPU time, or its kernels' device time."""
    return float(event.device_time_total if cuda else event.cpu_time_total)


def _range_index(name: str) -> int | None:
    if name.startswith(RANGE_PREFIX):
        rest = name[len(RANGE_PREFIX) :]
        return int(rest) if rest.isdigit() else None
    return None


def _forward_times(
    step_event: Any, n_calls: int, cuda: bool, training: bool
) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Per call of one step: op time (us) and op count in the call's own range (ops of child
    ranges excluded), and sequence number -> call for the autograd nodes its ops created."""
    times = np.zeros(n_calls)
    counts = np.zeros(n_calls, dtype=np.int64)
    seq_start: dict[int, tuple[float, int]] = {}
    todo: list[tuple[Any, int | None]] = [(c, None) for c in step_event.cpu_children]
    while todo:
        event, owner = todo.pop()
        index = _range_index(event.name)
        if index is not None:
            if index >= n_calls:
                raise LayerTimeError(
                    f"a profiled step made more module calls than the first one ({n_calls})"
                )
            todo.extend((c, index) for c in event.cpu_children)
            continue
        if owner is None:  # outside the model (loss, optimizer, backward on the CPU)
            continue
        times[owner] += _op_time_us(event, cuda)
        counts[owner] += 1
        if training:  # every op in the subtree may record a sequence number
            nested = [event]
            while nested:
                e = nested.pop()
                seq = e.sequence_nr
                if seq is not None and seq >= 0:
                    start = e.time_range.start
                    if seq not in seq_start or start >= seq_start[seq][0]:
                        seq_start[seq] = (start, owner)
                nested.extend(e.cpu_children)
    return times, counts, {seq: owner for seq, (_, owner) in seq_start.items()}


def _inside_backward(event: Any) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(BACKWARD_PREFIX):
            return True
        parent = parent.cpu_parent
    return False


def _backward_times(
    events: Iterable[Any],
    span: tuple[float, float],
    seq_owner: dict[int, int],
    n_calls: int,
    cuda: bool,
) -> np.ndarray:
    """Per call of one step: time (us) of the autograd nodes its forward created."""
    times = np.zeros(n_calls)
    start, end = span
    for event in events:
        if not event.name.startswith(BACKWARD_PREFIX):
            continue
        if not start <= event.time_range.start <= end or _inside_backward(event):
            continue
        owner = seq_owner.get(event.sequence_nr)
        if owner is not None:
            times[owner] += _op_time_us(event, cuda)
    return times


# ------------------------------------------------------------------------------------ frame


def _with_kinds(static: pd.DataFrame) -> pd.DataFrame:
    """The static frame with the time columns present and null (layer_kind from the names: a
    row whose name prefixes another row's is a parent's own row)."""
    frame = static.copy()
    names = list(frame["layer_name"]) if len(frame) else []
    parents = {n for n in names if any(o.startswith(n + ".") for o in names)}
    if len(names) > 1:
        parents.add("<model>")  # the root's own row, when it has children
    frame["layer_kind"] = ["parent_ops" if n in parents else "leaf" for n in names]
    for col in TIME_COLUMNS[1:]:
        dtype = "Int64" if col == "bytes_moved" else "Float64"
        frame[col] = pd.Series([pd.NA] * len(frame), dtype=dtype, index=frame.index)
    return frame[[c for c in LAYER_COLUMNS if c in frame.columns]]


def not_measured(static: pd.DataFrame, reason: str) -> LayerTimes:
    """The static rows with null time columns, and the case columns saying why."""
    return LayerTimes(
        _with_kinds(static),
        {"layer_time_coverage": None, "layer_time_steps": None, "layer_time_source": reason},
    )


def _frame(
    rows: list[Row],
    static: pd.DataFrame,
    forward_s: np.ndarray,
    backward_s: np.ndarray | None,
    float_size: int,
) -> pd.DataFrame:
    keys = [c for c in ("model", "input_shape", "batch_size", "dtype") if c in static.columns]
    ident = {c: static[c].iloc[0] for c in keys} if len(static) else {}
    static_records = static.to_dict(orient="records")
    seen: set[int] = set()
    for row in rows:  # parameters the static rows counted (at their first use)
        if row.static_index is not None:
            seen.update(id(p) for p in row.call.module.parameters(recurse=False))
    records = []
    for position, row in enumerate(rows):
        call = row.call
        if row.static_index is not None:
            record = dict(static_records[row.static_index])
        else:
            fresh = [p for p in call.module.parameters(recurse=False) if id(p) not in seen]
            seen.update(id(p) for p in fresh)
            record = {
                **ident,
                "layer_name": call.name,
                "layer_type": type(call.module).__name__,
                "output_shape": shape_str(call.output_shape),
                "params": sum(p.numel() for p in fresh),
                "macs": 0,  # the static trace found no counted op in this parent's own forward
                "connections": 0,
                "activation_bytes": 0,  # a parent's output is a child's (static convention)
            }
        record["layer_index"] = position
        record["layer_kind"] = row.kind
        record["time_s"] = float(forward_s[position])
        record["time_s_backward"] = float(backward_s[position]) if backward_s is not None else None
        record["bytes_moved"] = bytes_moved(call, float_size) if row.kind == "leaf" else None
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    total = frame["time_s"].sum()
    frame["time_share"] = frame["time_s"] / total if total > 0 else np.nan
    flops = 2.0 * pd.to_numeric(frame["macs"], errors="coerce")
    counted = flops.where(flops > 0)
    time_s = frame["time_s"].where(frame["time_s"] > 0)
    frame["achieved_flops_per_s"] = counted / time_s
    moved = pd.to_numeric(frame["bytes_moved"], errors="coerce")
    frame["arithmetic_intensity"] = counted / moved.where(moved > 0)
    frame["bytes_moved"] = frame["bytes_moved"].astype("Int64")
    frame["time_s_backward"] = frame["time_s_backward"].astype("Float64")
    for col in ("time_s", "time_share", "achieved_flops_per_s", "arithmetic_intensity"):
        frame[col] = frame[col].astype("Float64")
    for col in ("layer_index", "params", "macs", "connections", "activation_bytes"):
        if col in frame.columns:
            frame[col] = frame[col].astype("int64")
    return frame[[c for c in LAYER_COLUMNS if c in frame.columns]]


# ------------------------------------------------------------------------------------- entry


def _source(device: torch.device, training: bool, steps: int, overhead: float) -> str:
    if _in_cuda(device):
        what = (
            f"{CUPTI_SOURCE}: kernel time of the ops each module call issued; the rest of the "
            "step is launch and idle time"
        )
    else:
        what = (
            "torch.profiler CPU activity: CPU time of the ATen ops each module call issued; "
            "Python time between ops is in no layer"
        )
    text = f"{what}; median of {steps} profiled steps after the timed rounds"
    if training:
        text += (
            "; backward per layer by autograd sequence number (loss, optimizer step and "
            "gradient accumulation in no layer)"
        )
    return f"{text}; {PROFILED_RATIO_TEXT.format(ratio=overhead)}"


def profiled_step_ratio(source: str | None) -> float | None:
    """The profiled step's median wall time / the timed median, read back from a
    ``layer_time_source``; None where it is not there (not measured). ``layer_time_coverage``
    divided by it is the layers' share of the profiled steps themselves, which a change of load
    between the timed rounds and the profiled steps leaves alone."""
    match = re.search(PROFILED_RATIO_PATTERN, source or "")
    return float(match.group(1)) if match else None


def measure_layer_times(
    prepared: Any,
    case: Case,
    device: torch.device,
    *,
    steps: int,
    static: pd.DataFrame,
    step_median_s: float,
) -> LayerTimes:
    """Profile ``steps`` more steps of ``prepared`` (a harness.run.step.PreparedStep, with its
    contexts already entered) and join the time per module call to ``static`` (the runner's
    static layer frame). See the module docstring for the method and the columns.

    Raises LayerTimeError when the measured calls cannot be joined to the static rows or the
    profiler saw nothing; InvalidInputError for ``steps`` < 1 or a step median that is not > 0.
    A compiled case is not measured: the static rows come back with null times and the reason.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"layer-time steps must be an integer >= 1, got {steps!r}")
    if not step_median_s > 0:
        raise InvalidInputError(f"the step median must be > 0 s, got {step_median_s!r}")
    if case.compile:
        return not_measured(static, COMPILED_REASON)
    training = case.mode == "training"
    cuda = _in_cuda(device)
    hooks = Hooks(prepared.model)
    try:
        events, walls = profile_steps(prepared.step, steps, device, hooks.begin_step)
    finally:
        hooks.remove()
    calls = hooks.calls
    rows = join_calls(calls, hooks.finished, static)
    n = len(calls)

    step_events = sorted(
        (e for e in events if e.name.startswith(STEP_PREFIX)), key=lambda e: e.time_range.start
    )
    if len(step_events) != steps:
        raise LayerTimeError(
            f"the profiler recorded {len(step_events)} of {steps} steps: torch.profiler "
            "gave no usable events here"
        )
    forward = np.zeros((steps, n))
    backward = np.zeros((steps, n))
    op_counts = np.zeros(n, dtype=np.int64)
    for k, step_event in enumerate(step_events):
        times, counts, seq_owner = _forward_times(step_event, n, cuda, training)
        forward[k] = times
        op_counts += counts
        if training:
            span = (step_event.time_range.start, step_event.time_range.end)
            backward[k] = _backward_times(events, span, seq_owner, n, cuda)
    if op_counts.sum() == 0:
        raise LayerTimeError("the profiler recorded no op inside any module: nothing to time")
    if cuda and not forward.any():
        raise LayerTimeError(
            "the profiler recorded no kernel time (CUPTI gave no CUDA activity): is CUPTI "
            "usable here?"
        )

    # Rows: leaf calls and static parent rows always, other parents only where they ran ops.
    rows = [r for r in rows if r.static_index is not None or op_counts[r.call.index] > 0]
    order = [r.call.index for r in rows]
    forward_s = np.median(forward, axis=0)[order] / 1e6
    backward_s = np.median(backward, axis=0)[order] / 1e6 if training else None
    frame = _frame(rows, static, forward_s, backward_s, float_bytes(case))
    covered = float(forward_s.sum() + (backward_s.sum() if backward_s is not None else 0.0))
    overhead = float(np.median(walls)) / step_median_s
    return LayerTimes(
        frame,
        {
            "layer_time_coverage": covered / step_median_s,
            "layer_time_steps": steps,
            "layer_time_source": _source(device, training, steps, overhead),
        },
    )
