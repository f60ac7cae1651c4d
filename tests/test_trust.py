"""Numbers a user can trust: the validity verdict, the re-measure, and the noise signals on real
runs of this CPU (issue: stability-driven rounds and a verdict on every row).

Ground truth: models whose forward sleeps known times (tests/models_for_tests.py), neighbour
processes that burn the CPUs, and the order-statistics confidence interval of the median, whose
ranks are those of the binomial tables (n=20: 6th and 15th; n=100: 40th and 61st).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.signals import (
    IQR_REL_MAX,
    assess,
    noise_signals,
)
from harness.core.spec import Case
from harness.core.stats import median_ci
from harness.run.runner import RunOptions, run_case

# real runs whose verdict and times depend on the CPU being this test's alone (make test runs
# the serial tests after the others, one at a time)
pytestmark = pytest.mark.serial

M = "tests.models_for_tests:"
QUICK = RunOptions(
    warmup_rounds=1, warmup_time_s=0.0, min_rounds=6, min_time_s=0.05, max_time_s=1.0,
    ci_target=0.01, remeasure=1, remeasure_pause_s=0.2, power="off",
)  # fmt: skip


@pytest.mark.parametrize(
    ("n", "ranks"),
    [(6, (1, 6)), (9, (2, 8)), (20, (6, 15)), (100, (40, 61)), (1000, (469, 532))],
)
def test_median_interval_ranks_are_the_binomial_tables(n: int, ranks: tuple[int, int]) -> None:
    """Distribution-free 95% interval of the median: ranks from published tables (e.g. Conover,
    Practical Nonparametric Statistics, table A3; n=100 gives the 40th and 61st values)."""
    x = np.arange(1.0, n + 1)
    assert median_ci(np.random.default_rng(0).permutation(x)) == ranks


def test_fewer_than_six_rounds_have_no_95_percent_interval_and_are_not_valid() -> None:
    row = {"status": "ok", "latency_s_median": 0.01, "throughput_per_s": 100.0, "rounds": 5,
           "latency_s_samples": [0.01] * 5}  # fmt: skip
    validity, reason = assess(row)
    assert validity == "noisy" and reason.startswith("only 5 round(s)")


def test_each_signal_names_its_value_and_limit() -> None:
    base = {"status": "ok", "latency_s_median": 0.010, "throughput_per_s": 100.0, "rounds": 50}
    cases = {
        "IQR 40% of the median (limit 25%)": {"latency_s_iqr": 0.004},
        "median's 95% interval +-5.0% (limit +-2.5%)": {
            "latency_s_median_ci_low": 0.0095,
            "latency_s_median_ci_high": 0.0105,
        },
        "CPU pressure 50% of the rounds": {"cpu_pressure": 0.5},
        "load 2.8 on 2 cores (limit cores + 0.5)": {"load_avg_1m": 2.8, "cpu_cores": 2},
        "SM clock fell 1980 -> 1410 MHz": {"sm_clock_mhz_start": 1980, "sm_clock_mhz_end": 1410},
        "GPU slowed down: hw_thermal_slowdown": {"throttle_reasons_end": "hw_thermal_slowdown"},
        "240 involuntary context switches/s": {"involuntary_switches_per_s": 240.0},
        "CPU running 1.70x slower than typical": {"speed_probe_ratio": 1.7},
        "CPU running 1.60x faster than typical": {"speed_probe_ratio": 0.625},
    }
    for text, extra in cases.items():
        found = noise_signals({**base, **extra})
        assert len(found) == 1 and found[0].text.startswith(text.split(" (")[0]), (text, found)
    assert noise_signals(base) == []
    # the thresholds act where they are documented (harness/core/signals.py: IQR over 25% of
    # the median, the median's interval wider than +-2.5%), not merely hold those values
    for share, flagged in ((0.249, False), (0.251, True)):
        found = noise_signals({**base, "latency_s_iqr": share * 0.010})
        assert bool(found) == flagged, (share, found)
    for half, flagged in ((0.0249, False), (0.0251, True)):
        lo, hi = 0.010 * (1 - half), 0.010 * (1 + half)
        found = noise_signals(
            {**base, "latency_s_median_ci_low": lo, "latency_s_median_ci_high": hi}
        )
        assert bool(found) == flagged, (half, found)
    # switches decide only without PSI: with a pressure reading they are not a second vote
    assert noise_signals({**base, "involuntary_switches_per_s": 240.0, "cpu_pressure": 0.0}) == []
    # within 1.25x of typical either way is the same state
    assert noise_signals({**base, "speed_probe_ratio": 1.2}) == []
    assert noise_signals({**base, "speed_probe_ratio": 0.85}) == []


def test_the_speed_reference_is_the_hosts_typical_probe_not_its_fastest(tmp_path, monkeypatch):
    """A host that is slow 98% of the time with short fast bursts (this VM, 2026-11-29): the
    reference is the median of its recent probes, so a probe in the usual slow state reads
    1.0 and a burst reads fast; the history is shared through the cache file and bounded."""
    from harness.measure import noise

    path = tmp_path / "speed.json"
    slow, fast = 1.26e-3, 0.75e-3
    warmups = iter([fast] + [slow] * (noise.SPEED_WARMUP - 1))
    monkeypatch.setattr(noise, "speed_probe", lambda: next(warmups))
    monkeypatch.setattr(noise.time, "sleep", lambda s: None)
    ref = noise.SpeedReference(path)
    assert ref.ratio(slow) == pytest.approx(1.0)  # the fastest ever seen would say 1.68
    assert ref.ratio(fast) == pytest.approx(fast / slow)
    ref.save()
    again = noise.SpeedReference(path)  # another process on the host reads the same history
    assert len(again.recent) == noise.SPEED_WARMUP + 2
    assert again.typical() == pytest.approx(slow)
    for _ in range(noise.SPEED_HISTORY + 10):
        again.ratio(fast)
    again.save()
    assert len(noise.SpeedReference(path).recent) == noise.SPEED_HISTORY
    assert noise.SpeedReference(path).typical() == pytest.approx(fast)  # the host got faster
    # a cache from the first version (one float: the fastest) is read as no history
    path.write_text(json.dumps({noise._cache_key(): 0.0007}))
    assert noise.SpeedReference(path).recent == []


class _Clock:
    """The rounds' clock, driven by the test: a step takes exactly what the test says (a
    simulated process whose times are known), so the verdict depends on the samples alone."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


