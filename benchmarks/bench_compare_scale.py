"""`cnnbench compare` on a large directory (a benchmark, not a test).

    python benchmarks/bench_compare_scale.py [CASES] [SAMPLES_PER_CASE]

Defaults: 50,000 cases of 200 samples on each side (the issue's scale: compare once peaked at
3.2 GB there, keeping every case's bootstrap draws). Writes two result directories through
ResultWriter, then runs ``cnnbench compare BASE CAND --format csv`` in a fresh process and
prints its wall time and peak memory (maximum resident set size). Goal: under 500 MB and
under 30 s on this machine.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _write(directory: Path, n: int, n_samples: int, factor: float, seed: int) -> None:
    from harness.results import ResultWriter

    rng = np.random.default_rng(seed)
    with ResultWriter(directory, run_id=f"run-{seed}") as w:
        for i in range(n):
            median = 0.001 * (1 + i % 97)
            samples = median * factor * np.exp(0.02 * rng.standard_normal(n_samples))
            med = float(np.median(samples))
            w.add_case(
                {
                    "case_id": f"m{i}",
                    "model": f"model{i // 9}",
                    "input_shape": "3x224x224",
                    "batch_size": 1 + i % 9,
                    "dtype": "float32",
                    "memory_format": "contiguous",
                    "mode": "inference",
                    "compiled": False,
                    "device_name": "GPU",
                    "status": "ok",
                    "validity": "valid",
                    "latency_s_samples": samples,
                    "latency_s_median": med,
                    "throughput_per_s": (1 + i % 9) / med,
                    "peak_memory_bytes": 2**30,
                    "energy_j_per_sample": 0.5 * factor,
                }
            )


def main(n: int = 50_000, n_samples: int = 200) -> None:
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        _write(Path(tmp) / "a", n, n_samples, 1.0, 1)
        _write(Path(tmp) / "b", n, n_samples, 1.1, 2)
        print(f"wrote 2 x {n:,} cases of {n_samples} samples in {time.perf_counter() - t:.0f} s")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "compare",
                str(Path(tmp) / "a"),
                str(Path(tmp) / "b"),
                "--format",
                "csv",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if out.returncode:
        raise SystemExit(f"compare failed: {out.stderr[-2000:]}")
    rows = out.stdout.count("\n") - 1
    print(
        f"cnnbench compare, {n:,} cases x 4 metrics ({rows:,} csv rows): {wall:.1f} s wall, "
        f"peak resident memory {max(peak_kib, before) / 1024:.0f} MiB "
        "(goal: under 30 s and 500 MB)"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
