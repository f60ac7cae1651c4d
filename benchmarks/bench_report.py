"""How the HTML report scales: page size, build time and memory, and time to interactive.

Writes synthetic result directories (real parquet through the schema, layer rows for every
case as the runner writes them), builds the report of each in a fresh process (``cnnbench
report``'s code path, ``write_report``), and opens it in headless Chromium. Goals (issue 13):
at 2,000 cases at most 5 MB and interactive within 10 s; at 50,000 cases at most 20 MB,
interactive within 15 s, built in under 60 s and 1 GB.

    python benchmarks/bench_report.py                 # 2,000 and 50,000 cases
    python benchmarks/bench_report.py --cases 10000   # one size
    python benchmarks/bench_report.py --no-browser    # size and build only

"Interactive" is the moment every figure has been drawn and the table of cases holds its
first page (the page sets ``data-figures-rendered`` and the table ``data-ready``), measured
from the start of navigation. The numbers are synthetic (any consistent values do: the report
draws what it reads), the sizes those of a real GPU sweep: 20 models per run, 3 dtypes, 2
memory formats, 2 modes, 9 batch sizes; several runs on several hosts for the larger sizes,
models drawn from a pool so a big directory holds hundreds of models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.core.schema import arrow_schema, column_names  # noqa: E402

MODELS_PER_RUN = 20
DTYPES = ("float32", "float16", "bfloat16")
FORMATS = ("contiguous", "channels_last")
MODES = ("inference", "training")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LAYERS_PER_CASE = 40
POOL = 250  # model names a large directory draws from


def _run_frames(run: int, cases_wanted: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Columns of one run's cases and layers tables (every case of a GPU-style grid)."""
    first = (run * 7) % POOL
    models = [f"net{(first + i) % POOL:03d}" for i in range(MODELS_PER_RUN)]
    grid = [
        (m, d, f, mode, b)
        for m in models
        for d in DTYPES
        for f in FORMATS
        for mode in MODES
        for b in BATCHES
    ][:cases_wanted]
    n = len(grid)
    model = [g[0] for g in grid]
    bs = np.array([g[4] for g in grid], dtype=np.int64)
    base = np.array([1e-4 * (1 + int(m[3:]) % 50) for m in model])
    median = base * (0.6 + 0.4 * bs) * rng.uniform(0.97, 1.03, n)
    macs = (1e8 * (1 + np.array([int(m[3:]) % 40 for m in model])) * bs).astype(np.int64)
    status = np.where(rng.uniform(size=n) < 0.02, "oom", "ok")
    ok = status == "ok"
    host = f"host-{run % 13:02d}"
    case_id = [f"{m}-{d}-{f}-{mo}-bs{b}" for m, d, f, mo, b in grid]
    run_id = f"run-{run:03d}"
    cases = {
        "schema_version": np.full(n, 3),
        "run_id": [run_id] * n,
        "run_complete": [True] * n,
        "timestamp_utc": [f"2026-11-{1 + run % 28:02d}T10:{i % 60:02d}:00Z" for i in range(n)],
        "case_id": case_id,
        "model": model,
        "input_shape": ["3x224x224"] * n,
        "batch_size": bs,
        "dtype": [g[1] for g in grid],
        "memory_format": [g[2] for g in grid],
        "mode": [g[3] for g in grid],
        "compiled": [False] * n,
        "device": ["cuda:0"] * n,
        "device_name": ["NVIDIA H100 80GB HBM3" if run % 2 else "NVIDIA A100-SXM4-80GB"] * n,
        "host": [host] * n,
        "cpu_threads": np.full(n, 8),
        "torch_version": ["2.13.0"] * n,
        "params": np.full(n, 25_000_000),
        "param_bytes": np.full(n, 100_000_000),
        "macs": macs,
        "flops": 2 * macs,
        "activation_bytes": (4e6 * bs).astype(np.int64),
        "rounds": np.full(n, 50),
        "latency_s_median": np.where(ok, median, np.nan),
        "latency_s_p90": np.where(ok, median * 1.05, np.nan),
        "latency_s_p99": np.where(ok, median * 1.1, np.nan),
        "p99_reliable": [False] * n,
        "throughput_per_s": np.where(ok, bs / median, np.nan),
        "validity": np.where(ok, np.where(rng.uniform(size=n) < 0.05, "noisy", "valid"), None),
        "validity_reason": np.where(
            ok & (rng.uniform(size=n) < 0.05), "IQR 30% of the median (limit 25%)", None
        ),
        "peak_memory_bytes": np.where(ok, 1e8 + 6e6 * bs, np.nan),
        "memory_source": ["cuda_allocator"] * n,
        "power_w_mean": np.where(ok, 300.0 + bs, np.nan),
        "energy_j_per_sample": np.where(ok, (300.0 + bs) * median / bs, np.nan),
        "samples_per_j": np.where(ok, bs / ((300.0 + bs) * median), np.nan),
        "power_source": ["nvml_energy_counter"] * n,
        "status": list(status),
        "error": np.where(ok, None, "CUDA out of memory. Tried to allocate 2.00 GiB"),
        "command_line": ["pytest suites/ --benchmark-only"] * n,
    }
    k = LAYERS_PER_CASE
    layer_macs = np.repeat(macs // k, k)
    layers = {
        "schema_version": np.full(n * k, 3),
        "run_id": [run_id] * (n * k),
        "case_id": np.repeat(case_id, k),
        "model": np.repeat(model, k),
        "input_shape": ["3x224x224"] * (n * k),
        "batch_size": np.repeat(bs, k),
        "dtype": np.repeat([g[1] for g in grid], k),
        "layer_index": np.tile(np.arange(k), n),
        "layer_name": np.tile([f"features.{i}" for i in range(k)], n),
        "layer_type": np.tile(["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * (k // 4), n),
        "output_shape": ["1x64x56x56"] * (n * k),
        "params": np.full(n * k, 25_000_000 // k),
        "macs": layer_macs,
        "activation_bytes": np.repeat((4e6 * bs / k).astype(np.int64), k),
        "layer_kind": ["leaf"] * (n * k),
    }
    return cases, layers


def _write(table: str, columns: dict, path: Path) -> None:
    schema = arrow_schema(table)
    n = len(next(iter(columns.values())))
    arrays = [
        pa.array(columns[f.name], type=f.type, from_pandas=True)
        if f.name in columns
        else pa.nulls(n, type=f.type)
        for f in schema
    ]
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)


def write_directory(total: int, directory: Path) -> Path:
    """A results directory of ``total`` cases in runs of at most one GPU grid each."""
    rng = np.random.default_rng(0)
    per_run = MODELS_PER_RUN * len(DTYPES) * len(FORMATS) * len(MODES) * len(BATCHES)
    directory.mkdir(parents=True, exist_ok=True)
    run, left = 0, total
    while left > 0:
        cases, layers = _run_frames(run, min(per_run, left), rng)
        _write("cases", cases, directory / f"run-{run:03d}.parquet")
        _write("layers", layers, directory / f"run-{run:03d}.layers.parquet")
        left -= len(cases["case_id"])
        run += 1
    assert set(column_names("cases")) >= set(cases)
    return directory


BUILD = """
import json, resource, sys, time
t = time.perf_counter()
from harness.report import write_report
path = write_report([sys.argv[1]], sys.argv[2], title="bench")
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def build(directory: Path, out: Path) -> dict:
    """Build in a fresh process: wall time and the process's peak resident memory."""
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, str(directory), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"building the report failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_to_interactive(report: Path) -> dict:
    """Seconds from navigation to every figure drawn and the table's first page shown."""
    from tests.browser import Browser, chromium_path

    path = chromium_path()
    if path is None:
        return {"interactive_s": None, "why": "no Chromium"}
    b = Browser(path)
    try:
        t = time.perf_counter()
        visit = b.visit(
            report,
            width=1366,
            height=768,
            wait_for="document.body.hasAttribute('data-figures-rendered') && "
            "document.querySelector('div.cases-table[data-ready]') !== null",
            timeout_ms=120_000,
        )
        seconds = time.perf_counter() - t
        figures = int(visit.page.get_attribute("body", "data-figures-rendered"))
        errors = visit.console_errors + visit.page_errors
    finally:
        b.close()
    return {"interactive_s": seconds, "figures": figures, "errors": errors}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, nargs="+", default=[2000, 50000])
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    print(f"{'cases':>7} {'size MB':>8} {'build s':>8} {'peak MB':>8} {'load s':>7} figures")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        for total in args.cases:
            directory = write_directory(total, Path(tmp) / f"results-{total}")
            out = Path(tmp) / f"report-{total}.html"
            built = build(directory, out)
            shown = {"interactive_s": None, "figures": "-"}
            if not args.no_browser:
                shown = time_to_interactive(out)
            load = "-" if shown["interactive_s"] is None else f"{shown['interactive_s']:.1f}"
            print(
                f"{total:>7} {out.stat().st_size / 1e6:>8.1f} {built['seconds']:>8.1f} "
                f"{built['peak_rss_bytes'] / 2**20:>8.0f} {load:>7} {shown['figures']}"
                + (f"  errors: {shown['errors']}" if shown.get("errors") else "")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
