"""harness.measure.roofs: the measured matmul rate and copy bandwidth of a device.

The arithmetic is checked against a fake clock (a product of n x n matrices is 2 n^3 FLOPs, a
copy moves its buffer twice), and a real run on this CPU gives finite positive rates below
what the hardware could possibly do.
"""

from __future__ import annotations

import os

import pytest
import torch

from harness.core.errors import InvalidInputError
from harness.measure import roofs


def test_gemm_flops_counts_one_multiply_and_one_add_per_term() -> None:
    # an n x n output, each element a sum of n products: n^3 multiplies and n^3 adds
    assert roofs.gemm_flops(1) == 2
    assert roofs.gemm_flops(1024) == 2 * 1024**3


def test_rates_are_work_over_the_best_batch_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every perf_counter call advances a fake clock by 1 ms: each timed batch (two calls)
    # then lasts exactly 1 ms whatever its size, so the best rate is calls * work / 1 ms.
    ticks = iter(range(10**6))
    monkeypatch.setattr(roofs.time, "perf_counter", lambda: next(ticks) * 1e-3)
    monkeypatch.setattr(roofs, "TARGET_S", {"gemm": 5e-3, "conv": 5e-3, "copy": 5e-3})
    r = roofs.measure_roofs("cpu", torch.float32, gemm_n=16, copy_bytes=4096, conv_shape=(1, 2, 4))
    # one warm call takes 1 ms, so each batch holds max(1, 5 ms / 5 / 1 ms) = 1 call
    # the convolution: 2 x (1 image x 2 out x 2 in channels x 9 taps x 4 x 4 pixels) FLOPs
    assert r.conv_flops_per_s == pytest.approx(2 * (1 * 2 * 2 * 9 * 4 * 4) / 1e-3)
    # the roof is the best of the two kernels: here the matmul's 2 x 16^3 per ms
    assert r.flops_per_s == pytest.approx(2 * 16**3 / 1e-3)
    assert r.bytes_per_s == pytest.approx(2 * 4096 / 1e-3)
    assert r.columns() == {
        "peak_flops_measured": r.flops_per_s,
        "peak_bytes_per_s_measured": r.bytes_per_s,
        "peak_flops_tf32": False,  # float32 on a CPU: IEEE, never TF32
    }


def test_the_roof_is_the_faster_kernel_a_cnn_may_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 25 item 4: a matmul-only roof sat below what valid convolution rows reached."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(roofs.time, "perf_counter", lambda: next(ticks) * 1e-3)
    monkeypatch.setattr(roofs, "TARGET_S", {"gemm": 5e-3, "conv": 5e-3, "copy": 5e-3})
    r = roofs.measure_roofs("cpu", torch.float32, gemm_n=2, copy_bytes=64, conv_shape=(2, 4, 4))
    assert r.flops_per_s == r.conv_flops_per_s == pytest.approx(2 * (2 * 4 * 4 * 9 * 16) / 1e-3)
    assert r.flops_per_s > 2 * 2**3 / 1e-3  # the matmul's
    assert roofs.exceeds(1.01 * r.flops_per_s, r.flops_per_s)
    assert roofs.GEMM_N["cpu"] == (1024, 2048)  # several sizes: the best is the roof


def test_a_real_cpu_measurement_is_plausible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roofs, "TARGET_S", {"gemm": 0.1, "conv": 0.1, "copy": 0.05})
    r = roofs.measure_roofs("cpu", torch.float32, gemm_n=256, copy_bytes=16 << 20)
    # Upper bounds no CPU of today passes: 6 GHz x 64 float32 FLOP per cycle per core (two
    # AVX-512 FMA units), and 1 TB/s of memory bandwidth per core used.
    cores = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
    assert 1e6 < r.flops_per_s < cores * 6e9 * 64
    assert 1e6 < r.bytes_per_s < cores * 1e12
    assert (r.gemm_n, r.copy_bytes) == (256, 16 << 20)


def test_bad_device_or_dtype_is_a_typed_error() -> None:
    with pytest.raises(InvalidInputError, match="not cpu or cuda"):
        roofs.measure_roofs("meta")
    with pytest.raises(InvalidInputError, match="not a floating-point type"):
        roofs.measure_roofs("cpu", torch.int32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_roofs_are_timed_with_events() -> None:
    r = roofs.measure_roofs("cuda", torch.float16, gemm_n=4096, copy_bytes=512 << 20)
    assert r.flops_per_s > 1e12 and r.bytes_per_s > 1e11  # any datacenter GPU of the last decade
