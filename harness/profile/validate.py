"""Input validation on the meta device: the batch size, the size of the input tensor, then one
checked meta forward (harness.profile.shapes' checks on every layer), whose failures become one
typed error naming the layer, the arithmetic and the fix. ``validate_input`` and
``checked_trace`` (which ``profile`` uses: one trace validates and counts)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from harness.core import units
from harness.core.errors import (
    DataDependentForwardError,
    HarnessError,
    InputTooSmallError,
    InvalidInputError,
    first_line,
)
from harness.core.spec import dtype_name, parse_dtype, shape_str
from harness.profile.shapes import ShapeProblem, _Checker, resolve_model, smallest_input
from harness.profile.trace import ForwardFailed, MetaTracer, TraceResult


def _fix_hint(resolved: Any, input_shape: tuple[int, ...]) -> str:
    default = resolved.entry.input_shape if resolved.entry is not None else None
    return f" (the default input is {shape_str(default)})" if default else ""


def _to_error(p: ShapeProblem, resolved: Any, input_shape: tuple[int, ...]) -> HarnessError:
    label, given = resolved.label, shape_str(input_shape)
    layer = f"layer {p.layer} ({p.layer_type})"
    got = shape_str(p.got)
    if p.kind == "too_small":
        entry = resolved.entry
        smallest = entry.min_input_shape if entry is not None else None
        if smallest is None:
            smallest = smallest_input(resolved.module, input_shape[0], len(input_shape) - 1)
        fix = (
            f"the smallest input this model accepts is {shape_str(smallest)}; pass an input "
            f"at least that large (--input {shape_str(smallest)})"
            if smallest
            else "no input up to 4096 wide fits; check the model"
        )
        return InputTooSmallError(
            f"input {given} is too small for {label}: {layer} gets {got} and {p.detail}; {fix}"
        )
    if p.kind == "rank" and p.first_layer and p.expected is not None:
        dims = p.expected
        want = {1: "CxL", 2: "CxHxW", 3: "CxDxHxW"}.get(dims, f"{dims + 1}-D")
        example = resolved.entry.input_shape if resolved.entry is not None else None
        generic = {1: "1x5000", 2: "3x224x224", 3: "3x16x112x112"}.get(dims, want)
        eg = shape_str(example) if example and len(example) == dims + 1 else generic
        return InvalidInputError(
            f"{label} takes {want} inputs (its first layer {p.layer} is {p.layer_type}), got "
            f"the {len(input_shape)}-D shape {given}: give a {want} shape such as {eg}"
        )
    if p.kind == "channels" and p.first_layer and p.expected is not None:
        want = p.expected
        eg = shape_str((want, *input_shape[1:]))
        if input_shape[-1] == want and input_shape[0] != want:  # HxWxC: channels go first
            eg = f"{shape_str((want, *input_shape[:-1]))} (channels first, not last)"
        return InvalidInputError(
            f"{label} expects {want} input channel{'s' if want != 1 else ''} (first layer "
            f"{p.layer}: {p.layer_repr}), "
            f"got {input_shape[0]}: give an input with {want} channel{'s' if want != 1 else ''}"
            f", e.g. {eg}"
        )
    return InvalidInputError(
        f"input {given} does not fit {label}: {layer} gets {got} and {p.detail}; this model "
        f"needs a different input size{_fix_hint(resolved, input_shape)}"
    )


def _reads_values(exc: BaseException) -> bool:
    """Whether a meta forward failed because the model read a tensor's value (``.item()``,
    ``bool(t)``, data-dependent shapes), not because of the input's shape."""
    text = str(exc)
    return any(
        marker in text
        for marker in (
            "cannot be called on meta tensors",
            "data-dependent",
            "Cannot access data pointer",
            "data dependent",
        )
    )


