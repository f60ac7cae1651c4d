"""How fast is the static profiler? Prints its figures; asserts nothing (not a unit test).

    python benchmarks/bench_profile.py [--skip-fvcore]

1. Every zoo model profiled at batch 1, then at batch 256 (target: under 5 s in total on a
   2-core CPU). The first profile in a process pays a one-off cost (torch imports its
   decomposition machinery on the first meta convolution): it is timed and printed apart.
   Built meta models are cached between calls, so the batch-256 pass reuses the batch-1
   builds; the same two passes with the cache cleared before every call are printed too.
2. VGG-16 at batch 64: harness.profile (meta device) against fvcore's FlopCountAnalysis on real
   tensors, measured side by side in this run (target: at least 100x faster). fvcore is timed
   on the analysis alone (model built and input allocated beforehand); the harness is timed
   from the name, meta build included.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import harness
from harness.core import units
from harness.profile import profile
from harness.profile import trace as _trace


def _clear_cache() -> None:
    _trace._BUILT.clear()


def zoo_pass(names: list[str], batch_size: int, cached: bool) -> float:
    start = time.perf_counter()
    for name in names:
        if not cached:
            _clear_cache()
        profile(name, batch_size=batch_size)
    return time.perf_counter() - start


def vgg16_side_by_side(batch_size: int = 64, repeats: int = 5) -> tuple[float, float, float]:
    """(harness median s, harness cold s, fvcore s) for VGG-16 at ``batch_size``."""
    from fvcore.nn import FlopCountAnalysis

    _clear_cache()
    t = time.perf_counter()
    prof = profile("vgg16", batch_size=batch_size)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        _clear_cache()
        t = time.perf_counter()
        profile("vgg16", batch_size=batch_size)
        warm.append(time.perf_counter() - t)

    model = harness.get_model("vgg16").eval()
    x = torch.randn(batch_size, 3, 224, 224)
    with torch.no_grad():
        t = time.perf_counter()
        analysis = FlopCountAnalysis(model, (x,))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        fv_total = analysis.total()
        fv_seconds = time.perf_counter() - t
    print(
        f"  harness: {units.macs(prof.macs)} (+ nothing allocated); fvcore: "
        f"{units.macs(fv_total)} (fvcore also counts the adaptive pool: "
        f"{fv_total - prof.macs:,} MACs)"
    )
    return statistics.median(warm), cold, fv_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-fvcore", action="store_true", help="only the zoo passes")
    args = parser.parse_args()

    names = harness.list_models()
    print(
        f"torch {torch.__version__}, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} "
        f"torch threads, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{len(names)} zoo models: {', '.join(names)}")

    t = time.perf_counter()
    profile("lenet5")
    first = time.perf_counter() - t
    _clear_cache()
    print(f"\nfirst profile in this process (one-off warm-up): {units.seconds(first)}")

    b1 = zoo_pass(names, 1, cached=True)
    b256 = zoo_pass(names, 256, cached=True)
    print(f"every zoo model at batch 1:   {units.seconds(b1)}  (builds each model on meta)")
    print(f"every zoo model at batch 256: {units.seconds(b256)}  (builds cached)")
    print(f"total: {units.seconds(b1 + b256)}  (target < 5 s on 2 cores)")
    _clear_cache()
    c1 = zoo_pass(names, 1, cached=False)
    c256 = zoo_pass(names, 256, cached=False)
    print(
        f"without the build cache: batch 1 {units.seconds(c1)}, batch 256 "
        f"{units.seconds(c256)}, total {units.seconds(c1 + c256)}"
    )

    if not args.skip_fvcore:
        print("\nVGG-16 at batch 64, side by side:")
        warm, cold, fv = vgg16_side_by_side()
        print(f"  harness.profile (meta, built from the name): median {units.seconds(warm)}, "
              f"first {units.seconds(cold)}")  # fmt: skip
        print(f"  fvcore FlopCountAnalysis (real tensors):      {units.seconds(fv)}")
        print(f"  ratio fvcore / harness: {fv / warm:,.0f}x  (target >= 100x)")


if __name__ == "__main__":
    main()
