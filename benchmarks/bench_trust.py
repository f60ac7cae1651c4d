"""Are the quick grid's numbers reproducible? Two runs back to back (a benchmark, not a test).

    python benchmarks/bench_trust.py [--old PATH] [--runs 2] [-- extra pytest args]

Runs ``pytest suites/ --benchmark-only`` (the CPU quick grid, README's main job) ``--runs``
times back to back into fresh directories and prints:

* the wall time of each run (and, with ``--old PATH``, of the same command run by the harness
  checked out at PATH, e.g. a ``git worktree`` of the previous release, side by side);
* how many rows each run flagged (noisy or invalid) and why;
* among the cases valid in both runs, the share whose medians differ by more than 5% (the
  goal is at most 5%), with the largest differences named, and over all cases measured in
  both the median absolute difference;
* the A/A comparison a CI gate would make of two runs of one commit: ``cnnbench compare RUN1
  RUNi --fail-on latency_s_median:5%`` (its exit status and the verdicts it printed);
* ``--keep DIR`` keeps the runs' result directories there.

These machines are noisy: the figures hold for the load they were taken under, which is
printed (the 1-minute load average before each run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = ["model", "input_shape", "batch_size", "dtype", "memory_format", "mode", "compiled"]


def _run(checkout: Path, results: Path, extra: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    if not (checkout / "harness/plugin/hooks.py").exists():  # a release before the layout
        extra = ["-p", "no:cnnbench", "-p", "harness.pytest_plugin", *extra]
    cmd = [
        *(sys.executable, "-m", "pytest", "suites/", "--benchmark-only", "-q"),
        *(f"--cnn-results-dir={results}", "--cnn-no-report", "-p", "no:cacheprovider"),
        *extra,
    ]
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="a checkout of the harness to time beside")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the runs' results in this directory")
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from harness.results import load_results

    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(args.keep.resolve()) if args.keep else scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        if args.old:
            load = os.getloadavg()[0]
            wall = _run(args.old.resolve(), Path(tmp) / "old", [])
            print(f"old harness ({args.old}): {wall:.1f} s wall (load before {load:.1f})")
        frames = []
        for i in range(args.runs):
            load = os.getloadavg()[0]
            wall = _run(ROOT, Path(tmp) / f"run{i}", args.extra)
            df = load_results(Path(tmp) / f"run{i}")
            ok = df[df["status"] == "ok"]
            flagged = ok[ok["validity"] != "valid"]
            timed = sum(float(sum(x)) for x in ok["latency_s_samples"] if x is not None)
            valid = int((ok["validity"] == "valid").sum())
            print(
                f"run {i + 1}: {wall:.1f} s wall (load before {load:.1f}); {len(df)} rows, "
                f"{len(ok)} ok, {valid} valid ({valid / max(1, len(ok)):.0%}), {len(flagged)} "
                f"flagged; timed rounds {timed:.1f} s = {timed / wall:.0%} of the wall time"
            )
            for r in flagged.itertuples():
                print(f"    {r.model} b{r.batch_size} {r.mode}: {r.validity}: {r.validity_reason}")
            frames.append(ok.set_index(KEY))
        for i in range(1, len(frames)):
            a, b = frames[0], frames[i]
            both = a.merge(b, left_index=True, right_index=True, suffixes=("_a", "_b"))
            valid = both[(both["validity_a"] == "valid") & (both["validity_b"] == "valid")]
            ratio = valid["latency_s_median_b"] / valid["latency_s_median_a"]
            off = ratio[(ratio - 1).abs() > 0.05]
            share = len(off) / len(valid) if len(valid) else float("nan")
            print(
                f"run 1 vs run {i + 1}: {len(both)} cases in both, {len(valid)} valid in both; "
                f"{len(off)} differ by more than 5% ({share:.1%}; goal: at most 5%)"
            )
            worst = (ratio - 1).abs().sort_values(ascending=False).head(5)
            for key, change in worst.items():
                print(f"    {key[0]} b{key[2]} {key[5]}: {ratio[key]:.3f} ({change:+.1%})")
            every = (both["latency_s_median_b"] / both["latency_s_median_a"] - 1).abs()
            print(f"    all {len(every)} cases in both: median |difference| {every.median():.1%}")
            _aa(Path(tmp) / "run0", Path(tmp) / f"run{i}")


def _aa(a: Path, b: Path) -> None:
    """The A/A gate: cnnbench compare of two runs of one commit, failing on a 5% change, and
    the verdicts of its cases (from its CSV)."""
    import csv
    import io
    from collections import Counter

    base = [sys.executable, "-m", "harness", "compare", str(a), str(b), "--metric", "latency"]
    gate = subprocess.run([*base, "--fail-on", "latency_s_median:5%"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    table = subprocess.run([*base, "--format", "csv"], cwd=ROOT, capture_output=True, text=True)
    verdicts = Counter(r.get("verdict") for r in csv.DictReader(io.StringIO(table.stdout)))
    print(f"    A/A: cnnbench compare --fail-on latency_s_median:5% exits {gate.returncode}; "
          f"verdicts of its cases: {dict(verdicts)}")  # fmt: skip


if __name__ == "__main__":
    main()
