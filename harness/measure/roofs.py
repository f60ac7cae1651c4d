"""The machine's measured roofs: dense matmul FLOP/s and memory copy bandwidth, in a few seconds.

A roofline needs two ceilings per device: the compute rate and the memory bandwidth. GPUs have
datasheets (``harness.report.roofline.PEAKS``); a CPU, or a GPU missing from the table, does
not. ``measure_roofs`` measures both once, at the start of a run, and the runner stores them in
every row (``peak_flops_measured``, ``peak_bytes_per_s_measured``), so the report draws real
roofs on any device.

* Compute: the best of two dense kernels at the case's dtype, since a CNN's convolutions may
  run faster than a library's matmul (oneDNN against MKL on a CPU, cuDNN against cuBLAS): a
  product ``C = A @ B`` of square ``n x n`` matrices, ``2 n^3`` FLOPs (one multiply and one
  add per term), at each of ``GEMM_N``'s sizes, and a 3x3 convolution of ResNet's shape,
  ``2 x`` its multiply-adds; the best of several timed batches of each. A roof is a ceiling,
  so the best rate is the estimate, not the median; it is measured at the threads and dtype
  of the cases it is drawn over (the sweep measures one per device, dtype and threads).
* TF32: on a GPU with TF32 tensor cores (compute capability 8.0+) a float32 case's
  convolutions run in TF32 where cuDNN allows it (``torch.backends.cudnn.allow_tf32``, on by
  default), its matmuls where cuBLAS does (off by default); the float32 roof is measured with
  both set as the convolutions ran (``Roofs.tf32``), so it is the roof of what the rows ran.
* Bandwidth: ``dst.copy_(src)`` of a buffer much larger than the caches; each copy reads and
  writes the buffer once, ``2 x nbytes`` moved; again the best of several batches.

On CUDA every timed batch is bracketed by ``torch.cuda.Event(enable_timing=True)`` records and
the device is synchronised before reading them (``Event.elapsed_time`` is in milliseconds), so
the time covers the kernels, not their launch. On the CPU ``time.perf_counter`` brackets the
batch; the products run on torch's intra-op threads as set when this is called, so call it
after the run has fixed its thread count.

These are achievable peaks for this library and these shapes, not the vendor's theoretical
peak: a roof the cases cannot pass, measured on the same software. Nothing here is cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.core.errors import InvalidInputError
from harness.measure.cuda_state import float32_as

# Square matmul sizes, the best of them: big enough to reach the library's peak (a 1024^3
# product is not, on a many-core CPU), small enough to stay under a second per product. A
# larger size is tried only where one product of the one before took under LARGER_BELOW_S
# (>= 100 GFLOP/s at 1024: many cores, whose tiles a 1024 product may not fill; a 2-core VM
# takes ~40 ms and stays at 1024).
GEMM_N = {"cpu": (1024, 2048), "cuda": (8192,)}
LARGER_BELOW_S = 0.02
# A ResNet 3x3 convolution: (batch, channels, height = width), stride 1, padding 1.
CONV_SHAPE = {"cpu": (8, 256, 14), "cuda": (128, 256, 28)}
# Copy buffers, bytes: far larger than any cache (a CPU's L3 is tens of MiB; an H100's L2 50 MiB).
COPY_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}
# Time each measurement aims at, seconds (the best of REPEATS batches filling it).
TARGET_S = {"gemm": 0.4, "conv": 0.4, "copy": 0.25}
REPEATS = 5
COLUMNS = ("peak_flops_measured", "peak_bytes_per_s_measured")


@dataclass(frozen=True)
class Roofs:
    """Measured ceilings of one device at one dtype."""

    flops_per_s: float  # best dense rate, FLOP/s (matmul or convolution)
    bytes_per_s: float  # best copy bandwidth, bytes/s (read + write)
    gemm_n: int  # the matmul size of the best matmul rate
    copy_bytes: int
    tf32: bool | None = None  # float32 ran in TF32 (None: not float32)
    conv_flops_per_s: float | None = None  # the convolution's best rate, FLOP/s

    def columns(self) -> dict[str, float | bool | None]:
        """The result-row columns."""
        return {
            "peak_flops_measured": self.flops_per_s,
            "peak_bytes_per_s_measured": self.bytes_per_s,
            "peak_flops_tf32": self.tf32,
        }


def gemm_flops(n: int) -> int:
    """FLOPs of one ``n x n`` by ``n x n`` product: ``n^2`` outputs of ``n`` multiply-adds."""
    return 2 * n**3


class _Clock:
    """Seconds taken by a batch of work on ``device``, with the synchronisation CUDA needs."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def time(self, work: Callable[[], object], repeats: int) -> float:
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(self.device)
            start.record()
            for _ in range(repeats):
                work()
            end.record()
            torch.cuda.synchronize(self.device)
            return start.elapsed_time(end) / 1e3  # ms -> s
        t0 = time.perf_counter()
        for _ in range(repeats):
            work()
        return time.perf_counter() - t0