class _Simulated(torch.nn.Module):
    """A model whose call advances the test's clock by ``duration(call, now)`` seconds."""

    def __init__(self, clock: _Clock, duration) -> None:
        super().__init__()
        self.clock, self.duration, self.calls = clock, duration, 0
        self.started: float | None = None
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.started = self.clock.t if self.started is None else self.started
            self.clock.t += self.duration(self.calls, self.clock.t - self.started)
            self.calls += 1
        return self.fc(x.flatten(1)[:, :4])


QUIET = {  # what the noise probe reads on an idle machine
    "load_avg_1m_end": None,
    "cpu_pressure": 0.0,
    "involuntary_switches_per_s": 0.0,
    "speed_probe_ratio": 1.0,
}


@contextlib.contextmanager
def simulated() -> Iterator[Callable[[Callable[[int, float], float]], dict]]:
    """``with simulated() as run: run(duration)``: run_case on a model whose calls take
    ``duration(call, since_first_call)`` seconds of a clock the test drives, on a quiet machine
    (the noise probe reads ``QUIET``): the timing, the verdict, the re-measure and the row are
    the harness's own. The real clock and probe are back after the block."""
    from harness.measure import noise, timing

    clock = _Clock()
    durations: list[Callable[[int, float], float]] = []

    def simulated_model() -> torch.nn.Module:  # built on meta for the profile, then for real
        return _Simulated(clock, durations[-1])

    simulated_model.input_shape = (1, 2, 2)  # type: ignore[attr-defined]

    def run(duration: Callable[[int, float], float]) -> dict:
        durations.append(duration)
        case = Case("tests.test_trust:simulated_model", (1, 2, 2))
        return run_case(case, QUICK, environment={}).row

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timing, "time", clock)  # the rounds' perf_counter
        mp.setattr(noise.NoiseProbe, "__enter__", lambda self: self)
        mp.setattr(noise.NoiseProbe, "__exit__", lambda self, *exc: None)
        mp.setattr(noise.NoiseProbe, "columns", lambda self: dict(QUIET))
        mp.setitem(globals(), "simulated_model", simulated_model)
        yield run


def test_outliers_in_a_fifth_of_the_calls_do_not_move_a_valid_median() -> None:
    """Every fifth call takes 10x as long: the median is the fast call's time and the row is
    valid (20% of outliers lie above the upper quartile). Ground truth: a simulated step of
    exactly 2 ms, 20 ms every fifth call, on a quiet machine; then the same on this CPU."""
    with simulated() as simulate:
        row = simulate(lambda call, since: 0.020 if call % 5 == 4 else 0.002)
    samples = np.asarray(row["latency_s_samples"])
    assert row["status"] == "ok", row.get("error")
    assert np.isclose(samples, 0.020).sum() >= len(samples) // 5  # the outliers are in them...
    assert samples.mean() > 1.5 * row["latency_s_median"]
    assert row["latency_s_median"] == pytest.approx(0.002, rel=1e-9)  # ...not in the median
    assert row["validity"] == "valid", row["validity_reason"]
    assert row["remeasured"] == 0

    row = run_case(Case(M + "outliers_20_percent", (1, 2, 2)), QUICK).row
    assert row["status"] == "ok", row.get("error")
    samples = np.asarray(row["latency_s_samples"])
    assert samples.mean() > 1.5 * row["latency_s_median"]  # the outliers are in the samples...
    assert (samples >= 0.02).sum() >= len(samples) // 5  # (a 20 ms sleep never ends early)
    assert row["latency_s_median"] == pytest.approx(float(np.median(samples)))
    if row["validity"] == "valid":  # ...and a valid median here is the fast call's time (a
        # 2 ms sleep, plus the scheduler's wake-up: tens of us quiet, more under load)
        assert 0.0019 <= row["latency_s_median"] <= 0.003, row["latency_s_median"]
    else:  # this shared machine was busy: the row says so
        assert row["validity"] == "noisy" and row["validity_reason"]