def check_batch_size(batch_size: Any) -> int:
    """A batch size as an int >= 1, or InvalidInputError saying so."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise InvalidInputError(
            f"batch size must be a whole number of samples, got {batch_size!r}: pass e.g. 1"
        )
    if batch_size < 1:
        raise InvalidInputError(
            f"batch size must be at least 1, got {batch_size}: pass --batch 1 or more"
        )
    return batch_size


# torch's sizes are int64: no tensor holds more than 2**63 - 1 bytes
MAX_TENSOR_BYTES = 2**63 - 1


def check_input_size(batch_size: int, shape: Sequence[int], dtype: torch.dtype) -> None:
    """InvalidInputError when a batch of ``shape`` at ``dtype`` is more than one tensor can
    hold (torch would overflow computing its size)."""
    itemsize = torch.empty((), dtype=dtype, device="meta").element_size()
    nbytes = batch_size * math.prod(shape) * itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise InvalidInputError(
            f"a batch of {batch_size} inputs of {shape_str(shape)} at {dtype_name(dtype)} would be "
            f"{nbytes:.3g} bytes ({units.nbytes(nbytes)}), more than one tensor can hold "
            "(2**63 bytes): pass a smaller batch size (--batch)"
        )


def checked_trace(
    model: nn.Module | str,
    input_shape: Sequence[int] | str | None,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
    *,
    count: bool = True,
) -> tuple[TraceResult, Any, tuple[int, ...], torch.dtype]:
    """Validate the arguments, then run one checked meta forward.

    Returns (trace result, resolved model, input shape without batch, dtype); raises
    InputTooSmallError / InvalidInputError (or UnknownModelError for a bad name).
    """
    batch_size = check_batch_size(batch_size)
    torch_dtype = parse_dtype(dtype)
    resolved = resolve_model(model, input_shape, torch_dtype)
    shape = resolved.input_shape
    check_input_size(batch_size, shape, torch_dtype)
    x = torch.empty((batch_size, *shape), device="meta", dtype=torch_dtype)
    checker = _Checker()
    tracer = MetaTracer(
        resolved.module, count=count, module_check=checker.module, op_check=checker.op
    )
    try:
        result = tracer.run(x)
    except ShapeProblem as p:
        raise _to_error(p, resolved, shape) from None
    except ForwardFailed as f:
        where = (
            f"layer {f.frame.name or '<model>'} ({type(f.frame.module).__name__}) with input "
            + ", ".join(shape_str(t.shape) for t in f.frame.inputs if isinstance(t, torch.Tensor))
            if f.frame is not None
            else "before any layer"
        )
        smallest = resolved.entry.min_input_shape if resolved.entry is not None else None
        too_small = smallest is not None and any(
            a < b for a, b in zip(shape[1:], smallest[1:], strict=False)
        )
        if "Storage size calculation overflowed" in str(f.cause):
            raise InvalidInputError(
                f"{resolved.label} at batch {batch_size} on input {shape_str(shape)}: {where} "
                "would output more than one tensor can hold (2**63 bytes): pass a smaller "
                "batch size (--batch) or input"
            ) from None
        if _reads_values(f.cause):
            raise DataDependentForwardError(
                f"{resolved.label} reads tensor values in its forward at {where} "
                f"({first_line(f.cause)}): its control flow "
                "depends on the data, which the meta device does not hold, so it has no static "
                "profile"
            ) from f.cause
        cls = InputTooSmallError if too_small else InvalidInputError
        hint = (
            f"the smallest input this model accepts is {shape_str(smallest)}"
            if too_small and smallest
            else f"check the input shape{_fix_hint(resolved, shape)}"
        )
        raise cls(
            f"{resolved.label} fails on input {shape_str(shape)} at {where}: "
            f"{first_line(f.cause)}; {hint}"
        ) from f.cause
    return result, resolved, shape, torch_dtype


def validate_input(
    model: nn.Module | str,
    input_shape: Sequence[int] | str | None,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
) -> None:
    """Raise InputTooSmallError / InvalidInputError if ``model`` cannot take this input.

    Checks the batch size (>= 1), the dtype, the shape's form, then propagates the shape
    through the model on the meta device (no memory, no compute). ``input_shape`` is without
    the batch; None means the registry's default for a model name.
    """
    checked_trace(model, input_shape, batch_size, dtype, count=False)
