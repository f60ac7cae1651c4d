"""What measured layer times cost: ``cnnbench profile vgg16 --measure`` and layer times in a run.

1. ``cnnbench profile vgg16 --measure`` at batch 1 on this CPU, run in-process through
   ``harness.cli.main.main`` (output discarded) with the step that ``harness.run.step.prepare_step``
   builds wrapped to count and time every call: the command's wall time, the time of the steps
   it ran (first call, warm-up, timed rounds, the shape step and the K profiled steps), and the
   rest: the static profile, building the model, the profiler's start, stop and reading its
   events. The target is under 3 s beyond the steps. The import of torch and the harness (a
   fresh process's start) is printed apart: it is paid once per process, not per profile.
2. Whether small layers are inflated: every leaf layer of ResNet-18 at batch 1 timed three
   ways: the measured layer time, a clock read in forward pre- and post-hooks (the way
   DeepSpeed's flops profiler times modules), and the layer run alone on its own input
   (median of 50 calls). Printed for the layers that take under 50 us alone: the sums of each
   and the median ratio of the hook clock to the op time.
3. The overhead of layer times in a run: ``harness.run.runner.run_case`` on a small grid of zoo
   cases with the quick grid's timing settings, each case with layer times off and on, side by
   side in ABBA order (so drifting load falls on both alike), ``--repeats`` times; the wall
   time of each case (``CaseResult.wall_s``) and the overhead in %, per case and for the grid.

Timings on a machine shared with other work are noisy: the figures are medians of the repeats
and the load average is printed beside them. Run:
``python benchmarks/bench_layer_times.py [--repeats 2] [--threads N] [--skip-grid] [--zoo]``.
``--zoo`` adds the coverage of every quick-grid model at batch 1 and 8 (issue 11's 0.85-1.15).
Exit status 0 when the VGG-16 figure is under its target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 3.0
GRID = [
    ("lenet5", 1),
    ("alexnet", 1),
    ("resnet18", 1),
    ("googlenet", 1),
    ("vgg16", 1),
    ("resnet1d18", 8),
    ("lenet5", 8),
]


def import_seconds() -> float:
    """A fresh process's import of torch and the CLI (what `cnnbench` pays before anything)."""
    code = (
        "import time; t = time.perf_counter(); import torch, harness.cli.main, harness.run.runner; "
    )
    code += "print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def measure_cli(threads: int | None) -> dict[str, float]:
    """``cnnbench profile vgg16 --measure``, in-process, with its steps counted and timed and
    its phases (static profile, model build, layer-time measurement) timed apart."""
    import torch

    import harness.measure.layer_times as layer_times
    import harness.profile
    import harness.run.runner  # imported before the patches below, which it must not keep
    import harness.run.step
    from harness.cli.main import build_parser, main

    build_parser()  # imports every command's module: a process's start, not the profile's
    steps: list[float] = []
    phases = {"profile_s": 0.0, "build_s": 0.0, "layer_times_s": 0.0, "layer_steps_s": 0.0}
    originals = (
        harness.profile.profile,
        harness.run.step.prepare_step,
        layer_times.measure_layer_times,
    )

    def timed(key, fn):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[key] += time.perf_counter() - t0

        return call

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        prepared = timed("build_s", originals[1])(*args, **kwargs)
        inner = prepared.step

        def step() -> object:
            t0 = time.perf_counter()
            try:
                return inner()
            finally:
                steps.append(time.perf_counter() - t0)

        prepared.step = step
        return prepared

    def measuring(*args, **kwargs):  # type: ignore[no-untyped-def]
        before = len(steps)
        try:
            return timed("layer_times_s", originals[2])(*args, **kwargs)
        finally:
            phases["layer_steps_s"] += sum(steps[before:])

    harness.profile.profile = timed("profile_s", originals[0])
    harness.run.step.prepare_step = counting
    layer_times.measure_layer_times = measuring
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["profile", "vgg16", "--measure"])
        wall = time.perf_counter() - t0
    finally:
        harness.profile.profile, harness.run.step.prepare_step = originals[:2]
        layer_times.measure_layer_times = originals[2]
        torch.set_num_threads(before)
    if code != 0:
        raise SystemExit(f"cnnbench profile vgg16 --measure exited {code}")
    return {"wall_s": wall, "steps": len(steps), "steps_s": sum(steps), **phases}