def test_a_burst_of_noise_is_measured_again_to_a_valid_row() -> None:
    """Calls alternate 2 ms / 20 ms for the first 1.05 s, then stay at 2 ms: the first
    measurement (capped at 1 s) lies inside the burst, its quartiles far apart (noisy); the one
    taken again lies after it, and the row keeps that one. Ground truth: a simulated step on a
    quiet machine; then the same on this CPU (calls alternate for 1.5 s of real time)."""
    with simulated() as simulate:
        row = simulate(lambda call, since: 0.020 if since < 1.05 and call % 2 else 0.002)
        # the first measurement alone (the burst never ends): noisy, by its quartiles
        first = simulate(lambda call, since: 0.020 if call % 2 else 0.002)
    assert row["status"] == "ok", row.get("error")
    assert row["remeasured"] == 1
    assert row["validity"] == "valid", row["validity_reason"]
    assert row["latency_s_median"] == pytest.approx(0.002, rel=1e-9)
    assert row["latency_s_iqr"] / row["latency_s_median"] <= IQR_REL_MAX
    assert first["remeasured"] == 1 and first["validity"] == "noisy"
    assert first["validity_reason"].startswith("IQR "), first["validity_reason"]

    row = run_case(Case(M + "burst_then_steady", (1, 2, 2)), QUICK).row
    assert row["status"] == "ok", row.get("error")
    assert row["remeasured"] == 1
    if row["validity"] == "valid":  # what a quiet machine gives
        assert 0.0019 <= row["latency_s_median"] <= 0.003, row["latency_s_median"]
        assert row["latency_s_iqr"] / row["latency_s_median"] <= IQR_REL_MAX
    else:  # this shared machine was busy: still flagged, with the signal named
        assert row["validity"] == "noisy" and row["validity_reason"]


def _burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


@pytest.mark.slow
def test_a_cpu_burning_neighbour_gives_flagged_rows() -> None:
    """Two processes spinning on this 2-core machine while a case runs on two threads: the
    row is flagged noisy, naming a signal, and was measured again once."""
    burners = _burners(2)
    try:
        time.sleep(0.5)  # let them take the CPUs
        row = run_case(
            Case("lenet5", (1, 32, 32), threads=2),
            RunOptions(
                warmup_rounds=2,
                min_rounds=6,
                min_time_s=0.3,
                max_time_s=1.0,
                remeasure=1,
                remeasure_pause_s=0.1,
                power="off",
            ),
        ).row
    finally:
        for b in burners:
            b.kill()
            b.wait()
    assert row["status"] == "ok", row.get("error")
    assert row["validity"] == "noisy", row
    assert row["remeasured"] == 1
    assert any(
        signal in row["validity_reason"]
        for signal in ("CPU pressure", "involuntary", "IQR", "interval", "load")
    ), row["validity_reason"]
    # where the kernel has PSI (/proc/pressure/cpu), it saw the neighbours; elsewhere no value
    if _psi_readable():
        assert row["cpu_pressure"] is not None and row["cpu_pressure"] > 0.10, row["cpu_pressure"]
    else:
        assert row["cpu_pressure"] is None


def _psi_readable() -> bool:
    try:
        return Path("/proc/pressure/cpu").read_text().startswith("some ")
    except OSError:
        return False


def test_rows_record_the_rounds_stop_and_the_interval() -> None:
    row = run_case(Case("lenet5", (1, 32, 32)), QUICK).row
    assert row["status"] == "ok"
    assert row["stop_reason"] in ("target", "time_cap")
    lo, hi = row["latency_s_median_ci_low"], row["latency_s_median_ci_high"]
    assert lo <= row["latency_s_median"] <= hi
    assert (lo, hi) == median_ci(row["latency_s_samples"])
    assert row["ci_target"] == 0.01
    if row["stop_reason"] == "target":
        assert (hi - lo) / 2 <= 0.01 * row["latency_s_median"] * (1 + 1e-9)
    assert row["validity"] in ("valid", "noisy")
    for column in ("load_avg_1m_end", "involuntary_switches_per_s", "cpu_affinity"):
        assert row[column] is not None, column
