"""Shape checks on the meta device: the output-size arithmetic of each layer, checked as it runs.

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.core.errors import (
    HarnessError,
    InvalidInputError,
    ModelBuildError,
)
from harness.profile.trace import ForwardFailed, Frame, MetaTracer, Resolved, resolve

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