def measure_grid(repeats: int, threads: int | None) -> list[tuple[str, float, float]]:
    """(case, median wall off, median wall on) per case of GRID, run ABBA."""
    from harness.core.spec import Case
    from harness.models import get_entry
    from harness.run.runner import RunOptions, run_case

    quick = {"warmup_rounds": 2, "min_rounds": 6, "min_time_s": 0.2, "max_time_s": 1.5}
    options = {
        flag: RunOptions(**quick, power="off", threads=threads, layer_times=flag)
        for flag in (False, True)
    }
    out = []
    for model, batch in GRID:
        case = Case(model, get_entry(model).input_shape, batch, threads=threads)
        walls: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(repeats):
            for flag in (False, True, True, False):
                res = run_case(case, options[flag])
                if res.row["status"] != "ok":
                    raise SystemExit(f"{case.case_id}: {res.row['status']}: {res.row['error']}")
                walls[flag].append(res.wall_s)
        off, on = statistics.median(walls[False]), statistics.median(walls[True])
        print(f"  {model:<11} b{batch:<2} off {off:6.2f} s   on {on:6.2f} s   "
              f"overhead {100 * (on / off - 1):+6.1f}%", flush=True)  # fmt: skip
        out.append((f"{model} b{batch}", off, on))
    return out


def small_modules(threads: int | None) -> None:
    """Per leaf layer of ResNet-18 at batch 1: the measured time (profiler op time), a forward
    hook clock (perf_counter in a pre- and a post-hook: DeepSpeed's flops profiler's way, here
    without a synchronise since this is the CPU), and the layer run alone on its own input in a
    loop (median of 50 calls): whether a method inflates small layers. One intra-op thread
    unless told: with two OpenMP threads on a shared two-core machine a 10 us op can wait
    milliseconds for a descheduled thread, in any of the three."""
    import numpy as np
    import torch

    from harness.core.schema import column_names
    from harness.core.spec import Case
    from harness.measure.layer_times import measure_layer_times
    from harness.measure.timing import fixed_threads, measure_latency
    from harness.profile import profile
    from harness.run.step import prepare_step

    threads = threads or 1
    case = Case("resnet18", (3, 224, 224), 1, threads=threads)
    static = (
        profile("resnet18")
        .to_frame()
        .assign(model="resnet18", input_shape="3x224x224", batch_size=1, dtype="float32")
    )
    static = static[[c for c in column_names("layers") if c in static.columns]]
    with fixed_threads(threads):
        prepared = prepare_step(case, torch.device("cpu"))
        model = prepared.model
        leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
        with prepared.contexts():
            median = measure_latency(prepared.step, device="cpu", min_time_s=0.5)
            median_s = float(median.summary()["latency_s_median"])
            ours = measure_layer_times(
                prepared, case, torch.device("cpu"), steps=5, static=static, step_median_s=median_s
            ).layers
            ours = ours[ours["layer_kind"] == "leaf"]

            clocks: list[list[float]] = []
            inputs: list[tuple] = []
            started: list[float] = []

            def pre(module, args):  # type: ignore[no-untyped-def]
                started.append(time.perf_counter())

            def post(module, args, output):  # type: ignore[no-untyped-def]
                clocks[-1].append(time.perf_counter() - started.pop())

            def keep(module, args):  # type: ignore[no-untyped-def]
                inputs.append(tuple(a.clone() for a in args))

            handles = [m.register_forward_pre_hook(keep) for _, m in leaves]
            prepared.step()
            for h in handles:
                h.remove()
            handles = [h for _, m in leaves for h in (m.register_forward_pre_hook(pre),
                                                       m.register_forward_hook(post))]  # fmt: skip
            for _ in range(5):
                clocks.append([])
                prepared.step()
            for h in handles:
                h.remove()
            hooked = np.median(np.array(clocks), axis=0)

            modules = dict(model.named_modules())
            alone = []
            for name, args in zip(ours["layer_name"], inputs, strict=True):
                module = modules[name]
                samples = []
                for _ in range(50):
                    t0 = time.perf_counter()
                    module(*args)
                    samples.append(time.perf_counter() - t0)
                alone.append(float(np.median(samples)))
    alone_a = np.array(alone)
    ours_a = ours["time_s"].to_numpy(dtype=float)
    small = alone_a < 50e-6
    print(
        f"small layers of resnet18 b1, {threads} thread(s): {int(small.sum())} of "
        f"{len(alone_a)} take under 50 us run alone; over those, profiler op time "
        f"{1e6 * ours_a[small].sum():.0f} us, hook clock {1e6 * hooked[small].sum():.0f} us "
        f"(median ratio hook clock / op time {np.median(hooked[small] / ours_a[small]):.2f}x), "
        f"run alone {1e6 * alone_a[small].sum():.0f} us"
    )
    print(
        f"  all {len(alone_a)} layers: op time {1e3 * ours_a.sum():.2f} ms, hook clock "
        f"{1e3 * hooked.sum():.2f} ms, alone {1e3 * alone_a.sum():.2f} ms; step median "
        f"{1e3 * median_s:.2f} ms (a layer alone reuses warm, already-mapped output memory "
        "that a layer inside the step does not)"
    )


