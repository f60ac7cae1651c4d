"""The harness's MAC counter (dispatch level, meta tensors) against fvcore (jit trace, real
tensors), the counter users know. Both count one fused multiply-add as one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import harness
from harness.profile import fvcore_macs, profile, reconcile
from harness.profile.flops import MAC_OPS

FVCORE_GEMM = ("addmm", "linear", "matmul", "mm", "bmm", "einsum")
# what fvcore counts and the harness leaves out on purpose (see harness/profile/flops.py)
FVCORE_EXCLUDED = (
    "batch_norm", "group_norm", "layer_norm", "instance_norm", "adaptive_avg_pool2d",
    "upsample_nearest2d", "upsample_bilinear2d", "grid_sampler",
)  # fmt: skip
# fvcore runs these for real at batch 1: a few seconds each on 2 cores (the whole zoo ~1 min)
SLOW = {"inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_paper",
        "inception_v4", "resnet101", "resnet152", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
        "vgg16_c", "vgg19", "vgg19_bn"}  # fmt: skip
HARNESS_COUNTED = {str(p).split(".", 1)[1] for p in MAC_OPS}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in harness.list_models()],
)
def test_macs_agree_with_fvcore(name):
    fv_total, fv_by_op, unsupported = fvcore_macs(name)
    prof = profile(name)
    conv = prof.macs_by_op.get("aten.convolution", 0)
    gemm = prof.macs - conv
    # the operations both count agree within 0.5% (they agree exactly on the zoo)
    assert conv == pytest.approx(fv_by_op.get("conv", 0), rel=0.005, abs=0)
    assert gemm == pytest.approx(sum(fv_by_op.get(k, 0) for k in FVCORE_GEMM), rel=0.005, abs=0)
    # everything else fvcore counted is an op the harness ignores on purpose...
    assert set(fv_by_op) <= {"conv", *FVCORE_GEMM, *FVCORE_EXCLUDED}
    excluded = sum(fv_by_op.get(k, 0) for k in FVCORE_EXCLUDED)
    # ...and it is exactly the difference of the totals
    assert prof.macs == fv_total - excluded
    if excluded == 0:
        assert prof.macs == pytest.approx(fv_total, rel=0.005, abs=0)
    # no op fvcore skipped is one the harness counts, and the harness skipped nothing
    assert not {k.split("::")[-1] for k in unsupported} & HARNESS_COUNTED
    assert prof.unhandled_ops == {}


class _Attention(nn.Module):
    """baddbmm and mv: counted by the harness, skipped (unsupported) by fvcore."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.bias = nn.Parameter(torch.zeros(8, 8))
        self.v = nn.Parameter(torch.zeros(16))

    def forward(self, x):  # x: (N, 8, 16)
        q = self.proj(x)
        scores = torch.baddbmm(self.bias, q, q.transpose(1, 2))  # (N, 8, 8): N*8*8*16 MACs
        pooled = torch.mv(q[0], self.v)  # (8,): 8*16 MACs
        return scores.sum() + pooled.sum()


def test_where_fvcore_skips_an_op_the_difference_is_exactly_its_count():
    n = 3
    fv_total, fv_by_op, unsupported = fvcore_macs(_Attention(), (8, 16), batch_size=n)
    prof = profile(_Attention(), (8, 16), batch_size=n)
    linear = n * 8 * 16 * 16
    assert fv_by_op == {"linear": linear}
    assert unsupported.get("aten::baddbmm") == 1 and unsupported.get("aten::mv") == 1
    assert prof.macs_by_op == {
        "aten.addmm": linear,
        "aten.baddbmm": n * 8 * 8 * 16,
        "aten.mv": 8 * 16,
    }
    assert prof.macs - fv_total == n * 8 * 8 * 16 + 8 * 16
    table = reconcile(prof.macs_by_op, fv_by_op).set_index("category")
    assert table.loc["matmul", "counted_by"] == "both"
    assert table.loc["matmul", "difference"] == n * 8 * 8 * 16 + 8 * 16


def test_reconcile_names_every_difference():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))  # fmt: skip
    fv_total, fv_by_op, _ = fvcore_macs(model, (3, 10, 10))
    prof = profile(model, (3, 10, 10))
    conv = 8 * 8 * 8 * 3 * 9
    assert prof.macs == conv + 16
    # fvcore: batch norm 2 per element (with affine), adaptive average pool 1 per input element
    assert fv_total == conv + 16 + 2 * 8 * 8 * 8 + 8 * 8 * 8
    table = reconcile(prof.macs_by_op, fv_by_op).set_index("category")
    assert table.loc["conv", "difference"] == 0 and table.loc["matmul", "difference"] == 0
    assert table.loc["normalisation", "difference"] == -2 * 8 * 8 * 8
    assert table.loc["pooling", "difference"] == -8 * 8 * 8
    assert set(table["counted_by"]) == {"both", "fvcore only"}
    assert table["difference"].sum() == prof.macs - fv_total
