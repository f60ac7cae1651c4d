"""MAC counting: the harness's op table (dispatch level, meta tensors) and fvcore as the reference.

Convention: one multiply-accumulate (a fused multiply-add) is one MAC; ``flops = 2 * macs``.
Published "GFLOPs" of the classic CNNs (VGG-16 about 15.5, ResNet-50 about 4.1) are MACs of
this kind.

The harness counts at the ATen dispatch level (a ``TorchDispatchMode`` in
harness.profile.trace), so a convolution called functionally (``F.conv2d`` inside a custom
module, as LeNet-5's C3 does) is counted like one in an ``nn.Conv2d``. Every op that reaches
the counter is looked up in one explicit table (fvcore's idea: ``_DEFAULT_SUPPORTED_OPS`` plus
``_IGNORED_OPS``):

========================  =====================================================================
counted (``MAC_OPS``)     convolution (also transposed, any rank, groups), mm, addmm, bmm,
                          baddbmm, mv, addmv, dot, scaled-dot-product attention. Formulas are
                          torch.utils.flop_counter's (which counts 2 per MAC; halved here):
                          conv ``N*Cout*prod(out_spatial)*(Cin/groups)*prod(kernel)``, linear
                          ``N*in*out``. Bias additions are not MACs (see ``connections``).
ignored, on purpose       (``IGNORED_OPS``, each with its reason) activations, elementwise
                          arithmetic, normalisation (batch/layer/group norm: at inference it
                          folds into the preceding convolution), pooling and reductions,
                          resampling, dropout, views, copies and tensor creation.
anything else             reported in ``ModelProfile.unhandled_ops`` (name -> calls), never
                          dropped silently.
========================  =====================================================================

fvcore (``fvcore_macs``) traces the model with torch.jit on real tensors and counts one fused
multiply-add as one flop, i.e. MACs. It also counts batch_norm (1 or 2 per element),
group/layer/instance norm, adaptive_avg_pool2d (1 per input element) and upsampling, which the
harness ignores by design; ``reconcile`` lines the two up per op category so every difference
is named and sized.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import flop_registry

from harness.core.errors import InvalidInputError

aten = torch.ops.aten

MacFormula = Callable[[tuple, dict, Any], int]


def _halved(packet: Any) -> MacFormula:
    """torch's FLOP formula for ``packet`` (2 FLOPs per multiply-add) turned into MACs.

    The formula is called unwrapped, with top-level tensors replaced by their shapes: torch's
    own wrapper maps over every nested argument, which costs more than the formula.
    """
    formula = flop_registry[packet]
    raw = getattr(formula, "__wrapped__", None)
    if raw is None:  # a get_raw formula: takes the tensors themselves

        def macs_raw(args: tuple, kwargs: dict, out: Any) -> int:
            return int(formula(*args, **kwargs, out_val=out)) // 2

        return macs_raw

    def macs(args: tuple, kwargs: dict, out: Any) -> int:
        shapes = [a.shape if isinstance(a, torch.Tensor) else a for a in args]
        out_shape = out.shape if isinstance(out, torch.Tensor) else None
        return int(raw(*shapes, **kwargs, out_shape=out_shape)) // 2

    return macs


def _mv_macs(args: tuple, kwargs: dict, out: Any) -> int:
    # mv(mat, vec) / addmv(self, mat, vec): one MAC per matrix element
    mat = args[0] if len(args) == 2 else args[1]
    return int(mat.numel())


def _dot_macs(args: tuple, kwargs: dict, out: Any) -> int:
    return int(args[0].numel())


_CONV = (
    aten.convolution,
    aten._convolution,
    aten.cudnn_convolution,
    aten.convolution_overrideable,
    aten._slow_conv2d_forward,
)
_MATMUL = (aten.mm, aten.addmm, aten.bmm, aten.baddbmm)
_ATTENTION = (
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_cudnn_attention,
)

# op overload packet -> MACs of one call
MAC_OPS: dict[Any, MacFormula] = {
    **{p: _halved(p) for p in (*_CONV, *_MATMUL, *_ATTENTION)},
    aten.mv: _mv_macs,
    aten.addmv: _mv_macs,
    aten.dot: _dot_macs,
    aten.vdot: _dot_macs,
}

# the category each counted op reconciles under (fvcore's names on the right in FVCORE_CATEGORY)
MAC_CATEGORY: dict[Any, str] = {
    **dict.fromkeys(_CONV, "conv"),
    **dict.fromkeys((*_MATMUL, aten.mv, aten.addmv, aten.dot, aten.vdot), "matmul"),
    **dict.fromkeys(_ATTENTION, "attention"),
}

_IGNORED_BY_REASON: dict[str, tuple[str, ...]] = {
    "activation (elementwise, no multiply-accumulate)": (
        "relu", "relu_", "relu6", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardtanh",
        "hardtanh_", "gelu", "silu", "silu_", "elu", "elu_", "leaky_relu", "leaky_relu_",
        "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "mish", "softplus",
        "threshold", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max", "_softmax",
        "_log_softmax", "_prelu_kernel", "prelu",
    ),
    "elementwise arithmetic (not a weighted multiply-accumulate)": (
        "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "pow", "pow_",
        "sqrt", "rsqrt", "exp", "log", "neg", "abs", "reciprocal", "square", "addcmul",
        "addcdiv", "where", "eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum",
        "floor", "ceil", "round", "sign",
    ),
    "normalisation (folds into the preceding convolution at inference)": (
        "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
        "_native_batch_norm_legit_functional", "batch_norm", "native_layer_norm",
        "native_group_norm", "instance_norm",
    ),
    "pooling and reductions (comparisons or sums, no weights)": (
        "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
        "max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d",
        "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d",
        "adaptive_avg_pool3d", "_adaptive_avg_pool3d", "adaptive_max_pool1d",
        "adaptive_max_pool2d", "adaptive_max_pool3d", "mean", "sum", "amax", "amin", "max",
        "min", "var", "std", "var_mean", "norm", "linalg_vector_norm", "logsumexp", "cumsum",
    ),
    "resampling (interpolation, no weights)": (
        "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_linear1d",
        "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d", "grid_sampler_2d",
    ),
    "dropout (identity at inference)": (
        "dropout", "native_dropout", "feature_dropout", "alpha_dropout", "bernoulli",
        "bernoulli_",
    ),
    "data movement, views and tensor creation": (
        "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "squeeze",
        "unsqueeze", "flatten", "cat", "stack", "split", "split_with_sizes", "chunk", "unbind",
        "slice", "select", "narrow", "index", "index_select", "gather", "scatter", "clone",
        "contiguous", "_to_copy", "copy_", "detach", "alias", "as_strided", "empty",
        "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
        "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "fill_",
        "zero_", "arange", "lift_fresh", "lift_fresh_copy", "constant_pad_nd", "pad",
        "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
        "roll", "flip", "repeat", "tile", "masked_fill", "masked_fill_", "index_put_",
        "channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "_reshape_alias", "expand_as",
        "view_as", "sort", "topk", "argmax", "argmin",
    ),
}  # fmt: skip


def _ignored_ops() -> dict[Any, str]:
    table: dict[Any, str] = {}
    for reason, names in _IGNORED_BY_REASON.items():
        for name in names:
            packet = getattr(aten, name, None)
            if packet is not None:
                table[packet] = reason
    return table


# op overload packet -> why it holds no MACs
IGNORED_OPS: dict[Any, str] = _ignored_ops()


def op_name(packet: Any) -> str:
    """``aten.convolution``: the readable name of an op overload packet."""
    return str(packet)


# ----------------------------------------------------------------------------------------------
# fvcore, the reference counter

# fvcore's by_operator() keys -> the category they reconcile under
FVCORE_CATEGORY: dict[str, str] = {
    "conv": "conv",
    "addmm": "matmul",
    "linear": "matmul",
    "matmul": "matmul",
    "mm": "matmul",
    "bmm": "matmul",
    "einsum": "matmul",
    "batch_norm": "normalisation",
    "group_norm": "normalisation",
    "layer_norm": "normalisation",
    "instance_norm": "normalisation",
    "adaptive_avg_pool2d": "pooling",
    "upsample_nearest2d": "resampling",
    "upsample_bilinear2d": "resampling",
    "grid_sampler": "resampling",
}
# categories fvcore counts and the harness ignores on purpose (see the module docstring)
HARNESS_EXCLUDES = ("normalisation", "pooling", "resampling")


def fvcore_macs(
    model: nn.Module | str,
    input_shape: Sequence[int] | str | None = None,
    batch_size: int = 1,
) -> tuple[int, dict[str, int], dict[str, int]]:
    """fvcore's count for ``model`` on a real random input of (batch_size, *input_shape).

    Returns (total MACs, MACs by fvcore op name, unsupported op name -> call count). A name is
    built from the registry on the CPU with real weights; this runs the model for real, so it
    costs real memory and time (that is the point of comparing with the meta-device profile).
    """
    from fvcore.nn import FlopCountAnalysis

    from harness.core.spec import parse_shape
    from harness.models.resolve import get_entry

    if isinstance(model, str):
        entry = get_entry(model)
        shape = parse_shape(input_shape) if input_shape is not None else entry.input_shape
        module = entry.build()
    else:
        if input_shape is None:
            raise InvalidInputError(
                "an nn.Module has no registered default input: pass input_shape, e.g. (3, 224, 224)"
            )
        shape, module = parse_shape(input_shape), model
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.jit's own deprecation notice, raised inside fvcore's trace: noise here
            warnings.simplefilter("ignore", DeprecationWarning)
            analysis = FlopCountAnalysis(module, (torch.randn(batch_size, *shape),))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            total = int(analysis.total())
            by_op = {k: int(v) for k, v in analysis.by_operator().items()}
            unsupported = {k: int(v) for k, v in analysis.unsupported_ops().items()}
    finally:
        module.train(was_training)
    return total, by_op, unsupported


def harness_categories(macs_by_op: dict[str, int]) -> Counter[str]:
    """The harness's per-op MACs (``ModelProfile.macs_by_op``) summed per reconcile category."""
    by_name = {op_name(p): c for p, c in MAC_CATEGORY.items()}
    out: Counter[str] = Counter()
    for name, macs in macs_by_op.items():
        out[by_name.get(name, name)] += macs
    return out


