"""Windows (issue 21): a row's value and interval from several windows spread over time, the
verdict between windows, compare's hierarchical bootstrap, and the ground truth of a machine
with a hidden two-state speed (tests/hidden_state.py: we set the truth, the harness must find
it or say it could not).

Ground truth: formulas (the exact law of a resampled median), simulated windows whose
between-window spread we set (Kalibera & Jones' random-effects model: a window's offset, then
the samples' noise), and the hidden-state machine's known step times.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.core import windows as win
from harness.core.signals import verdict
from harness.run.options import preset
from tests.hidden_state import HiddenMachine, ScheduledMachine, SteadyMachine, run_sweep

QUICK = preset("quick", power="off")
# Step times in the fast state, from 0.5 ms (many rounds a window) to 0.4 s (one or two).
BASE = {
    f"sim_{i}": b
    for i, b in enumerate([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
}


def _rows(samples_by_window: list[list[float]]) -> dict:
    samples = [s for w in samples_by_window for s in w]
    ids = [i for i, w in enumerate(samples_by_window) for _ in w]
    windows = win.split(samples, ids)
    lo, hi = win.interval(windows)
    return {
        "status": "ok", "rounds": len(samples), "latency_s_samples": samples,
        "latency_s_window_ids": ids, "latency_s_median": windows.central(),
        "latency_s_median_ci_low": lo, "latency_s_median_ci_high": hi,
        "throughput_per_s": 1 / windows.central(),
        "latency_s_iqr": float(np.subtract(*np.percentile(samples, [75, 25]))),
    }  # fmt: skip


# --- the rule ------------------------------------------------------------------------------


def test_the_value_is_the_median_of_the_windows_that_agree_with_the_fastest() -> None:
    rng = np.random.default_rng(0)
    fast = [list(1.0 + rng.normal(0, 0.002, 20)) for _ in range(4)]
    slow = [list(1.7 + rng.normal(0, 0.002, 20))]
    windows = win.split(
        [s for w in fast + slow for s in w], [i for i in range(5) for _ in range(20)]
    )
    assert windows.agreeing().tolist() == [True, True, True, True, False]
    assert windows.central() == pytest.approx(np.median([np.median(w) for w in fast]))
    assert windows.spread() == pytest.approx(1.7, rel=0.01)
    assert [win.needed(n) for n in (3, 4, 5, 8, 10)] == [3, 4, 4, 7, 8]


def test_one_slow_window_in_five_is_left_out_and_named_two_make_the_row_noisy() -> None:
    rng = np.random.default_rng(1)

    def window(level: float) -> list[float]:
        return list(level * (1 + rng.normal(0, 0.003, 20)))

    one = _rows([window(1.0)] * 0 + [window(1.0) for _ in range(4)] + [window(1.7)])
    v = verdict(one)
    assert v.validity == "valid" and v.reason.startswith("1 of 5 window(s) up to 1.7")
    two = _rows([window(1.0) for _ in range(3)] + [window(1.7), window(1.7)])
    v = verdict(two)
    assert v.validity == "noisy" and "windows_disagree" in v.kinds()
    assert v.reason.startswith("windows disagree: 1.7")
    assert "3 of 5 within 5% of the fastest (needs 4)" in v.reason
    too_few = _rows([window(1.0), window(1.0)])
    assert "too_few_windows" in verdict(too_few).kinds()


def test_a_row_without_window_ids_is_one_window_as_before() -> None:
    """Files before schema version 4: no between-window signal, the samples' median."""
    row = {"status": "ok", "rounds": 50, "latency_s_median": 0.01, "throughput_per_s": 100.0,
           "latency_s_samples": [0.01] * 50, "latency_s_iqr": 0.0}  # fmt: skip
    assert verdict(row).validity == "valid" and verdict(row).reason is None


# --- the hierarchical bootstrap ------------------------------------------------------------


def test_central_draws_match_brute_force_two_level_resampling() -> None:
    """The exact per-window median draws, composed with resampled windows, have the law of
    resampling windows and then samples by brute force."""
    rng = np.random.default_rng(3)
    groups = [list(rng.lognormal(np.log(1 + 0.01 * k), 0.05, 15)) for k in range(5)]
    samples = [s for g in groups for s in g]
    ids = [i for i, g in enumerate(groups) for _ in g]
    windows = win.split(samples, ids)
    fast = win.central_draws(windows, 40_000, np.random.default_rng(1))
    g = np.asarray(groups)  # 5 windows x 15 samples
    picked = rng.integers(0, 5, (40_000, 5))  # windows with replacement, then samples
    medians = np.median(g[picked[:, :, None], rng.integers(0, 15, (40_000, 5, 15))], axis=2)
    keep = medians <= medians.min(axis=1, keepdims=True) * 1.05
    brute = np.nanmedian(np.where(keep, medians, np.nan), axis=1)
    grid = np.unique(np.concatenate([fast, brute]))
    cdf = lambda d: np.searchsorted(np.sort(d), grid, side="right") / len(d)  # noqa: E731
    assert np.max(np.abs(cdf(fast) - cdf(brute))) < 0.02