def _best_rate(
    clock: _Clock, work: Callable[[], object], units_per_call: float, target_s: float
) -> float:
    """The best of ``REPEATS`` batches of ``work``, in units per second; each batch holds as
    many calls as fill ``target_s / REPEATS`` going by one warm call."""
    clock.time(work, 1)  # warm-up: first-call allocation, kernel selection, page faults
    one = max(clock.time(work, 1), 1e-9)
    calls = max(1, int(target_s / REPEATS / one))
    best = 0.0
    for _ in range(REPEATS):
        elapsed = clock.time(work, calls)
        if elapsed > 0:
            best = max(best, units_per_call * calls / elapsed)
    return best


def _gemm_rate(clock: _Clock, dev: torch.device, dtype: torch.dtype, n: int) -> float:
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
    c = torch.empty(n, n, device=dev, dtype=dtype)
    return _best_rate(clock, lambda: torch.matmul(a, b, out=c), gemm_flops(n), TARGET_S["gemm"])


def _gemm_rates(
    clock: _Clock, dev: torch.device, dtype: torch.dtype, sizes: tuple[int, ...]
) -> dict[int, float]:
    """The best rate at each size, going on to the next only while a product stays short."""
    rates: dict[int, float] = {}
    for n in sizes:
        rates[n] = _gemm_rate(clock, dev, dtype, n)
        if gemm_flops(n) / rates[n] >= LARGER_BELOW_S:
            break
    return rates


def _conv_rate(clock: _Clock, dev: torch.device, dtype: torch.dtype, shape: tuple) -> float:
    n, c, hw = shape
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(n, c, hw, hw, device=dev, dtype=dtype, generator=gen)
    w = torch.randn(c, c, 3, 3, device=dev, dtype=dtype, generator=gen)
    layout = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    x, w = x.to(memory_format=layout), w.to(memory_format=layout)
    flops = 2 * n * c * c * 9 * hw * hw  # 9 multiply-adds per input channel per output
    return _best_rate(
        clock, lambda: torch.nn.functional.conv2d(x, w, padding=1), flops, TARGET_S["conv"]
    )


def tf32_for_float32(device: torch.device) -> bool:
    """Whether float32 convolutions run in TF32 on ``device`` as the cases run them: a GPU with
    TF32 tensor cores (compute capability 8.0+) and cuDNN allowed to use them."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8 and bool(torch.backends.cudnn.allow_tf32)


def _copy_rate(clock: _Clock, dev: torch.device, size: int) -> float:
    src = torch.ones(size, device=dev, dtype=torch.uint8)
    dst = torch.empty_like(src)
    moved = 2 * size  # read src, write dst, one byte each
    return _best_rate(clock, lambda: dst.copy_(src), moved, TARGET_S["copy"])


def measure_roofs(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    gemm_n: int | None = None,
    copy_bytes: int | None = None,
    conv_shape: tuple[int, int, int] | None = None,
) -> Roofs:
    """Measure the dense compute rate (matmul, convolution) and the copy bandwidth of
    ``device`` at ``dtype``, float32 in TF32 where the cases' convolutions run so.

    Takes about ``sum(TARGET_S.values())`` seconds (the matmul's per size) plus allocation.
    ``gemm_n``, ``copy_bytes`` and ``conv_shape`` override the per-device sizes (tests use
    small ones).
    """
    dev = torch.device(device)
    if dev.type not in GEMM_N:
        raise InvalidInputError(f"measure_roofs: device {dev} is not cpu or cuda")
    if not dtype.is_floating_point:
        raise InvalidInputError(f"measure_roofs: dtype {dtype} is not a floating-point type")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("measure_roofs: CUDA is not available on this machine")
    sizes = (int(gemm_n),) if gemm_n else GEMM_N[dev.type]
    if gemm_n is None and dev.type == "cpu" and dtype not in (torch.float32, torch.float64):
        sizes = (sizes[0] // 2,)  # CPUs without matrix units run half precision far slower
    size = int(copy_bytes or COPY_BYTES[dev.type])
    if min(sizes) < 1 or size < 1:
        raise InvalidInputError("measure_roofs: gemm_n and copy_bytes must be positive")
    clock = _Clock(dev)
    tf32 = tf32_for_float32(dev) if dtype == torch.float32 else None
    with torch.inference_mode(), float32_as(bool(tf32)):
        gemm = _gemm_rates(clock, dev, dtype, sizes)
        conv = _conv_rate(clock, dev, dtype, conv_shape or CONV_SHAPE[dev.type])
        bandwidth = _copy_rate(clock, dev, size)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    best_n = max(gemm, key=gemm.get)
    return Roofs(max(gemm[best_n], conv), bandwidth, best_n, size, tf32, conv)


def roof_columns(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    """``{'peak_flops_measured': FLOP/s, 'peak_bytes_per_s_measured': bytes/s,
    'peak_flops_tf32': bool | None}`` for a row."""
    return measure_roofs(device, dtype).columns()


def exceeds(achieved_flops_per_s: float, roof_flops_per_s: float) -> bool:
    """Whether a row's achieved rate is above the measured roof: then the roof was not the
    maximum (measured under load, or a kernel the probes do not reach) and says so."""
    return achieved_flops_per_s > roof_flops_per_s
