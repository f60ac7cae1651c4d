"""Input validation: a wrong input fails on the meta device, before anything real runs.

Each convolution and pooling layer's output size is checked with the formula of the course
notes, ``out = (N - F + 2P) / S + 1`` rounded down (up with ``ceil_mode``), in torch's general
form ``floor((N + 2P - D*(F - 1) - 1) / S) + 1`` with dilation D. The checks run in forward
pre-hooks (``nn.Conv*``, ``nn.*Pool*``, ``nn.Linear``, ``nn.BatchNorm*``) and, for functional
calls such as ``F.conv2d`` inside a custom module, on the ATen ops themselves. A failure names
the layer (qualified name and type), the shape it receives, the arithmetic that failed, the
smallest input the model accepts and how to fix the call. Anything else that fails inside the
meta forward is reported with the last layer entered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.core import units
from harness.core.errors import (
    DataDependentForwardError,
    HarnessError,
    InputTooSmallError,
    InvalidInputError,
    ModelBuildError,
    first_line,
)
from harness.core.spec import dtype_name, parse_dtype, shape_str
from harness.profile.trace import ForwardFailed, Frame, MetaTracer, Resolved, TraceResult, resolve

aten = torch.ops.aten

_DIM_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOL_DIMS: dict[type, int] = {
    nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3,
    nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
}  # fmt: skip
_POOLS = tuple(_POOL_DIMS)


def output_size(
    n: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a convolution or pooling window sliding over ``n`` positions.

    ``floor((n + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1``, or ``ceil`` with
    ``ceil_mode`` where, as in torch, a last window starting inside the right padding is
    dropped. A 5x5 filter on 32 at stride 1 gives 28; padding (F - 1)/2 keeps the size.
    """
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= n + padding:
        out -= 1
    return out


def formula_text(
    n: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False
) -> str:
    """The arithmetic of ``output_size`` written out: ``floor((1 - 3 + 2*0)/2) + 1 = 0``."""
    field = f"{kernel}" if dilation == 1 else f"({dilation}*({kernel} - 1) + 1)"
    text = f"{'ceil' if ceil_mode else 'floor'}(({n} - {field} + 2*{padding})/{stride}) + 1"
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    rounded = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    out = output_size(n, kernel, stride, padding, dilation, ceil_mode)
    if out != rounded:
        text += " - 1 (ceil_mode drops a last window that would start in the padding)"
    return f"{text} = {out}"


@dataclass(eq=False)
class ShapeProblem(HarnessError):
    """Raised by a check inside the meta forward; turned into the public error by ``check``."""

    kind: str  # too_small, rank, channels, features
    layer: str
    layer_type: str
    layer_repr: str
    got: tuple[int, ...]
    detail: str
    first_layer: bool = False
    expected: int | None = None

    def __str__(self) -> str:
        return f"{self.layer} ({self.layer_type}): {self.detail}"


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value) if len(value) == n else tuple([int(value[0])] * n)
    return (int(value),) * n


class _Checker:
    """The per-module and per-op checks of one forward pass."""

    def __init__(self) -> None:
        self.seen_weighted = False

    def problem(
        self, kind: str, name: str, module: nn.Module, got: Any, detail: str,
        expected: int | None = None,
    ) -> None:  # fmt: skip
        raise ShapeProblem(
            kind, name or "<model>", type(module).__name__, repr(module).split("\n")[0],
            tuple(got), detail, not self.seen_weighted, expected,
        )  # fmt: skip

    def _windows(
        self, name: str, module: nn.Module, x: torch.Tensor, kernel: Sequence[int],
        stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool,
    ) -> None:  # fmt: skip
        spatial = tuple(x.shape[-len(kernel) :])
        names = _DIM_NAMES.get(len(kernel), tuple(f"dim {i}" for i in range(len(kernel))))
        for i, n in enumerate(spatial):
            k, s, p, d = kernel[i], stride[i], padding[i], dilation[i]
            if output_size(n, k, s, p, d, ceil_mode) < 1:
                arithmetic = formula_text(n, k, s, p, d, ceil_mode)
                self.problem(
                    "too_small", name, module, x.shape,
                    f"computes its output {names[i]} as {arithmetic}",
                )  # fmt: skip

    def module(self, name: str, module: nn.Module, args: tuple) -> None:
        """Forward pre-hook: rank, channels, features and window arithmetic of one layer."""
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is None:
            return
        if isinstance(module, (*_CONVS, nn.ConvTranspose1d, nn.ConvTranspose2d)):
            dims = len(module.kernel_size)
            if x.dim() != dims + 2:
                self.problem("rank", name, module, x.shape, f"needs {dims + 2}-D input", dims)
            if x.shape[1] != module.in_channels:
                self.problem(
                    "channels", name, module, x.shape,
                    f"expects {module.in_channels} input channels, gets {x.shape[1]}",
                    module.in_channels,
                )  # fmt: skip
            self.seen_weighted = True
            if isinstance(module, _CONVS):
                if isinstance(module.padding, str):  # "same" keeps the size, "valid" is 0
                    if module.padding == "same":
                        return
                    padding: tuple[int, ...] = (0,) * dims
                else:
                    padding = tuple(module.padding)
                self._windows(
                    name, module, x, module.kernel_size, module.stride, padding,
                    module.dilation, False,
                )  # fmt: skip
        elif isinstance(module, _POOLS):
            dims = next(d for cls, d in _POOL_DIMS.items() if isinstance(module, cls))
            kernel = _tuple(module.kernel_size, dims)
            stride = _tuple(module.stride or module.kernel_size, dims)
            dilation = _tuple(getattr(module, "dilation", 1), dims)
            if x.dim() not in (dims + 1, dims + 2):
                self.problem("rank", name, module, x.shape, f"needs {dims + 2}-D input", dims)
            self._windows(
                name, module, x, kernel, stride, _tuple(module.padding, dims), dilation,
                module.ceil_mode,
            )  # fmt: skip
        elif isinstance(module, nn.Linear):
            if x.shape[-1] != module.in_features:
                self.problem(
                    "features", name, module, x.shape,
                    f"expects {module.in_features} input features, gets {x.shape[-1]}",
                    module.in_features,
                )  # fmt: skip
            self.seen_weighted = True
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and (
            x.dim() < 2 or x.shape[1] != module.num_features
        ):
            got = x.shape[1] if x.dim() >= 2 else "none"
            self.problem(
                "channels", name, module, x.shape,
                f"expects {module.num_features} channels, gets {got}",
            )  # fmt: skip

    def op(self, packet: Any, args: tuple, kwargs: dict, frame: Frame) -> None:
        """Checks on the ATen ops themselves, for functional calls inside custom modules."""
        if packet is aten.convolution:
            x, w = args[0], args[1]
            stride, padding, dilation, transposed = args[3], args[4], args[5], args[6]
            groups = args[8]
            if transposed or x.dim() != w.dim():
                return
            if x.shape[1] != w.shape[1] * groups:
                self.problem(
                    "channels", frame.name, frame.module, x.shape,
                    f"convolves {w.shape[1] * groups} input channels, gets {x.shape[1]}",
                    w.shape[1] * groups,
                )  # fmt: skip
            self.seen_weighted = True
            dims = w.dim() - 2
            self._windows(
                frame.name, frame.module, x, tuple(w.shape[2:]), _tuple(stride, dims),
                _tuple(padding, dims), _tuple(dilation, dims), False,
            )  # fmt: skip
        elif packet in (aten.max_pool2d_with_indices, aten.avg_pool2d):
            x, kernel = args[0], _tuple(args[1], 2)
            stride = _tuple(args[2], 2) if len(args) > 2 and args[2] else kernel
            padding = _tuple(args[3], 2) if len(args) > 3 else (0, 0)
            if packet is aten.max_pool2d_with_indices:
                dilation = _tuple(args[4], 2) if len(args) > 4 else (1, 1)
                ceil_mode = bool(args[5]) if len(args) > 5 else False
            else:
                dilation, ceil_mode = (1, 1), bool(args[4]) if len(args) > 4 else False
            self._windows(frame.name, frame.module, x, kernel, stride, padding, dilation, ceil_mode)


