"""Overhead of the power sampler: a CPU-bound case with the sampling thread on against off.

The case is the zoo's ResNet-18 at batch 1 on the CPU (eval mode, inference_mode, a fixed
thread count). Short blocks of ``--block-rounds`` rounds are timed alternately with the sampler
off and on, in ABBA order, many times over, so that the load of a shared machine, which drifts
over seconds, falls on both sides alike; each round is timed alone by
``harness.measure.timing.run_rounds``. "On" is a real sampling thread at ``--sample-hz``:

* ``--source nvml-stub`` (default): ``NvmlPowerMonitor`` through the real nvidia-ml-py
  bindings, on the stand-in libnvidia-ml of tests/nvml_stub (built here with gcc), so every
  poll is a real pynvml ``nvmlDeviceGetFieldValues`` call through ctypes;
* ``--source rapl-fake``: ``RaplPowerMonitor`` reading a powercap tree in a temporary directory
  (two package files per poll), the CPU path where RAPL is not readable.

It prints the median latency with the sampler off and on, their ratio with a bootstrap 95%
interval, the same ratio in each quarter of the run (the drift of the machine), the measured
cost of one poll and the polls per second reached. Beside the wall-clock latency it times each
round's CPU time of the whole process (``time.process_time``: every thread, the sampler's
included): a machine shared with other work makes wall-clock latency noisy (descheduling), while
the process's CPU time shows what the sampler itself costs. The target is a latency ratio within
1% of 1.0. Exit status 0 when the median ratio is within it, 1 otherwise.

Run: ``python benchmarks/bench_power_overhead.py [--blocks 80] [--block-rounds 3] [--threads N]``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.nvml_stub

import harness
from harness.measure.power import PowerMonitor, make_power_monitor
from harness.measure.timing import fixed_threads
from tests.nvml_stub.build import build_stub

TARGET = 0.01


def monitor_for(source: str, sample_hz: float, workdir: Path) -> PowerMonitor:
    if source == "nvml-stub":
        lib = build_stub(workdir)
        conf = workdir / "stub.conf"
        conf.write_text("devices=1\ndev0.power=0:150000,0.5:250000\npower_update_us=10000\n")
        import os

        os.environ["NVML_STUB_CONFIG"] = str(conf)
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        monitor = make_power_monitor(
            "cuda:0", sample_hz=sample_hz, nvml_library=lib, cuda_identity=lambda _i: None
        )
    else:
        root = workdir / "powercap"
        for i in range(2):
            zone = root / f"intel-rapl:{i}"
            zone.mkdir(parents=True)
            (zone / "name").write_text(f"package-{i}\n")
            (zone / "max_energy_range_uj").write_text("262143328850\n")
            (zone / "energy_uj").write_text(f"{1000 * (i + 1)}\n")
        monitor = make_power_monitor("cpu", sample_hz=sample_hz, powercap_root=root)
    if monitor.sample_hz is None:
        raise SystemExit(f"no sampling monitor: {monitor.source}")
    return monitor


def poll_cost_s(monitor: PowerMonitor, n: int = 2000) -> float:
    """Seconds of one poll (the work the thread does per tick), measured in this thread."""
    monitor.start()
    t0 = time.perf_counter()
    for _ in range(n):
        monitor.sample()
    cost = (time.perf_counter() - t0) / n
    monitor.stop()
    return cost


def timed_rounds(step: functools.partial, rounds: int) -> tuple[list[float], list[float]]:
    """Wall-clock (perf_counter) and process CPU (process_time) seconds of each round."""
    wall, cpu = [0.0] * rounds, [0.0] * rounds
    for i in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        wall[i], cpu[i] = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu


def ratio_interval(on: np.ndarray, off: np.ndarray, n: int = 2000) -> tuple[float, float]:
    """Bootstrap 95% interval of median(on) / median(off), resampling rounds within each side."""
    rng = np.random.default_rng(0)
    on_m = np.median(rng.choice(on, (n, on.size)), axis=1)
    off_m = np.median(rng.choice(off, (n, off.size)), axis=1)
    lo, hi = np.percentile(on_m / off_m, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--blocks", type=int, default=80, help="blocks per side (on, off)")
    parser.add_argument("--block-rounds", type=int, default=3, help="rounds per block")
    parser.add_argument("--sample-hz", type=float, default=100.0)
    parser.add_argument("--source", choices=["nvml-stub", "rapl-fake"], default="nvml-stub")
    args = parser.parse_args()

    entry = harness.get_entry(args.model)
    model = entry.build().eval()
    x = torch.randn(args.batch, *entry.input_shape)
    blocks: dict[str, list[tuple[list[float], list[float]]]] = {"on": [], "off": []}
    rates: list[float] = []
    sampler_cpu: list[float] = []  # CPU seconds of the sampling thread per second of window
    with tempfile.TemporaryDirectory() as tmp, fixed_threads(args.threads) as threads:
        monitor = monitor_for(args.source, args.sample_hz, Path(tmp))
        with torch.inference_mode():
            step = functools.partial(model, x)
            timed_rounds(step, 10)  # warm-up
            cost = poll_cost_s(monitor)
            for block in range(2 * args.blocks):
                if block % 4 in (1, 2):  # off on on off | off on on off | ...
                    monitor.start()
                    blocks["on"].append(timed_rounds(step, args.block_rounds))
                    reading = monitor.stop()
                    rates.append((reading.polls - 2) / reading.window_s)  # the thread's own
                    sampler_cpu.append(monitor.sampler_cpu_s / reading.window_s)
                else:
                    blocks["off"].append(timed_rounds(step, args.block_rounds))
    print(
        f"{args.model} batch {args.batch}, {threads} torch thread(s); sampler {monitor.source} "
        f"at {args.sample_hz:g} Hz; {args.blocks} blocks of {args.block_rounds} rounds per side"
    )
    print(
        f"one poll costs {cost * 1e6:.1f} us of CPU in the calling thread: "
        f"{cost * args.sample_hz * 100:.3f}% of one core at {args.sample_hz:g} Hz; "
        f"the thread polled {statistics.median(rates):.1f} times/s (median over the 'on' blocks)"
    )
    print(
        "the sampling thread itself used "
        f"{statistics.median(sampler_cpu) * 100:.3f}% of one core (median over the 'on' blocks; "
        "thread CPU time, wake-ups included)"
    )
    ratio = 1.0
    for kind, col in (("latency (wall)", 0), ("process CPU", 1)):
        on_s = np.concatenate([b[col] for b in blocks["on"]])
        off_s = np.concatenate([b[col] for b in blocks["off"]])
        r = float(np.median(on_s) / np.median(off_s))
        lo, hi = ratio_interval(on_s, off_s)
        q = len(blocks["on"]) // 4
        quarters = [
            float(np.median([v for b in blocks["on"][i * q : (i + 1) * q] for v in b[col]]))
            / float(np.median([v for b in blocks["off"][i * q : (i + 1) * q] for v in b[col]]))
            for i in range(4)
        ]
        iqr = np.subtract(*np.percentile(off_s, [75, 25]))
        print(
            f"{kind}: median off {np.median(off_s) * 1e3:.3f} ms (IQR {iqr * 1e3:.3f} ms), "
            f"on {np.median(on_s) * 1e3:.3f} ms; on/off {r:.4f}, 95% [{lo:.4f}, {hi:.4f}]; "
            "by quarter " + ", ".join(f"{v:.4f}" for v in quarters)
        )
        if col == 0:
            ratio = r
    ok = abs(ratio - 1.0) < TARGET
    print(f"{'PASS' if ok else 'FAIL'}: |ratio - 1| {'<' if ok else '>='} {TARGET:.0%}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
