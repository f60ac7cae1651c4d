"""harness.measure.timing: statistics against hand-computed and numpy values, the timing protocol
(first call apart, warm-up uncounted, calibrated rounds, the rounds runner), threads, devices."""

from __future__ import annotations

import contextlib
import functools
import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from harness.core.errors import InvalidInputError
from harness.core.schema import column_names
from harness.measure import timing
from harness.measure.timing import (
    TimingResult,
    cuda_sync_fn,
    cudnn_benchmark_state,
    fixed_threads,
    measure_latency,
    plan_rounds,
    run_rounds,
    summarize,
    timing_method,
)

# sleeps timed to a few percent: the CPU must be this test's alone (make test: the serial phase)
pytestmark = pytest.mark.serial

HAS_CUDA = torch.cuda.is_available()


# --- statistics ------------------------------------------------------------------------------


def test_summarize_hand_computed_values() -> None:
    # [1, 2, 3, 4, 10]: median 3, mean 4, s^2 = (9+4+1+0+36)/4 = 12.5; linear percentiles at
    # rank q*(n-1): p25 -> 2, p75 -> 4, p90 -> 4 + 0.6*6 = 7.6, p99 -> 4 + 0.96*6 = 9.76
    s = summarize([1.0, 2.0, 3.0, 4.0, 10.0])
    assert s["latency_s_median"] == 3.0
    assert s["latency_s_mean"] == 4.0
    assert s["latency_s_stddev"] == pytest.approx(math.sqrt(12.5))
    assert (s["latency_s_min"], s["latency_s_max"]) == (1.0, 10.0)
    assert s["latency_s_iqr"] == pytest.approx(2.0)
    assert s["latency_s_p90"] == pytest.approx(7.6)
    assert s["latency_s_p99"] == pytest.approx(9.76)
    assert s["rounds"] == 5
    assert s["p99_reliable"] is False
    assert s["percentile_method"] == "linear"


def test_summarize_matches_numpy_on_skewed_samples() -> None:
    a = np.random.default_rng(7).lognormal(mean=-7.0, sigma=0.5, size=1234)
    s = summarize(a.tolist())
    assert s["latency_s_median"] == pytest.approx(np.median(a), rel=1e-12)
    assert s["latency_s_mean"] == pytest.approx(np.mean(a), rel=1e-12)
    assert s["latency_s_stddev"] == pytest.approx(np.std(a, ddof=1), rel=1e-12)
    assert s["latency_s_min"] == a.min()
    assert s["latency_s_max"] == a.max()
    q25, q75, q90, q99 = (np.percentile(a, q, method="linear") for q in (25, 75, 90, 99))
    assert s["latency_s_iqr"] == pytest.approx(q75 - q25, rel=1e-12)
    assert s["latency_s_p90"] == pytest.approx(q90, rel=1e-12)
    assert s["latency_s_p99"] == pytest.approx(q99, rel=1e-12)
    assert s["p99_reliable"] is True
    assert s["rounds"] == 1234


def test_summarize_one_sample() -> None:
    s = summarize([0.25])
    for k in ("median", "mean", "min", "max", "p90", "p99"):
        assert s[f"latency_s_{k}"] == 0.25
    assert s["latency_s_iqr"] == 0.0
    assert s["latency_s_stddev"] is None  # undefined for one sample: null, not 0
    assert s["p99_reliable"] is False


def test_p99_flag_threshold_is_100_samples() -> None:
    assert summarize([1.0] * 99)["p99_reliable"] is False
    assert summarize([1.0] * 100)["p99_reliable"] is True


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -0.5], [float("inf")]])
def test_summarize_rejects_bad_samples(bad: list[float]) -> None:
    with pytest.raises(InvalidInputError):
        summarize(bad)


