"""The machine's measured roofs: dense matmul FLOP/s and memory copy bandwidth, in a few seconds.

A roofline needs two ceilings per device: the compute rate and the memory bandwidth. GPUs have
datasheets (``harness.report.roofline.PEAKS``); a CPU, or a GPU missing from the table, does
not. ``measure_roofs`` measures both once, at the start of a run, and the runner stores them in
every row (``peak_flops_measured``, ``peak_bytes_per_s_measured``), so the report draws real
roofs on any device.

* Compute: ``C = A @ B`` with square ``n x n`` matrices at the case's dtype, ``2 n^3`` FLOPs
  per product (one multiply and one add per term); the best of several timed batches of
  products. A roof is a ceiling, so the best rate is the estimate, not the median.
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

# Square matmul sizes: big enough to reach the library's peak, small enough to stay well under
# a second per product on a slow core (a 2-core VM runs a float32 1024^3 product in ~40 ms).
GEMM_N = {"cpu": 1024, "cuda": 8192}
# Copy buffers, bytes: far larger than any cache (a CPU's L3 is tens of MiB; an H100's L2 50 MiB).
COPY_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}
# Time each measurement aims at, seconds (the best of REPEATS batches filling it).
TARGET_S = {"gemm": 0.4, "copy": 0.25}
REPEATS = 5
COLUMNS = ("peak_flops_measured", "peak_bytes_per_s_measured")


@dataclass(frozen=True)
class Roofs:
    """Measured ceilings of one device at one dtype."""

    flops_per_s: float  # best dense matmul rate, FLOP/s
    bytes_per_s: float  # best copy bandwidth, bytes/s (read + write)
    gemm_n: int
    copy_bytes: int

    def columns(self) -> dict[str, float]:
        """The two result-row columns."""
        return {
            "peak_flops_measured": self.flops_per_s,
            "peak_bytes_per_s_measured": self.bytes_per_s,
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
) -> Roofs:
    """Measure the dense matmul rate and the copy bandwidth of ``device`` at ``dtype``.

    Takes about ``sum(TARGET_S.values())`` seconds plus allocation. ``gemm_n`` and
    ``copy_bytes`` override the per-device sizes (tests use small ones).
    """
    dev = torch.device(device)
    if dev.type not in GEMM_N:
        raise InvalidInputError(f"measure_roofs: device {dev} is not cpu or cuda")
    if not dtype.is_floating_point:
        raise InvalidInputError(f"measure_roofs: dtype {dtype} is not a floating-point type")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("measure_roofs: CUDA is not available on this machine")
    n = int(gemm_n or GEMM_N[dev.type])
    if gemm_n is None and dev.type == "cpu" and dtype not in (torch.float32, torch.float64):
        n //= 2  # CPUs without matrix units run half precision far slower: keep it short
    size = int(copy_bytes or COPY_BYTES[dev.type])
    if n < 1 or size < 1:
        raise InvalidInputError("measure_roofs: gemm_n and copy_bytes must be positive")
    clock = _Clock(dev)
    with torch.inference_mode():
        flops = _gemm_rate(clock, dev, dtype, n)
        bandwidth = _copy_rate(clock, dev, size)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return Roofs(flops, bandwidth, n, size)


def roof_columns(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    """``{'peak_flops_measured': FLOP/s, 'peak_bytes_per_s_measured': bytes/s}`` for a row."""
    return measure_roofs(device, dtype).columns()