def _probe(model: nn.Module, shape: tuple[int, ...]) -> str:
    """How a batch-1 input of ``shape`` fares: ``ok``, ``small`` (a window does not fit, or too
    few features reach a Linear), ``large`` (too many features) or ``error``."""
    x = torch.empty((1, *shape), device="meta")
    checker = _Checker()
    tracer = MetaTracer(model, count=False, module_check=checker.module, op_check=checker.op)
    try:
        tracer.run(x)
    except ShapeProblem as p:
        if p.kind == "too_small":
            return "small"
        if p.kind == "features" and p.expected is not None:
            return "small" if p.got[-1] < p.expected else "large"
        return "error"
    except (ForwardFailed, HarnessError):
        return "error"
    return "ok"


def resolve_model(
    model: nn.Module | str,
    input_shape: Sequence[int] | str | None,
    dtype: torch.dtype = torch.float32,
) -> Resolved:
    """``harness.profile.trace.resolve`` (the model built on the meta device), with a failure
    of the model's own code (its factory, its copy to the meta device) turned into one
    ModelBuildError line. Nothing real is allocated on the meta device, so nothing here is out
    of memory."""
    try:
        return resolve(model, input_shape, dtype)
    except HarnessError:
        raise
    except Exception as exc:
        if isinstance(model, str):
            from harness.models.resolve import get_entry

            factory = get_entry(model).factory
            where = (
                f"{getattr(factory, '__module__', '?')}:"
                f"{getattr(factory, '__qualname__', repr(factory))}"
            )
            label, fix = f"model {model!r}", f"fix its factory ({where}) or name another model"
        else:
            label, fix = f"model {type(model).__name__}", "check the module"
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise ModelBuildError(f"{label}: building it raised {reason}; {fix}") from exc


def smallest_input(
    model: nn.Module | str, channels: int | None = None, rank: int = 2, limit: int = 4096
) -> tuple[int, ...] | None:
    """The smallest square (or length) input the model takes, found by shape propagation.

    Every window (conv, pool) must fit, and the features reaching a Linear layer must match
    its ``in_features`` (a fixed-size classifier, as in the original AlexNet). ``rank`` is the
    number of spatial dimensions (2 for CxHxW, 1 for CxL); a name brings its own. Binary search
    on the meta device, assuming sizes that fit grow with the input; None when nothing up to
    ``limit`` fits.
    """
    resolved = resolve_model(model, None if isinstance(model, str) else (1,) * (rank + 1))
    if isinstance(model, str):
        channels = channels or resolved.input_shape[0]
        rank = len(resolved.input_shape) - 1
    if channels is None:
        raise InvalidInputError("smallest_input needs the number of channels for an nn.Module")
    module = resolved.module

    def status(s: int) -> str:
        return _probe(module, (channels, *([s] * rank)))

    hi = 1
    while status(hi) == "small":  # grow until big enough (ok, large or an error)
        if hi >= limit:
            return None
        hi = min(hi * 2, limit)
    lo = hi // 2  # lo is too small (or 0), hi is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if status(mid) == "small":
            lo = mid
        else:
            hi = mid
    return (channels, *([hi] * rank)) if status(hi) == "ok" else None


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
