"""Time ResultWriter over a long sweep (a benchmark, not a test).

    python benchmarks/bench_writer.py CASES SAMPLES_PER_CASE LAYER_ROWS_PER_CASE

Every add_case rewrites the whole files (O(n^2) over a run); this prints what that costs.
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import pandas as pd

from harness.results import ResultWriter, load_results, schema


def main(n: int, n_samples: int, n_layers: int) -> None:
    rng = np.random.default_rng(0)
    layers = pd.DataFrame(
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
    filled = ("schema_version", "run_id", "run_complete")
    base = {c.name: None for c in schema.CASES if c.name not in filled}
    with tempfile.TemporaryDirectory() as d:
        w = ResultWriter(d)
        started = time.perf_counter()
        last = 0.0
        for i in range(n):
            t = time.perf_counter()
            row = {**base, "model": f"m{i % 20}", "case_id": f"c{i}", "batch_size": i + 1,
                   "device_name": "NVIDIA H100", "status": "ok", "params": 1000,
                   "latency_s_median": 0.01, "latency_s_samples": rng.random(n_samples) * 0.01,
                   "command_line": "pytest suites/ --benchmark-only", "os": "Linux"}  # fmt: skip
            w.add_case(row, layers=layers)
            last = time.perf_counter() - t
        total = time.perf_counter() - started
        t = time.perf_counter()
        w.finish()
        finish = time.perf_counter() - t
        size = w.paths["cases"].stat().st_size
        t = time.perf_counter()
        rows = len(load_results(d))
        load = time.perf_counter() - t
    print(
        f"{n} cases x {n_samples} samples + {n_layers} layer rows: add_case total {total:.2f} s "
        f"(mean {1000 * total / n:.1f} ms, last {1000 * last:.1f} ms), finish {1000 * finish:.0f}"
        f" ms, cases file {size / 2**20:.1f} MiB, load_results {1000 * load:.0f} ms ({rows} rows)"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
