"""The GPU around a case (harness.measure.gpu_watch) through the real nvidia-ml-py on the
stand-in NVML, with its clock set by hand: other processes (issue 22 item 4) and the noise of
the timed window from NVML's clock-event time counters and the driver's SM clock samples, not
two point reads (item 6). Expected values are the scripted timelines' own arithmetic."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.core.signals import RULE, verdict
from harness.measure.gpu_watch import foreign, own_pids
from tests.nvml_stub import scenarios
from tests.nvml_stub.fixtures import spawn_pool, stub_dir, stub_lib

__all__ = ["stub_dir", "stub_lib"]
BASE = {"clock": "manual", "dev0.max_sm_clock": 1980, "dev0.sm_clock": 1980}
S = 1_000_000  # us


@pytest.fixture(scope="module")
def worker() -> Iterator[ProcessPoolExecutor]:
    with spawn_pool() as pool:
        yield pool


@pytest.fixture
def watch(worker: ProcessPoolExecutor, stub_lib: str, tmp_path: Path):
    counter = iter(range(1000))

    def _run(config: dict[str, object], start_s: float = 0.5, end_s: float = 2.5,
             holds: bool = True) -> dict[str, Any]:  # fmt: skip
        path = tmp_path / f"stub{next(counter)}.conf"
        path.write_text("".join(f"{k}={v}\n" for k, v in {**BASE, **config}.items()))
        args = (stub_lib, str(path), int(start_s * S), int(end_s * S), holds)
        return worker.submit(scenarios.gpu_watch, *args).result(timeout=120)

    return _run


def _row(**columns: Any) -> dict[str, Any]:
    samples = [0.010] * 20
    return {"status": "ok", "rounds": 20, "latency_s_median": 0.010, "throughput_per_s": 100.0,
            "latency_s_samples": samples, "latency_s_iqr": 0.0, "gpu_watch_source": "NVML",
            **columns}  # fmt: skip


# -- clock-event time over the window ----------------------------------------------------------


def test_a_half_second_of_hardware_thermal_slowdown_in_two_seconds_is_a_quarter(watch) -> None:
    # hw thermal slowdown (0x40) from 1.0 s to 1.5 s; the window runs from 0.5 s to 2.5 s
    out = watch({"dev0.reasons": "0:0,1.0:0x40,1.5:0"})
    assert out["gpu_thermal_share"] == pytest.approx(0.5 / 2.0)
    assert out["gpu_power_capped_share"] == 0 and out["gpu_power_brake_share"] == 0
    v = verdict(_row(**out))
    assert v.kinds() == {"gpu_thermal"} and "thermal slowdown 25.0% of the window" in v.reason


def test_a_slowdown_that_ended_before_the_window_does_not_count(watch) -> None:
    # the old rule read the reasons at the end; the counter sees exactly the window
    out = watch({"dev0.reasons": "0:0x80,0.4:0"})
    assert out["gpu_power_brake_share"] == 0


def test_the_power_cap_alone_is_recorded_but_is_not_noise(watch) -> None:
    out = watch({"dev0.reasons": "0:0x4"})  # capped all along: the GPU's normal speed under load
    assert out["gpu_power_capped_share"] == pytest.approx(1.0)
    assert verdict(_row(**out)).validity == "valid"


# -- the SM clock from the driver's samples ----------------------------------------------------


def test_a_clock_dip_between_two_point_reads_is_seen_in_the_samples(watch) -> None:
    # 1980 MHz at both ends, 1200 MHz from 1.0 s to 1.2 s: 10 of the 100 samples (every 20 ms
    # after 0.5 s up to 2.5 s) are below 75% of 1980 = 1485 MHz
    out = watch({"dev0.sm_clock": "0:1980,1.0:1200,1.2:1980", "clock_sample_us": 20000})
    assert (out["sm_clock_mhz_min"], out["sm_clock_mhz_median"]) == (1200, 1980)
    assert out["sm_clock_low_share"] == pytest.approx(10 / 100)
    start_end = {"sm_clock_mhz_start": 1980, "sm_clock_mhz_end": 1980}
    v = verdict(_row(**out, **start_end))
    assert v.kinds() == {"sm_clock_low"} and "down to 1200 MHz" in v.reason


def test_a_swing_at_the_window_end_alone_is_not_noise_when_the_samples_say_otherwise(watch) -> None:
    # at the power cap the clock swings: one low read at the end made rows noisy before
    out = watch({"dev0.sm_clock": "0:1980,2.48:1300", "clock_sample_us": 20000})
    assert out["sm_clock_low_share"] == pytest.approx(2 / 100)  # 2.48 and 2.50
    old_rule = {"sm_clock_mhz_start": 1980, "sm_clock_mhz_end": 1300}
    assert verdict(_row(**old_rule)).kinds() == {"sm_clock_drop"}  # a row without samples
    assert verdict(_row(**out, **old_rule)).validity == "valid"


# -- other processes ---------------------------------------------------------------------------


def test_another_process_on_the_gpu_makes_the_row_noisy_with_its_count_and_memory(watch) -> None:
    out = watch({"dev0.procs": f"self:{1 << 30},4242:{3 << 30}"})
    assert (out["gpu_foreign_processes"], out["gpu_foreign_memory_bytes"]) == (1, 3 << 30)
    v = verdict(_row(**out))
    assert v.kinds() == {"foreign_process"}
    assert "1 other process(es) on the GPU, holding 3.0 GiB" in v.reason


def test_a_process_that_arrives_during_the_case_is_seen_after_it(watch) -> None:
    out = watch({"dev0.procs": f"self:{1 << 30},4242:{1 << 20}:1.0"})
    assert out["gpu_foreign_processes"] == 1


def test_this_process_alone_is_not_foreign(watch) -> None:
    out = watch({"dev0.procs": f"self:{1 << 30}"})
    assert (out["gpu_foreign_processes"], out["gpu_foreign_memory_bytes"]) == (0, 0)
    assert verdict(_row(**out)).validity == "valid"


def test_pids_of_another_namespace_count_one_context_as_ours_and_say_so(watch) -> None:
    out = watch({"dev0.procs": "777:100,888:200"})
    assert out["gpu_foreign_processes"] == 1 and out["gpu_foreign_memory_bytes"] is None
    assert "another PID namespace" in out["gpu_watch_source"]


def test_no_process_listed_while_we_hold_a_context_is_unknown_not_zero(watch) -> None:
    out = watch({})
    assert out["gpu_foreign_processes"] is None
    assert "process lists are not visible here" in out["gpu_watch_source"]
    assert watch({}, holds=False)["gpu_foreign_processes"] == 0  # no context yet: none is right


def test_a_driver_without_the_counters_leaves_them_null_and_says_why(watch) -> None:
    out = watch({"ret.violation": 3})  # NOT_SUPPORTED
    assert out["gpu_thermal_share"] is None and out["gpu_power_capped_share"] is None
    assert "clock-event counters: " in out["gpu_watch_source"]


def test_foreign_counts_pure() -> None:
    assert foreign({10: 5, 11: None}, {10}, True) == (1, None, None)
    assert own_pids() >= {__import__("os").getpid()}
    assert "another process on the GPU" in RULE