def zoo_coverage(threads: int | None, batches: list[int]) -> list[float]:
    """layer_time_coverage of every model of the CPU quick grid at each batch size, through
    run_case as a sweep runs it; the profiled step's wall time / the timed median beside it
    (the profiler's overhead, and any change of load) and the runner's validity verdict."""
    from harness.core.spec import Case
    from harness.measure.layer_times import profiled_step_ratio
    from harness.models import get_entry
    from harness.run.runner import RunOptions, run_case
    from suites.test_classic_cnns import QUICK

    options = RunOptions(
        warmup_rounds=2, min_rounds=6, min_time_s=0.2, max_time_s=1.5, power="off",
        threads=threads, layer_times=True,
    )  # fmt: skip
    found = []
    for model in QUICK:
        for batch in batches:
            case = Case(model, get_entry(model).input_shape, batch, threads=threads)
            row = run_case(case, options).row
            if row["status"] != "ok" or row.get("layer_time_coverage") is None:
                print(f"  {case.case_id}: {row['status']} {row.get('error') or ''} "
                      f"{row.get('layer_time_source') or ''}")  # fmt: skip
                continue
            ratio = profiled_step_ratio(row["layer_time_source"])
            found.append(row["layer_time_coverage"])
            print(f"  {model:<22} b{batch:<2} step {1e3 * row['latency_s_median']:9.2f} ms  "
                  f"coverage {row['layer_time_coverage']:.3f}  profiled step {ratio:.2f}x  "
                  f"{row['validity']} (load {row['load_avg_1m']:.1f})", flush=True)  # fmt: skip
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="ABBA blocks per grid case")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    parser.add_argument("--skip-grid", action="store_true", help="no run_case grid")
    parser.add_argument(
        "--zoo",
        action="store_true",
        help="also the coverage of every quick-grid model at batch 1 and 8 (minutes)",
    )
    args = parser.parse_args()

    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"import of torch and the harness in a fresh process: {import_seconds():.2f} s")
    cli = measure_cli(args.threads)
    beyond = cli["wall_s"] - cli["steps_s"]
    print(
        f"cnnbench profile vgg16 --measure (batch 1, this CPU): {cli['wall_s']:.2f} s in all, "
        f"{cli['steps']} steps took {cli['steps_s']:.2f} s, "
        f"{beyond:.2f} s beyond the steps (target < {TARGET_S:.0f} s)"
    )
    machinery = cli["layer_times_s"] - cli["layer_steps_s"]
    rest = beyond - cli["profile_s"] - cli["build_s"] - machinery
    print(
        f"  of which: static profile {cli['profile_s']:.2f} s, building the model "
        f"{cli['build_s']:.2f} s, layer-time machinery (hooks, profiler start/stop, reading "
        f"its events, the join) {machinery:.2f} s, the rest {rest:.2f} s"
    )
    small_modules(args.threads)
    if not args.skip_grid:
        print(f"layer times in run_case, quick-grid timing, {args.repeats} ABBA block(s) a case:")
        grid = measure_grid(args.repeats, args.threads)
        off = sum(g[1] for g in grid)
        on = sum(g[2] for g in grid)
        print(
            f"  grid: off {off:.1f} s, on {on:.1f} s: layer times add "
            f"{100 * (on / off - 1):.1f}% to its wall time"
        )
    if args.zoo:
        print("layer_time_coverage of the CPU quick grid's models (target 0.85-1.15):")
        found = zoo_coverage(args.threads, [1, 8])
        inside = sum(0.85 <= c <= 1.15 for c in found)
        print(f"  {inside} of {len(found)} cases within 0.85-1.15; range "
              f"{min(found):.3f}-{max(found):.3f}")  # fmt: skip
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    return 0 if beyond < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