def test_the_interval_covers_between_window_variance_a_pooled_one_does_not() -> None:
    """Kalibera & Jones' two-level model: each window is offset from the truth (1.0) by
    N(0, 1%), each sample by N(0, 0.3%) around its window. Over 300 simulated rows the
    hierarchical interval covers the truth about as often as it claims; the order-statistics
    interval of the pooled samples (what a single long window reported) far less often."""
    rng = np.random.default_rng(7)
    hier = pooled = 0
    for seed in range(300):
        offsets = 1.0 + rng.normal(0, 0.01, 5)
        groups = [list(o * (1 + rng.normal(0, 0.003, 20))) for o in offsets]
        samples = [s for g in groups for s in g]
        ids = [i for i, g in enumerate(groups) for _ in g]
        lo, hi = win.interval(win.split(samples, ids), seed=seed, n_resamples=1000)
        hier += lo <= 1.0 <= hi
        from harness.core.stats import median_ci

        plo, phi = median_ci(samples)
        pooled += plo <= 1.0 <= phi
    assert hier / 300 >= 0.80  # a percentile bootstrap of 5 windows undercovers a little
    assert pooled / 300 <= 0.55
    assert hier > pooled + 60


# --- the hidden-state machine (issue 21, item 4) -------------------------------------------


@pytest.mark.parametrize(("fast_s", "slow_s"), [(0.6, 0.3), (2.0, 1.0), (3.0, 1.5)])
def test_valid_rows_of_the_hidden_machine_are_its_fast_state_across_ten_seeds(
    tmp_path, fast_s, slow_s
) -> None:
    """(a) Ten runs of the sweep with different seeds of the hidden process (spells with means
    of 0.15 to 3 s, a third of the time 1.7x slower): every row valid in a run is within 5% of
    the step's true (fast-state) time, so any two runs' valid rows agree within 5%; the
    others are flagged, each with its reason."""
    values: dict[str, list[float]] = {name: [] for name in BASE}
    valid = 0
    for seed in range(10):
        machine = HiddenMachine(seed=seed, fast_mean_s=fast_s, slow_mean_s=slow_s)
        rows = run_sweep(machine, BASE, QUICK, tmp_path, seed=seed)
        for row in rows:
            if row["validity"] == "valid":
                valid += 1
                values[row["model"]].append(row["latency_s_median"] / BASE[row["model"]])
            else:
                assert row["validity"] == "noisy" and row["validity_reason"], row
        assert len(machine.changes) >= 2  # the state changed during the run
    off = {m: v for m, vs in values.items() for v in vs if abs(v - 1) > 0.05}
    assert off == {}
    assert valid >= 25  # the harness is not simply calling everything noisy
    for vs in values.values():
        assert not vs or max(vs) / min(vs) <= 1.05


def test_a_case_whose_windows_straddle_a_state_change_is_flagged_with_the_reason(tmp_path):
    """(b) One case of 10 ms steps, five windows of 0.1 s (and their probes) back to back from
    t = 0.3 s (after opening): the machine turns 1.7x slower at 0.55 s, so the last windows
    are slow and fewer than four of five agree."""
    machine = ScheduledMachine([(0.55, 100.0)])
    rows = run_sweep(machine, {"sim_straddle": 0.01}, QUICK, tmp_path)
    (row,) = rows
    assert row["validity"] == "noisy", row
    assert row["validity_reason"].startswith("windows disagree: 1.7")
    assert row["latency_s_median"] == pytest.approx(0.01, rel=0.01)  # the agreeing ones' value
    assert row["window_spread"] == pytest.approx(1.7, rel=0.02)


def test_a_steady_machine_gives_valid_rows_at_the_true_times(tmp_path) -> None:
    """(c) One state: every row valid, within 1% of its step's time (the 0.3% jitter); steps
    up to 0.2 s (a 0.4 s step gets three rounds under the quick cap of 1.5 s: too few)."""
    base = {k: v for k, v in BASE.items() if v <= 0.2}
    rows = run_sweep(SteadyMachine(seed=0), base, QUICK, tmp_path)
    assert [r["validity"] for r in rows] == ["valid"] * len(base), [
        r["validity_reason"] for r in rows
    ]
    for row in rows:
        assert row["latency_s_median"] == pytest.approx(base[row["model"]], rel=0.01)
        assert row["windows"] >= QUICK.windows and row["windows_span_s"] > 0


def test_an_a_a_comparison_of_two_hidden_machine_runs_finds_no_change(tmp_path) -> None:
    """compare's bootstrap resamples windows, then samples: two runs of the same steps on the
    hidden machine (different seeds) give no faster/slower verdict and pass a 5% gate."""
    import pandas as pd

    from harness.compare import compare_runs

    for a, b in [(0, 1), (2, 3), (4, 5)]:
        runs = []
        for seed in (a, b):
            machine = HiddenMachine(seed=seed, fast_mean_s=2.0, slow_mean_s=1.0)
            rows = run_sweep(machine, BASE, QUICK, tmp_path, seed=seed)
            runs.append(pd.DataFrame([{**r, "run_id": f"r{seed}"} for r in rows]))
        result = compare_runs(runs[0], runs[1], metrics=["latency"])
        verdicts = set(result.cases["verdict"])
        assert verdicts <= {"same", "noisy"}, result.cases[["model", "ratio", "verdict"]]
        assert result.failures({"latency_s_median": 0.05}).empty
