"""What autocast costs an inference step: bfloat16 by autocast against bfloat16 by cast, on the CPU.

``dtype_method=autocast`` keeps the weights in float32 and lets autocast cast them to bfloat16
for each convolution and matmul. Autocast caches those casts, but only for tensors that require
grad, outside inference mode: under ``torch.inference_mode()`` (where the harness runs every
inference round) the cache is off, so every weight is cast again in every round.
``dtype_method=cast`` converts the weights (and the input) once, as deployed inference engines
do. This prints, for a few zoo models at batch 1 on the CPU, the step time of

* ``autocast``: float32 weights, autocast(bfloat16), under inference_mode (the harness today);
* ``autocast_no_grad``: the same under torch.no_grad() instead, where the cast cache works;
* ``cast``: bfloat16 weights and input, under inference_mode;

and the ratio autocast / cast with a bootstrap 95% interval, plus the number of
``aten::_to_copy`` calls of one step (torch.profiler), which counts the casts. The variants are
timed in alternating blocks (ABC CBA ...) so that the drift of a shared machine falls on all
alike; each round is timed alone with time.perf_counter.

Run: ``python benchmarks/bench_autocast_cost.py [--models resnet18,alexnet,vgg11,googlenet]
[--blocks 6] [--block-rounds 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness
from harness.measure.timing import fixed_threads

VARIANTS = ("autocast", "autocast_no_grad", "cast")


def variants(name: str, batch: int) -> dict[str, tuple[Callable[[], object], Callable]]:
    """Each variant's step and the contexts it runs under."""
    entry = harness.get_entry(name)
    torch.manual_seed(0)
    model = entry.build().eval()
    x = torch.randn(batch, *entry.input_shape)
    cast_model = entry.build().eval().to(torch.bfloat16)
    cast_x = x.to(torch.bfloat16)

    @contextlib.contextmanager
    def autocast(grad_mode: Callable[[], contextlib.AbstractContextManager]) -> Iterator[None]:
        with grad_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            yield

    return {
        "autocast": (functools.partial(model, x), lambda: autocast(torch.inference_mode)),
        "autocast_no_grad": (functools.partial(model, x), lambda: autocast(torch.no_grad)),
        "cast": (functools.partial(cast_model, cast_x), torch.inference_mode),
    }


def to_copy_calls(step: Callable[[], object], contexts: Callable) -> int:
    """aten::_to_copy calls in the second step inside the contexts (each is a dtype cast here;
    the first step fills autocast's cache where it works)."""
    from torch.profiler import ProfilerActivity, profile

    with contexts():
        step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")


def rounds(step: Callable[[], object], contexts: Callable, n: int) -> list[float]:
    """n timed rounds inside the contexts, after one untimed round (the harness enters the
    contexts once around warm-up and rounds alike)."""
    out = [0.0] * n
    with contexts():
        step()
        for i in range(n):
            t0 = time.perf_counter()
            step()
            out[i] = time.perf_counter() - t0
    return out


def ratio_interval(a: np.ndarray, b: np.ndarray, n: int = 2000) -> tuple[float, float]:
    """Bootstrap 95% interval of median(a) / median(b)."""
    rng = np.random.default_rng(0)
    ma = np.median(rng.choice(a, (n, a.size)), axis=1)
    mb = np.median(rng.choice(b, (n, b.size)), axis=1)
    lo, hi = np.percentile(ma / mb, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet18,alexnet,vgg11,googlenet")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=6, help="blocks per variant")
    parser.add_argument("--block-rounds", type=int, default=3)
    args = parser.parse_args()

    with fixed_threads(args.threads) as threads:
        print(
            f"bfloat16 on the CPU, batch {args.batch}, {threads} torch thread(s), "
            f"{args.blocks} blocks of {args.block_rounds} rounds per variant; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        for name in args.models.split(","):
            steps = variants(name, args.batch)
            for step, contexts in steps.values():
                rounds(step, contexts, 2)  # warm-up
            copies = {v: to_copy_calls(*steps[v]) for v in VARIANTS}
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for block in range(args.blocks):
                for v in VARIANTS if block % 2 == 0 else VARIANTS[::-1]:
                    times[v] += rounds(*steps[v], args.block_rounds)
            med = {v: float(np.median(times[v])) for v in VARIANTS}
            a, c = np.asarray(times["autocast"]), np.asarray(times["cast"])
            lo, hi = ratio_interval(a, c)
            params = sum(p.numel() for p in harness.get_model(name).parameters())
            print(
                f"{name} ({params / 1e6:.1f} M params): "
                + ", ".join(f"{v} {med[v] * 1e3:.1f} ms ({copies[v]} casts)" for v in VARIANTS)
                + f"; autocast / cast x{med['autocast'] / med['cast']:.2f} [{lo:.2f}, {hi:.2f}]"
                + f"; autocast_no_grad / cast x{med['autocast_no_grad'] / med['cast']:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
