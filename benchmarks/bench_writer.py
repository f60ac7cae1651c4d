"""Time ResultWriter over a long sweep (a benchmark, not a test).

    python benchmarks/bench_writer.py [CASES] [SAMPLES_PER_CASE] [LAYER_ROWS_PER_CASE]

Defaults: 2,000 cases of 2,000 samples and 20 layer rows, the issue's target (under 10 s in
all). Each add_case writes the case as small part files (O(1) per case); finish() merges them.
For comparison it also times, on the first 200 cases, the old way: rewriting the whole run file
after every case (O(n^2)), extrapolated to the full count by the quadratic it follows.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.results import ResultWriter, load_results
from harness.results.store import _columns_to_table


def _layers(n_layers: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["m"] * n_layers,
            "layer_index": range(n_layers),
            "layer_name": [f"features.{j}" for j in range(n_layers)],
            "layer_type": ["Conv2d"] * n_layers,
            "output_shape": ["1x64x56x56"] * n_layers,
            "params": [1000] * n_layers,
            "macs": [10**6] * n_layers,
        }
    )


def _row(i: int, n_samples: int, rng: np.random.Generator) -> dict:
    samples = 0.01 + rng.random(n_samples) * 0.001
    return {
        "model": f"m{i % 20}", "case_id": f"c{i}", "batch_size": i + 1, "status": "ok",
        "device_name": "NVIDIA H100", "params": 1000, "latency_s_median": float(np.median(samples)),
        "throughput_per_s": 100.0, "latency_s_samples": samples,
        "command_line": "pytest suites/ --benchmark-only", "os": "Linux",
    }  # fmt: skip


def _old_way(directory: Path, n: int, n_samples: int, layers: pd.DataFrame) -> float:
    """Rewrite every table whole after each case, as the writer did before (seconds)."""
    rng = np.random.default_rng(1)
    chunks: list[pa.Table] = []
    side: list[pa.Table] = []
    started = time.perf_counter()
    for i in range(n):
        row = _row(i, n_samples, rng)
        chunks.append(_columns_to_table("cases", {k: [v] for k, v in row.items()}, 1, "row"))
        cols = {c: layers[c] for c in layers.columns} | {"case_id": [f"c{i}"] * len(layers)}
        side.append(_columns_to_table("layers", cols, len(layers), "layers"))
        pq.write_table(pa.concat_tables(side).combine_chunks(), directory / "old.layers.parquet")
        pq.write_table(pa.concat_tables(chunks).combine_chunks(), directory / "old.parquet")
    return time.perf_counter() - started


def main(n: int = 2000, n_samples: int = 2000, n_layers: int = 20) -> None:
    rng = np.random.default_rng(0)
    layers = _layers(n_layers)
    with tempfile.TemporaryDirectory() as d:
        w = ResultWriter(d)
        started = time.perf_counter()
        slowest = 0.0
        for i in range(n):
            t = time.perf_counter()
            w.add_case(_row(i, n_samples, rng), layers=layers)
            slowest = max(slowest, time.perf_counter() - t)
        total = time.perf_counter() - started
        t = time.perf_counter()
        w.finish()
        merge = time.perf_counter() - t
        size = w.paths["cases"].stat().st_size
        t = time.perf_counter()
        rows = len(load_results(d))
        load = time.perf_counter() - t
        k = min(200, n)
        old_k = _old_way(Path(d), k, n_samples, layers)
    old_n = old_k * (n / k) ** 2  # quadratic: each case rewrites all before it
    print(
        f"{n} cases x {n_samples} samples + {n_layers} layer rows: add_case {total:.2f} s in "
        f"all (mean {1000 * total / n:.2f} ms, slowest {1000 * slowest:.1f} ms), merge at "
        f"finish {merge:.2f} s, total {total + merge:.2f} s (target: under 10 s); cases file "
        f"{size / 2**20:.1f} MiB; load_results {1000 * load:.0f} ms ({rows} rows)"
    )
    print(
        f"the old whole-file rewrite: {old_k:.2f} s for the first {k} cases, about "
        f"{old_n:.0f} s for {n} (x{old_n / (total + merge):.0f} the part files)"
    )
    assert rows == n


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
