"""A case's static profile on the meta device (harness.profile), traced once per model, input
and dtype: a sweep's batch sizes scale the batch-1 profile when the model's counts are linear in
the batch (checked against a trace at batch 2), so a GPU grid's nine batch sizes cost two
traces, not nine (issue 22 item 11). A model whose profile is not linear is traced per case.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.core.errors import DataDependentForwardError
from harness.core.schema import column_names
from harness.core.spec import Case
from harness.profile import ModelProfile, profile
from harness.profile.layers import LayerStat
from harness.run.precheck import check_trainable_batch_norm

LAYER_COLUMNS = column_names("layers")
PROFILE_SOURCE = "meta device (harness.profile)"

# Per process: (model, input, dtype) -> its profile at batch 1 when the profile is linear in the
# batch (checked against batch 2), or None when it is not (each batch is then traced).
_LINEAR: dict[tuple, ModelProfile | None] = {}


def _scaled_layer(layer: LayerStat, batch: int) -> LayerStat:
    return replace(
        layer,
        output_shape=(batch * layer.output_shape[0], *layer.output_shape[1:]),
        macs=layer.macs * batch,
        connections=layer.connections * batch,
        activation_bytes=layer.activation_bytes * batch,
    )


def _scaled(p1: ModelProfile, batch: int) -> ModelProfile:
    return replace(
        p1,
        batch_size=batch,
        macs=p1.macs * batch,
        flops=p1.flops * batch,
        activation_bytes=p1.activation_bytes * batch,
        connections=p1.connections * batch,
        layers=[_scaled_layer(layer, batch) for layer in p1.layers],
        macs_by_op={k: v * batch for k, v in p1.macs_by_op.items()},
    )


def _is_linear(p1: ModelProfile, p2: ModelProfile) -> bool:
    """Whether the profile at batch 2 is the one at batch 1 doubled (a CNN's is: every count
    is per sample, every output has the batch first), layer by layer."""
    if len(p1.layers) != len(p2.layers) or p1.unhandled_ops != p2.unhandled_ops:
        return False
    if p1.params != p2.params or _scaled(p1, 2).totals() != p2.totals():
        return False
    return all(
        a.output_shape[:1] == (1,) and b == _scaled_layer(a, 2)
        for a, b in zip(p1.layers, p2.layers, strict=True)
    )


def batch_profile(case: Case) -> ModelProfile:
    """The case's meta-device profile, traced once per model, input and dtype (at batch 1 and
    2) and scaled to the case's batch when it is linear in the batch; traced at the case's
    batch otherwise (issue 22 item 11: a GPU grid's nine batch sizes cost two traces, not
    nine). tests/test_runner.py checks the scaled profiles of the zoo against their traces."""
    key = (case.model, tuple(case.input_shape), case.dtype)
    if key not in _LINEAR:
        p1 = profile(case.model, case.input_shape, 1, case.torch_dtype)
        p2 = profile(case.model, case.input_shape, 2, case.torch_dtype)
        _LINEAR[key] = p1 if _is_linear(p1, p2) else None
    p1 = _LINEAR[key]
    if p1 is None:
        return profile(case.model, case.input_shape, case.batch_size, case.torch_dtype)
    return _scaled(p1, case.batch_size)


def static_profile(case: Case, row: dict[str, Any]) -> tuple[ModelProfile | None, Any]:
    """The meta-device profile into the row, and the layer table; (None, None), with the reason
    in ``profile_source``, for a model whose forward reads tensor values."""
    try:
        # the meta trace validates the input as it goes (once per model, input and dtype)
        prof = batch_profile(case)
    except DataDependentForwardError as exc:
        row["profile_source"] = f"not profiled: {exc}"
        return None, None
    row.update(prof.totals())
    row["profile_source"] = PROFILE_SOURCE
    if case.mode == "training":
        check_trainable_batch_norm(prof.layers, case)
    layers = prof.to_frame().assign(
        model=case.model,
        input_shape=row["input_shape"],
        batch_size=case.batch_size,
        dtype=case.dtype,
        layer_kind="leaf",
    )  # its derived cumulative shares are not stored
    # MACs of an op no counter handles are not in `macs`: the row says which ones.
    row["unhandled_ops"] = ", ".join(
        f"{op} x{calls}" for op, calls in sorted(prof.unhandled_ops.items())
    )
    return prof, layers[[c for c in LAYER_COLUMNS if c in layers.columns]]
