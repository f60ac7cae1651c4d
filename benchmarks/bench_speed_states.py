"""This machine's CPU speed states (a benchmark, not a test).

    python benchmarks/bench_speed_states.py [SECONDS]

Runs harness.measure.noise's speed probe (a fixed pure-Python loop, best of 3) every 50 ms for
SECONDS (default 60) and prints the fastest probe, the median's ratio to it, the share of
probes more than 1.25x slower than the fastest (the validity limit), and how long the machine
stayed in each state. A virtual machine whose host shifts its CPU shows two clusters here that
no load figure shows; a quiet bare-metal machine stays within a few per cent of its fastest.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.core.signals import SPEED_PROBE_SLOW_MAX
from harness.measure.noise import speed_probe


def main(seconds: float = 60.0) -> None:
    probes: list[tuple[float, float]] = []
    start = time.perf_counter()
    while (now := time.perf_counter() - start) < seconds:
        probes.append((now, speed_probe()))
        time.sleep(0.05)
    best = min(p for _, p in probes)
    ratios = [p / best for _, p in probes]
    slow = [r > SPEED_PROBE_SLOW_MAX for r in ratios]
    spells: dict[bool, list[float]] = {True: [], False: []}
    state, since = slow[0], probes[0][0]
    for (t, _), s in zip(probes, slow, strict=True):
        if s != state:
            spells[state].append(t - since)
            state, since = s, t
    spells[state].append(probes[-1][0] - since)
    print(
        f"{len(probes)} probes in {seconds:g} s: fastest {best * 1e3:.3f} ms, median "
        f"{statistics.median(ratios):.2f}x it; {sum(slow) / len(slow):.0%} of probes slower than "
        f"{SPEED_PROBE_SLOW_MAX:g}x (median slow ratio "
        f"{statistics.median([r for r in ratios if r > SPEED_PROBE_SLOW_MAX] or [1.0]):.2f}x)"
    )
    for name, key in (("slow", True), ("fast", False)):
        s = spells[key]
        if s:
            print(
                f"  {name} spells: {len(s)}, median {statistics.median(s):.1f} s, "
                f"longest {max(s):.1f} s"
            )


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:2]))
