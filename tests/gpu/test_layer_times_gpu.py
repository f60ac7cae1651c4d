"""Layer times on a GPU: CUPTI kernel time per layer, whose sum cannot exceed the step.

On a GPU a layer's time is the device time of the kernels (and memcpy / memset) its ops
launched, measured by CUPTI through torch.profiler. The GPU runs one stream here, so the kernels
of a step run one after another: their sum is at most the step's wall time, and the rest of the
step (``1 - layer_time_coverage``) is launch and idle time, the GPU waiting for the CPU to issue
the next kernel. The bound allows 2% for the profiled steps' kernels running a little slower
or clocks moving between the timed rounds and the profiled steps.

Skipped without CUDA. Not run on this project's CPU-only CI; run on a GPU machine with
``pytest tests/gpu -m gpu``.
"""

from __future__ import annotations

import pytest
import torch

from harness.core.spec import Case
from harness.run.runner import RunOptions, run_case

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CLOCK_AND_NOISE = 0.02
OPTIONS = RunOptions(
    warmup_rounds=5,
    warmup_time_s=0.3,
    min_rounds=20,
    min_time_s=0.5,
    max_time_s=5.0,
    ci_target=None,
    remeasure=0,
    power="off",
    layer_times=True,
    layer_time_steps=5,
)


def _run(model: str, batch: int, **case: object):
    res = run_case(Case(model, (3, 224, 224), batch, device="cuda", **case), OPTIONS)  # type: ignore[arg-type]
    assert res.row["status"] == "ok", res.row.get("error")
    source = res.row["layer_time_source"]
    assert "CUPTI" in source and "launch and idle" in source, source
    return res


@pytest.mark.parametrize(
    ("model", "batch", "dtype"),
    [
        ("resnet18", 1, "float32"),  # launch-bound: a large gap
        ("resnet50", 32, "float32"),
        ("vgg16", 8, "float32"),
        ("googlenet", 16, "float16"),
    ],
)
def test_kernel_time_is_at_most_the_step(model, batch, dtype):
    res = _run(model, batch, dtype=dtype)
    coverage = res.row["layer_time_coverage"]
    assert 0 < coverage <= 1 + CLOCK_AND_NOISE, coverage
    layers = res.layers
    total = layers["time_s"].sum()
    assert total <= res.row["latency_s_median"] * (1 + CLOCK_AND_NOISE)
    assert total / res.row["latency_s_median"] == pytest.approx(coverage)
    convs = layers[layers["layer_type"] == "Conv2d"]
    assert (convs["time_s"] > 0).all()  # every convolution launched a kernel
    assert layers["time_share"].sum() == pytest.approx(1.0)


def test_parent_ops_rows_hold_the_residual_add_kernels():
    layers = _run("resnet18", 8).layers
    blocks = layers[(layers["layer_kind"] == "parent_ops") & (layers["layer_type"] == "BasicBlock")]
    assert len(blocks) == 8 and (blocks["time_s"] > 0).all()


def test_training_backward_kernels_per_layer():
    res = _run("resnet18", 32, mode="training")
    layers = res.layers
    assert "autograd sequence number" in res.row["layer_time_source"]
    convs = layers[layers["layer_type"] == "Conv2d"]
    assert (convs["time_s_backward"] > 0).all()
    # a convolution's backward (grad of input and weight) does about twice its forward's work
    assert convs["time_s_backward"].sum() > convs["time_s"].sum()
    assert 0 < res.row["layer_time_coverage"] <= 1 + CLOCK_AND_NOISE