def test_statistic_keys_are_schema_columns() -> None:
    res = TimingResult(np.array([0.1, 0.2]), 0.5, 3, "perf_counter", 2)
    cols = res.to_columns()
    assert set(cols) <= set(column_names("cases"))
    assert cols["latency_s_samples"] == [0.1, 0.2]
    assert cols["latency_s_first"] == 0.5
    assert cols["warmup_rounds"] == 3
    assert cols["timing_method"] == "perf_counter"
    assert cols["rounds"] == 2


# --- the protocol ----------------------------------------------------------------------------


def test_sleep_step_measured_within_a_few_percent() -> None:
    sleep_s = 0.02
    res = measure_latency(
        functools.partial(time.sleep, sleep_s),
        device="cpu",
        warmup_rounds=1,
        min_rounds=10,
        min_time_s=0.0,
    )
    median = float(np.median(res.samples_s))
    # sleep never returns early; it overshoots by scheduler wake-up latency (tens of us to ~1 ms)
    assert 0.98 * sleep_s <= median <= 1.08 * sleep_s
    assert res.samples_s.min() >= sleep_s


class SleepyNet(nn.Module):
    """A 'model' whose forward takes a known time."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.fc(x)


def test_model_whose_forward_sleeps_is_measured_within_a_few_percent() -> None:
    model = SleepyNet(0.015).eval()
    x = torch.randn(1, 4)
    with torch.inference_mode():
        res = measure_latency(
            functools.partial(model, x),
            device="cpu",
            warmup_rounds=1,
            min_rounds=8,
            min_time_s=0.0,
        )
    assert 0.98 * 0.015 <= float(np.median(res.samples_s)) <= 1.08 * 0.015


class CountingStep:
    def __init__(self, first_s: float = 0.0, then_s: float = 0.0) -> None:
        self.calls = 0
        self.first_s, self.then_s = first_s, then_s

    def __call__(self) -> None:
        self.calls += 1
        delay = self.first_s if self.calls == 1 else self.then_s
        if delay:
            time.sleep(delay)


def test_warmup_is_not_counted() -> None:
    step = CountingStep()
    res = measure_latency(step, device="cpu", warmup_rounds=4, min_rounds=7, min_time_s=0.0)
    assert len(res.samples_s) == 7
    assert res.warmup_rounds == 4
    assert step.calls == 1 + 4 + 7


def test_warmup_time_extends_warmup() -> None:
    step = CountingStep(then_s=0.01)
    res = measure_latency(
        step, device="cpu", warmup_rounds=1, warmup_time_s=0.1, min_rounds=2, min_time_s=0.0
    )
    # at least 0.1 s of 10+ ms calls: between 5 (loaded machine) and 11 calls
    assert 5 <= res.warmup_rounds <= 11
    assert step.calls == 1 + res.warmup_rounds + 2


def test_first_call_kept_apart() -> None:
    step = CountingStep(first_s=0.1, then_s=0.002)
    res = measure_latency(step, device="cpu", warmup_rounds=2, min_rounds=5, min_time_s=0.0)
    assert res.first_call_s >= 0.1
    assert float(np.median(res.samples_s)) < 0.05
    assert res.to_columns()["latency_s_first"] == res.first_call_s


def test_min_rounds_respected_for_a_fast_step() -> None:
    res = measure_latency(lambda: None, device="cpu", min_rounds=50, min_time_s=0.0)
    assert len(res.samples_s) == 50 == res.calibrated_rounds


def test_min_time_respected() -> None:
    step = CountingStep(then_s=0.01)
    res = measure_latency(step, device="cpu", warmup_rounds=2, min_rounds=1, min_time_s=0.15)
    # the estimate is the fastest warm-up call, >= 0.01 s (sleep never returns early) and
    # ~0.0101 s: ceil(0.15 / est) = 15 rounds (fewer only if every warm-up call was slow)
    assert 10 <= len(res.samples_s) <= 15
    # every round lasts >= 0.01 s and rounds >= 0.15 / est: the total reaches 0.15 * 0.01 / est
    assert res.samples_s.sum() >= 0.95 * 0.15


def test_plan_rounds_arithmetic() -> None:
    kw = {"max_rounds": None, "max_time_s": None}
    assert plan_rounds(0.01, min_rounds=5, min_time_s=0.5, **kw) == 50
    assert plan_rounds(1.0, min_rounds=5, min_time_s=0.5, **kw) == 5
    assert plan_rounds(0.01, min_rounds=5, min_time_s=0.5, max_rounds=20, max_time_s=None) == 20
    assert plan_rounds(0.01, min_rounds=5, min_time_s=0.5, max_rounds=None, max_time_s=0.1) == 10
    # a time cap may cut below min_rounds (slow cases) but never below one round
    assert plan_rounds(1.0, min_rounds=5, min_time_s=0.0, max_rounds=None, max_time_s=2.5) == 2
    assert plan_rounds(1.0, min_rounds=5, min_time_s=0.0, max_rounds=None, max_time_s=0.1) == 1


class FakeClock:
    """``time.perf_counter`` replaced: each call of the step advances it by the next scripted
    duration, so the stopping rule is tested on known samples."""

    def __init__(self, durations: list[float]) -> None:
        self.now = 0.0
        self.durations = durations
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1


def _fake(monkeypatch: pytest.MonkeyPatch, durations: list[float]) -> FakeClock:
    clock = FakeClock(durations)
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    return clock


def test_window_wraps_exactly_the_timed_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    clock = _fake(monkeypatch, [0.01])

    def step() -> None:
        clock.step()
        events.append("step")

    @contextlib.contextmanager
    def window():
        events.append("open")
        yield
        events.append("close")

    res = measure_latency(step, device="cpu", warmup_rounds=2, min_rounds=6, min_time_s=0.0,
                          window=window)  # fmt: skip
    assert events == ["step"] * 3 + ["open"] + ["step"] * 6 + ["close"]
    assert res.samples_s.tolist() == pytest.approx([0.01] * 6)


def test_stable_steps_stop_on_the_target_at_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _fake(monkeypatch, [0.010, 0.01005, 0.00995])
    res = measure_latency(
        clock.step, device="cpu", warmup_rounds=0, min_rounds=6, min_time_s=0.0, ci_target=0.01
    )
    assert res.stop_reason == "target"
    assert len(res.samples_s) == 6  # the 95% interval [x(1), x(6)] is within 1% at once
    cols = res.to_columns()
    assert cols["latency_s_median_ci_low"] == pytest.approx(0.00995)
    assert cols["latency_s_median_ci_high"] == pytest.approx(0.01005)
    assert cols["ci_target"] == 0.01


def test_noisy_steps_go_on_until_the_time_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # every other step twice as long: the median's interval never narrows to 1%
    clock = _fake(monkeypatch, [0.01, 0.02])
    res = measure_latency(
        clock.step, device="cpu", warmup_rounds=0, min_rounds=6, min_time_s=0.0,
        max_time_s=1.0, ci_target=0.01,
    )  # fmt: skip
    assert res.stop_reason == "time_cap"
    assert sum(res.samples_s) <= 1.0 + 0.02  # one batch never passes the cap by a step
    assert len(res.samples_s) > 6


def test_noise_that_settles_reaches_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    # 10 wild rounds, then steady ones: more rounds narrow the interval to the target
    durations = [0.01, 0.03] * 5 + [0.02] * 400
    clock = _fake(monkeypatch, durations)
    res = measure_latency(
        clock.step, device="cpu", warmup_rounds=0, min_rounds=6, min_time_s=0.0,
        max_time_s=30.0, ci_target=0.01,
    )  # fmt: skip
    assert res.stop_reason == "target"
    assert 10 < len(res.samples_s) < 400
    lo, hi = timing.median_interval(res.samples_s)
    assert (hi - lo) / 2 <= 0.01 * float(np.median(res.samples_s))


def test_without_a_target_the_minimum_is_all(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _fake(monkeypatch, [0.01, 0.02])
    res = measure_latency(clock.step, device="cpu", warmup_rounds=0, min_rounds=7, min_time_s=0)
    assert (res.stop_reason, len(res.samples_s)) == ("min_rounds", 7)
    res = measure_latency(
        clock.step, device="cpu", warmup_rounds=0, min_rounds=7, min_time_s=0.0,
        max_rounds=9, ci_target=0.01,
    )  # fmt: skip
    assert (res.stop_reason, len(res.samples_s)) == ("max_rounds", 9)


def test_a_cap_below_the_minimum_says_time_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _fake(monkeypatch, [0.5])
    res = measure_latency(
        clock.step, device="cpu", warmup_rounds=1, min_rounds=10, min_time_s=0.0, max_time_s=2.0
    )
    assert (res.stop_reason, len(res.samples_s)) == ("time_cap", 4)


def test_run_rounds_times_each_call() -> None:
    out = run_rounds(functools.partial(time.sleep, 0.003), 4)
    assert len(out) == 4
    assert all(0.003 <= d < 0.1 for d in out)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warmup_rounds": -1},
        {"min_rounds": 0},
        {"min_time_s": -0.1},
        {"max_rounds": 3, "min_rounds": 5},
        {"max_time_s": 0},
        {"min_rounds": True},
        {"warmup_time_s": float("nan")},
    ],
)
def test_bad_settings_raise_typed_errors(kwargs: dict[str, object]) -> None:
    step = CountingStep()
    with pytest.raises(InvalidInputError):
        measure_latency(step, device="cpu", **kwargs)
    assert step.calls == 0


def test_step_must_be_callable() -> None:
    with pytest.raises(InvalidInputError, match="callable"):
        measure_latency(42, device="cpu")  # type: ignore[arg-type]


# --- threads ---------------------------------------------------------------------------------


def test_fixed_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with fixed_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), fixed_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_fixed_threads_none_leaves_the_count() -> None:
    before = torch.get_num_threads()
    with fixed_threads(None) as n:
        assert n == before == torch.get_num_threads()


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_fixed_threads_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(InvalidInputError), fixed_threads(bad):  # type: ignore[arg-type]
        pass


# --- devices ---------------------------------------------------------------------------------


def test_cpu_sync_is_a_noop_and_the_method_is_plain_perf_counter() -> None:
    sync = cuda_sync_fn("cpu")
    assert sync() is None
    assert cuda_sync_fn(torch.device("cpu")) is sync
    assert timing_method("cpu") == "perf_counter"
    assert timing_method("cuda:1") == "perf_counter+cuda.synchronize"


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised where CUDA is missing")
def test_cuda_without_cuda_is_a_typed_error_before_any_call() -> None:
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        cuda_sync_fn("cuda")
    step = CountingStep()
    with pytest.raises(InvalidInputError):
        measure_latency(step, device="cuda:0")
    assert step.calls == 0
    assert cudnn_benchmark_state() is None


@pytest.mark.parametrize("bad", ["gpu0", "cuda:x", 3.5])
def test_bad_device_strings(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        cuda_sync_fn(bad)  # type: ignore[arg-type]


def test_unsupported_device_type() -> None:
    with pytest.raises(InvalidInputError, match="not supported"):
        cuda_sync_fn("meta")


def test_cuda_protocol_synchronises_around_every_timed_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CUDA branch on a CPU-only machine: torch.cuda's calls replaced by recorders."""
    events: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    monkeypatch.setattr(timing, "cudnn_benchmark_state", lambda: True)

    def step() -> None:
        events.append("step")

    @contextlib.contextmanager
    def window():
        events.append("window")
        yield

    res = measure_latency(
        step, device="cuda:0", warmup_rounds=2, min_rounds=3, min_time_s=0.0, window=window
    )
    first = ["sync", "step", "sync"]
    warm = ["step", "sync"] * 2
    rounds = ["window", "sync"] + ["step", "sync"] * 3
    assert events == first + warm + rounds
    assert res.method == "perf_counter+cuda.synchronize"
    assert res.cudnn_benchmark is True
    assert res.to_columns()["cudnn_benchmark"] is True
