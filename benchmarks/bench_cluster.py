"""Beyond one box (a benchmark, not a test): three figures, side by side in one run.

    python benchmarks/bench_cluster.py [--skip-slurm] [--skip-query] [--skip-balance]
                                       [--models M1,M2,...] [--cases 50000] [--hosts 20]
                                       [--keep DIR]

1. **Slurm against xdist**: the same sweep as two shards through the local Slurm (``cnnbench
   submit --shards 2 --cpus-per-task 1 --wait``, .ci/slurm-up.sh starts it) and with ``-n 2``
   (two workers, one core each), back to back: wall time of each, every case once, one run.
   Goal: the Slurm sweep within 1.2x of the xdist one. ``--models`` narrows the quick grid
   (default: the whole quick grid of suites/).
2. **SQL over a large tree**: 50,000 cases of 200 samples from 20 hosts (one shard each of one
   sweep), written with the real ResultWriter; ``cnnbench query`` with a grouped query, in a
   fresh process (what a user waits for) and in-process (the query alone). Goal: under 2 s.
3. **Shard balance**: the full GPU grid of suites/ (every test function at --cnn-scale=full on
   cuda) under the cost model with the models' real meta-device profiles: the longest shard
   against the mean for 2 to 64 shards, models split, and the planning time. Goal: at most 1.3x.

The machine's load average is printed before each part: the figures hold for that load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GROUPED = (
    "SELECT host, device_name, model, dtype, median(latency_s_median) AS median_s, "
    "max(throughput_per_s) AS best_per_s, count(*) AS cases FROM cases WHERE status = 'ok' "
    "GROUP BY ALL ORDER BY host, model"
)


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# --- 1. Slurm against xdist ------------------------------------------------------------------


def slurm_vs_xdist(models: str | None) -> None:
    from harness.results import load_results
    from harness.results.runs import select_runs

    print(f"\n1. two shards through Slurm against -n 2 ({_load()})")
    if subprocess.run(["bash", str(ROOT / ".ci/slurm-up.sh")], capture_output=True).returncode:
        print("   no Slurm here (.ci/slurm-up.sh could not start one): skipped")
        return
    # both end with the run's summary and HTML report (submit --wait writes the sweep's)
    args = ["suites/", "--benchmark-only", "-p", "no:cacheprovider"]
    if models:
        args.append(f"--cnn-models={models}")
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "slurm, 2 shards": [python, "-m", "harness", "submit", "--shards", "2",
                                "--cpus-per-task", "1", "--wait", "--results-dir",
                                f"{tmp}/tree", "--reports-dir", f"{tmp}/reports", "--", *args],
            "xdist, -n 2": [python, "-m", "pytest", *args, "-n", "2",
                            f"--cnn-results-dir={tmp}/xdist", f"--cnn-reports-dir={tmp}/r"],
        }  # fmt: skip
        walls = {}
        for name, cmd in runs.items():
            start = time.perf_counter()
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            walls[name] = time.perf_counter() - start
            if out.returncode not in (0, 1):
                print(f"   {name}: exit {out.returncode}\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
                return
        for name, where in (("slurm, 2 shards", f"{tmp}/tree"), ("xdist, -n 2", f"{tmp}/xdist")):
            df = load_results(where)
            selection = select_runs(df)
            print(f"   {name:16s} {walls[name]:7.1f} s  {len(df)} rows, {df['case_id'].nunique()} "
                  f"cases, {df['run_id'].nunique()} run id(s), {len(selection.runs)} "
                  f"configuration(s)")  # fmt: skip
        ratio = walls["slurm, 2 shards"] / walls["xdist, -n 2"]
        print(f"   Slurm / xdist wall time: {ratio:.2f}x (goal: at most 1.2x)")


# --- 2. SQL over a large tree ----------------------------------------------------------------


def write_tree(root: Path, n_cases: int, n_hosts: int, n_samples: int = 200) -> None:
    from harness.results import ResultWriter, tree

    tree.mark_tree(root)
    rng = np.random.default_rng(0)
    per_host = n_cases // n_hosts
    devices = ("NVIDIA H100", "NVIDIA A100", "NVIDIA L4", "NVIDIA H200")
    for h in range(n_hosts):
        host = f"node-{h:02d}"
        leaf = tree.leaf_dir(root, "bench", h + 1, n_hosts, host)
        with ResultWriter(leaf, run_id="bench") as w:
            for i in range(per_host):
                median = 0.001 * (1 + i % 97)
                samples = median * np.exp(0.02 * rng.standard_normal(n_samples))
                model, batch = f"model{i // 27}", 1 + i % 9
                dtype = ("float32", "float16", "bfloat16")[(i // 9) % 3]
                w.add_case(
                    {
                        "case_id": f"{model}-3x224x224-b{batch}-{dtype}-cuda",
                        "model": model, "input_shape": "3x224x224", "batch_size": batch,
                        "dtype": dtype, "memory_format": "contiguous", "mode": "inference",
                        "compiled": False, "device": "cuda:0",
                        "device_name": devices[h % len(devices)], "host": host,
                        "torch_version": "2.13.0", "latency_s_samples": samples,
                        "latency_s_median": float(np.median(samples)),
                        "throughput_per_s": batch / float(np.median(samples)),
                        "energy_j_per_sample": 0.1 * median, "rounds": n_samples,
                        "status": "ok", "validity": "valid",
                    }
                )  # fmt: skip


def query_scale(n_cases: int, n_hosts: int, keep: Path | None) -> None:
    from harness.cluster.query import run_query

    print(f"\n2. cnnbench query over {n_cases:,} cases from {n_hosts} hosts ({_load()})")
    with tempfile.TemporaryDirectory() as tmp:
        root = keep or Path(tmp) / "tree"
        if not root.exists():
            start = time.perf_counter()
            write_tree(root, n_cases, n_hosts)
            print(f"   tree written with ResultWriter in {time.perf_counter() - start:.0f} s")
        size = sum(f.stat().st_size for f in root.rglob("*.parquet")) / 2**20
        print(f"   {root}: {size:.0f} MiB of parquet")
        cmd = [sys.executable, "-m", "harness", "query", GROUPED, "--results", str(root),
               "--format", "csv"]  # fmt: skip
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
            if out.returncode:
                print(f"   query failed: {out.stderr.strip()}")
                return
        groups = len(out.stdout.strip().splitlines()) - 1
        inner = []
        for _ in range(3):
            start = time.perf_counter()
            run_query(root, GROUPED)
            inner.append(time.perf_counter() - start)
        print(f"   grouped query ({groups} groups): {min(walls):.2f} s in a fresh process "
              f"(best of 3; median {sorted(walls)[1]:.2f} s), {min(inner):.2f} s in-process "
              "(goal: under 2 s)")  # fmt: skip


# --- 3. shard balance ------------------------------------------------------------------------


def balance() -> None:
    from harness.cluster.cost import CostModel, Timing
    from harness.cluster.shard import plan
    from harness.run.grid import GridSettings, build_cases

    print(f"\n3. shard balance on the full GPU grid's cost model ({_load()})")
    spec = importlib.util.spec_from_file_location("classic", ROOT / "suites/test_classic_cnns.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    cases = []
    for fn in (suite.test_inference, suite.test_batch_and_layout, suite.test_training):
        cases += build_cases(fn.pytestmark[0].kwargs, GridSettings(scale="full"), "cuda")
    model = CostModel(Timing())
    start = time.perf_counter()
    total = sum(model(c) for c in set(cases))
    print(f"   {len(set(cases))} cases, {total / 3600:.2f} h by the cost model (profiles: "
          f"{time.perf_counter() - start:.1f} s)")  # fmt: skip
    models = sorted({c.model for c in cases})
    for count in (2, 3, 4, 8, 16, 32, 64):
        start = time.perf_counter()
        p = plan(cases, count, model)
        took = time.perf_counter() - start
        split = sum(len({p.shard(c) for c in cases if c.model == m}) > 1 for m in models)
        print(f"   {count:3d} shards: longest {p.balance:.3f}x the mean "
              f"({max(p.loads) / 60:.1f} of {sum(p.loads) / count / 60:.1f} min), "
              f"{split}/{len(models)} models split, planned in {took * 1000:.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-slurm", action="store_true")
    parser.add_argument("--skip-query", action="store_true")
    parser.add_argument("--skip-balance", action="store_true")
    parser.add_argument("--models", default=None, help="narrow the quick grid (--cnn-models)")
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument(
        "--keep", type=Path, default=None, help="write the synthetic tree here, or reuse it"
    )
    args = parser.parse_args()
    if not args.skip_balance:
        balance()
    if not args.skip_query:
        query_scale(args.cases, args.hosts, args.keep)
    if not args.skip_slurm and shutil.which("bash"):
        slurm_vs_xdist(args.models)


if __name__ == "__main__":
    main()
