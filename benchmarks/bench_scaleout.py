"""Scale-out on this machine (a benchmark, not a test).

    python benchmarks/bench_scaleout.py [--old PATH] [--skip-xdist] [--skip-overhead]

1. **pytest-xdist**: the same cases with ``-n 2`` (two workers, each pinned to one core, one
   thread) and ``-n 0`` (one process, one thread), back to back: case throughput (cases per
   second of the whole pytest run) and each case's median against the serial run's. Goal:
   at least 1.8x the throughput, every median within 10%.
2. **The harness's own time per case**: wall time of a case minus the time inside its timing (first
   call, warm-up and timed rounds: ``measure_latency``, or since windows ``calibrate`` and each
   ``time_window``): build, profile, memory step, layer bookkeeping, writing. For resnet50 and
   vgg16 over three batch sizes, with this checkout's Sweep (models reused, O(1) writer) and, with
   ``--old PATH`` (a ``git worktree`` of the previous release), that release's run_case and writer,
   side by side.

The machine's load average is printed before each part: the figures hold for that load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = ["model", "input_shape", "batch_size", "dtype", "memory_format", "mode", "compiled"]
MODELS = "lenet5,alexnet,resnet18,resnet34,googlenet,inception_3a,vgg11,resnet1d18"

OVERHEAD = r"""
import json, sys, tempfile, time
try:
    import harness.run.runner as r
except ImportError:  # a release before the layout of harness/run
    import harness.runner as r
from harness.core.spec import Case
spent = []
def timing(owner, name):
    inner = getattr(owner, name)
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)
    setattr(owner, name, timed)
if hasattr(r, "measure_latency"):  # one contiguous measurement: warm-up and rounds
    timing(r, "measure_latency")
else:  # windows (harness.run.session): the warm-up and each timed window
    import harness.run.session as session
    timing(session, "calibrate")
    timing(session, "time_window")
opts = dict(warmup_rounds=2, min_rounds=5, min_time_s=0.2, max_time_s=1.0, power="off", threads=1)
out = {}
with tempfile.TemporaryDirectory() as d:
    for model in ("resnet50", "vgg16"):  # a model's three cases: one block since windows
        cases = [Case(model, (3, 224, 224), batch_size=b) for b in (1, 2, 4)]
        if sys.argv[1] == "new":
            from harness.run.sweep import Sweep
            options = r.RunOptions(ci_target=None, remeasure=0, **opts)
            sweep = Sweep(options, results_dir=f"{d}/{model}")
            if hasattr(sweep, "plan"):
                sweep.plan([(c, None) for c in cases])
            run = sweep.run
        else:
            from harness.results.store import ResultWriter
            writer = ResultWriter(f"{d}/{model}")
            options = r.RunOptions(**opts)
            def run(c):
                res = r.run_case(c, options)
                writer.add_case(res.row, layers=res.layers)
                return res
        before = len(spent)
        t = time.perf_counter()
        for c in cases:
            res = run(c)
            assert res.row["status"] == "ok", res.row.get("error")
        wall = time.perf_counter() - t
        out[model] = (wall - sum(spent[before:])) / len(cases)  # the mean over its cases
print(json.dumps(out))
"""


def _pytest(n: int, results: Path) -> float:
    cmd = [
        *(sys.executable, "-m", "pytest", "suites/", "--benchmark-only", "-q", "-n", str(n)),
        *(f"--cnn-results-dir={results}", "--cnn-no-report", "-p", "no:cacheprovider"),
        *(f"--cnn-models={MODELS}", "--cnn-batch-sizes=1,2", "--cnn-modes=inference"),
        *(["--cnn-threads=1"] if n == 0 else []),
    ]
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    return time.perf_counter() - started


def xdist() -> None:
    from harness.results import load_results

    print(f"pytest-xdist (load before {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as tmp:
        walls = {n: _pytest(n, Path(tmp) / f"n{n}") for n in (0, 2)}
        frames = {n: load_results(Path(tmp) / f"n{n}").set_index(KEY) for n in (0, 2)}
    rows = len(frames[0])
    rate = {n: rows / walls[n] for n in walls}
    print(
        f"  -n 0: {rows} cases in {walls[0]:.1f} s ({rate[0]:.2f} cases/s); -n 2: "
        f"{walls[2]:.1f} s ({rate[2]:.2f} cases/s): x{rate[2] / rate[0]:.2f} (goal: at least 1.8)"
    )
    both = frames[0].merge(frames[2], left_index=True, right_index=True, suffixes=("_0", "_2"))
    ok = both[(both["status_0"] == "ok") & (both["status_2"] == "ok")]
    ratio = ok["latency_s_median_2"] / ok["latency_s_median_0"]
    far = ratio[(ratio - 1).abs() > 0.10]
    print(
        f"  medians -n 2 / -n 0 over {len(ok)} cases: from {ratio.min():.3f} to "
        f"{ratio.max():.3f}; {len(far)} beyond 10% (goal: none)"
    )
    for key, value in far.items():
        valid = (ok.loc[key, "validity_0"], ok.loc[key, "validity_2"])
        print(f"    {key[0]} b{key[2]}: {value:.3f} (validity {valid[0]} / {valid[1]})")


def _overhead(checkout: Path, which: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, "-c", OVERHEAD, which], cwd=checkout, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"overhead ({which}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def overhead(old: Path | None) -> None:
    print(f"harness time per case outside the timing (load before {os.getloadavg()[0]:.1f})")
    runs = {"this checkout": _overhead(ROOT, "new")}
    if old is not None:
        runs[f"old ({old})"] = _overhead(old.resolve(), "old")
    for label, per_model in runs.items():
        text = ", ".join(f"{m} {v:.2f} s" for m, v in per_model.items())
        print(f"  {label}: mean per case of {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path)
    parser.add_argument("--skip-xdist", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if not args.skip_xdist:
        xdist()
    if not args.skip_overhead:
        overhead(args.old)


if __name__ == "__main__":
    main()