def reconcile(macs_by_op: dict[str, int], fvcore_by_op: dict[str, int]) -> pd.DataFrame:
    """Both counters side by side per op category.

    Columns: ``category``, ``harness_macs``, ``fvcore_macs``, ``difference`` (harness minus
    fvcore), ``counted_by`` (``both``, ``fvcore only``, ``harness only``) and ``note``. Where
    both count a category the two should agree; where only one does, the difference is exactly
    that category's count.
    """
    harness = harness_categories(macs_by_op)
    fv: Counter[str] = Counter()
    for name, macs in fvcore_by_op.items():
        fv[FVCORE_CATEGORY.get(name, f"fvcore:{name}")] += macs
    rows = []
    for category in sorted(set(harness) | set(fv)):
        h, f = harness.get(category), fv.get(category)
        if h is not None and f is not None:
            counted_by, note = "both", ""
        elif f is not None:
            counted_by = "fvcore only"
            note = (
                "ignored by the harness on purpose (no weighted multiply-accumulates)"
                if category in HARNESS_EXCLUDES
                else "not in the harness's op table"
            )
        else:
            counted_by, note = "harness only", "fvcore has no handle for this op"
        rows.append(
            {
                "category": category,
                "harness_macs": int(h or 0),
                "fvcore_macs": int(f or 0),
                "difference": int((h or 0) - (f or 0)),
                "counted_by": counted_by,
                "note": note,
            }
        )
    return pd.DataFrame(rows)
