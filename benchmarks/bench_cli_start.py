"""How long `cnnbench models` and `cnnbench profile lenet5` take in a fresh process (issue 25).

Each command runs in a fresh ``python -m harness`` process, first with an empty cache directory
(``CNNBENCH_CACHE_DIR``: the static output is computed, which imports torch and, through its
meta kernels, torch._dynamo) and then again with the cache it left (printed without torch), in
alternating order, ``--repeats`` times: wall and CPU time of each (medians), whether torch was
imported, and the five largest cumulative import times of ``python -X importtime`` for the
cached run. The target is 1.5 s for each command. On a machine shared with other work wall
times are noisy: the load average is printed beside them, and CPU time is printed too.

Run: ``python benchmarks/bench_cli_start.py [--repeats 3]``. Exit status 0 when both cached
commands are under the target.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5
COMMANDS = (["models"], ["profile", "lenet5"])


def run(args: list[str], cache: Path, importtime: bool = False) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stderr) of one fresh process."""
    env = {**os.environ, "CNNBENCH_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    flags = ["-X", "importtime"] if importtime else []
    out = subprocess.run([sys.executable, *flags, "-m", "harness", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stderr


def top_imports(stderr: str, n: int = 5) -> list[tuple[str, float]]:
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and not m.group(2):  # top-level imports only
            rows.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    ok = True
    for command in COMMANDS:
        cold, warm = [], []
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                cold.append(run(command, Path(tmp))[:2])
                warm.append(run(command, Path(tmp))[:2])
            with tempfile.TemporaryDirectory() as tmp:  # the other order: cached first
                run(command, Path(tmp))
                warm.append(run(command, Path(tmp))[:2])
                cold.append(run(command, Path(tmp) / "empty")[:2])
        with tempfile.TemporaryDirectory() as tmp:
            run(command, Path(tmp))
            stderr = run(command, Path(tmp), importtime=True)[2]
        torch = any(name == "torch" for name, _ in top_imports(stderr, 10_000))
        name = "cnnbench " + " ".join(command)
        for label, times in (("computed", cold), ("cached", warm)):
            wall = statistics.median(t for t, _ in times)
            cpu = statistics.median(c for _, c in times)
            runs = f"({len(times)} runs)"
            print(f"{name:26s} {label:8s} wall {wall:6.2f} s  CPU {cpu:5.2f} s  {runs}")
        cached = statistics.median(t for t, _ in warm)
        ok &= cached < TARGET_S
        print(f"{name:26s} cached: torch imported: {torch}; largest imports: "
              + ", ".join(f"{m} {s:.2f} s" for m, s in top_imports(stderr)))  # fmt: skip
    print(
        f"load average after: {os.getloadavg()[0]:.2f}; target {TARGET_S} s cached: "
        f"{'met' if ok else 'not met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
