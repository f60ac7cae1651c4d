"""One forward pass on the meta device, watched module by module and op by op.

Forward hooks keep a stack of the modules running; a ``TorchDispatchMode`` sees every ATen op,
counts the MACs of the ops in harness.profile.flops's table and charges them to the innermost
module running. Shape checks (harness.profile.shapes) plug in as callbacks run before a module
or an op. Nothing here allocates real memory or computes anything: every tensor is on ``meta``.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from harness.core.errors import HarnessError, InvalidInputError
from harness.core.spec import parse_shape
from harness.models.resolve import ModelEntry, get_entry
from harness.profile.flops import IGNORED_OPS, MAC_OPS, op_name

# callbacks: (qualified name, module, positional inputs) and (op packet, args, kwargs, frame)
ModuleCheck = Callable[[str, nn.Module, tuple], None]
OpCheck = Callable[[Any, tuple, dict, "Frame"], None]


@dataclass
class Frame:
    """One call of one module, while it runs."""

    name: str
    module: nn.Module
    leaf: bool
    inputs: tuple = ()
    macs: int = 0


@dataclass
class CallRecord:
    """One finished call: a leaf module, or a container that ran counted ops itself."""

    name: str
    module: nn.Module
    leaf: bool
    inputs: tuple
    output: Any
    macs: int


@dataclass
class TraceResult:
    calls: list[CallRecord] = field(default_factory=list)
    macs_by_op: Counter[str] = field(default_factory=Counter)
    unhandled_ops: Counter[str] = field(default_factory=Counter)
    output: Any = None


class ForwardFailed(Exception):
    """A non-harness exception escaped the meta forward; carries the last module entered."""

    def __init__(self, cause: BaseException, frame: Frame | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.frame = frame


def _batch_norm_meta(args: tuple, kwargs: dict) -> tuple[torch.Tensor, ...]:
    """native_batch_norm's outputs on meta: the decomposition torch runs there costs about 2 ms
    a call (most of a ResNet's meta forward); the shapes are simple: the input's, and two
    per-channel statistics in the computation dtype."""
    x = args[0]
    stat_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    stats = (x.shape[1],) if x.dim() > 1 else (0,)
    return (
        torch.empty_like(x),
        torch.empty(stats, dtype=stat_dtype, device="meta"),
        torch.empty(stats, dtype=stat_dtype, device="meta"),
    )


# ops whose meta kernel is a slow Python decomposition -> a fast equivalent (shapes, dtypes)
FAST_META: dict[Any, Callable[[tuple, dict], Any]] = {
    torch.ops.aten.native_batch_norm: _batch_norm_meta,
}


class _Counter(TorchDispatchMode):
    def __init__(self, tracer: MetaTracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        tracer = self.tracer
        packet = func._overloadpacket
        frame = tracer.stack[-1] if tracer.stack else None
        if tracer.op_check is not None and frame is not None:
            tracer.op_check(packet, args, kwargs, frame)
        fast = FAST_META.get(packet) if tracer.fast_meta else None
        use_fast = fast is not None and args[0].is_meta
        out = fast(args, kwargs) if use_fast else func(*args, **kwargs)
        if tracer.count:
            formula = MAC_OPS.get(packet)
            if formula is not None:
                macs = formula(args, kwargs, out)
                tracer.result.macs_by_op[op_name(packet)] += macs
                if frame is not None:  # always inside the model's own call
                    frame.macs += macs
            elif packet not in IGNORED_OPS:
                tracer.result.unhandled_ops[op_name(packet)] += 1
        return out


class MetaTracer:
    """Runs ``model(x)`` with hooks on every module and the op counter active."""

    def __init__(
        self,
        model: nn.Module,
        *,
        count: bool = True,
        module_check: ModuleCheck | None = None,
        op_check: OpCheck | None = None,
        fast_meta: bool = True,
    ) -> None:
        self.model = model
        self.fast_meta = fast_meta
        self.count = count
        self.module_check = module_check
        self.op_check = op_check
        self.names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
        self.stack: list[Frame] = []
        self.last_entered: Frame | None = None
        self.result = TraceResult()

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        name = self.names.get(module, type(module).__name__)
        frame = Frame(name, module, leaf=next(module.children(), None) is None, inputs=args)
        self.stack.append(frame)
        self.last_entered = frame
        if self.module_check is not None:
            self.module_check(name, module, args)

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        frame = self.stack.pop()
        if frame.leaf or frame.macs:
            self.result.calls.append(
                CallRecord(frame.name, module, frame.leaf, frame.inputs, output, frame.macs)
            )

    def run(self, x: torch.Tensor) -> TraceResult:
        with _TRACE_LOCK:
            handles = []
            for module in dict.fromkeys(self.names):
                handles.append(module.register_forward_pre_hook(self._pre_hook))
                handles.append(module.register_forward_hook(self._hook))
            try:
                with torch.no_grad(), torch.device("meta"), _Counter(self):
                    self.result.output = self.model(x)
            except HarnessError:
                raise
            except Exception as exc:  # any failure inside the model: named by the caller
                raise ForwardFailed(exc, self.last_entered) from exc
            finally:
                for h in handles:
                    h.remove()
                self.stack.clear()
        return self.result


_BUILT: OrderedDict[tuple[str, torch.dtype], tuple[ModelEntry, nn.Module]] = OrderedDict()
_BUILT_MAX = 64
# hooks go on the modules themselves: one trace at a time, since cached modules are shared
_TRACE_LOCK = threading.RLock()


def _built_on_meta(entry: ModelEntry, dtype: torch.dtype) -> nn.Module:
    """``entry`` built on the meta device at ``dtype``, in eval mode; kept for later calls.

    Building is a third of a profile's cost and a sweep profiles one model at many batch
    sizes. The cache holds the last 64 (meta modules hold no memory) and is keyed on the
    registry entry itself, so a re-registered name is rebuilt.
    """
    key = (entry.name, dtype)
    with _TRACE_LOCK:
        hit = _BUILT.get(key)
        if hit is not None and hit[0] is entry:
            _BUILT.move_to_end(key)
            return hit[1]
        with torch.device("meta"):
            module = entry.build()
        if dtype != torch.float32:
            module = module.to(dtype)
        module.eval()
        _BUILT[key] = (entry, module)
        while len(_BUILT) > _BUILT_MAX:
            _BUILT.popitem(last=False)
        return module


@dataclass
class Resolved:
    """A model ready for a meta forward: the module (on meta, eval mode), its label, the input
    shape without batch, and its registry entry when it came from a name."""

    module: nn.Module
    label: str
    input_shape: tuple[int, ...]
    entry: ModelEntry | None


def resolve(
    model: nn.Module | str,
    input_shape: Sequence[int] | str | None,
    dtype: torch.dtype = torch.float32,
) -> Resolved:
    """Build ``model`` (a registry name) on the meta device, or take a meta copy of a module.

    ``input_shape`` None means the registry's default input; an ``nn.Module`` needs one.
    """
    if isinstance(model, str):
        entry = get_entry(model)
        shape = parse_shape(input_shape) if input_shape is not None else entry.input_shape
        return Resolved(_built_on_meta(entry, dtype), model, shape, entry)
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"expected a model name or an nn.Module, got {type(model).__name__}: pass e.g. "
            "'resnet18' (see `cnnbench models`)"
        )
    if input_shape is None:
        raise InvalidInputError(
            f"an nn.Module ({type(model).__name__}) has no registered default input: pass "
            "input_shape, e.g. (3, 224, 224)"
        )
    return Resolved(meta_copy(model, dtype), type(model).__name__, parse_shape(input_shape), None)


def meta_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers are empty meta tensors.

    Parameter and buffer storage is never copied: each is replaced through deepcopy's memo by a
    meta tensor of the same shape (floating point ones at ``dtype``), so a 500 MB model costs
    nothing. The copy is in eval mode; hooks registered on the module come along (weight_norm
    and the like need theirs) and see meta tensors.
    """
    memo: dict[int, Any] = {}
    for p in module.parameters():
        if id(p) not in memo:
            t = torch.empty_like(p, device="meta", dtype=dtype if p.is_floating_point() else None)
            memo[id(p)] = nn.Parameter(t, requires_grad=p.requires_grad)
    for b in module.buffers():
        if id(b) not in memo:
            memo[id(b)] = torch.empty_like(
                b, device="meta", dtype=dtype if b.is_floating_point() else None
            )
    copied = copy.deepcopy(module, memo)
    return copied.eval()
