"""RAPL package energy against a powercap tree the test builds, laid out as Linux does it
(/sys/class/powercap/intel-rapl:N with name, energy_uj, max_energy_range_uj; sub-zones
intel-rapl:N:M beside them; psys as a top-level zone that is not a package)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.measure.power import rapl
from harness.measure.power.meters import NullPowerMonitor, RaplPowerMonitor, make_power_monitor

# counters written and read in real time by another process: no neighbour test on the CPU
# (make test: the serial phase)
pytestmark = pytest.mark.serial

MAX_UJ = 262_143_328_850  # max_energy_range_uj of a real Intel package zone


class FakeClock:
    def __init__(self, t: float = 10.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{label}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    set_energy(zone, energy_uj)
    return zone


def set_energy(zone: Path, energy_uj: int) -> None:
    tmp = zone / "energy_uj.tmp"
    tmp.write_text(f"{energy_uj}\n")
    os.replace(tmp, zone / "energy_uj")  # the sampler never sees a half-written file


@pytest.fixture
def powercap(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "powercap"
    pkg1 = _zone(root, "intel-rapl:1", "package-1", 1_000_000)
    pkg0 = _zone(root, "intel-rapl:0", "package-0", MAX_UJ - 1_000)
    _zone(root, "intel-rapl:0:0", "core", 5)
    _zone(root, "intel-rapl:0:1", "dram", 5)
    _zone(root, "intel-rapl:2", "psys", 5)
    (root / "intel-rapl").mkdir()  # the control type directory, not a zone
    return root, pkg0, pkg1


def _monitor(root: Path, clock: FakeClock) -> RaplPowerMonitor:
    # 1 Hz: the thread does not poll during these sub-second tests; the explicit sample()
    # calls are the polls (had it polled, the energy would be the same: see the wrap test)
    monitor = make_power_monitor("cpu", powercap_root=root, clock=clock, sample_hz=1.0)
    assert isinstance(monitor, RaplPowerMonitor)
    return monitor


def test_only_package_zones_count_in_package_order(powercap) -> None:
    root, pkg0, pkg1 = powercap
    zones = rapl.find_package_zones(root)
    assert [z.name for z in zones] == ["package-0", "package-1"]
    assert [z.energy_path for z in zones] == [pkg0 / "energy_uj", pkg1 / "energy_uj"]
    assert zones[0].max_energy_range_uj == MAX_UJ


def test_energy_is_summed_over_packages_across_a_wraparound(powercap) -> None:
    root, pkg0, pkg1 = powercap
    clock = FakeClock(10.0)
    monitor = _monitor(root, clock)
    assert monitor.source == "rapl:package_counter(2 packages)" and monitor.min_window_s == 1.0
    monitor.start()
    set_energy(pkg0, 4_000)  # wrapped: 1000 uJ up to the top, then 4000 uJ from 0
    set_energy(pkg1, 3_000_000)  # 2 J
    clock.t = 12.0
    reading = monitor.stop()
    expected_uj = 1_000 + 4_000 + 2_000_000
    assert reading.energy_j == pytest.approx(expected_uj / 1e6, rel=1e-12)
    assert reading.window_s == 2.0
    assert reading.power_w_mean == pytest.approx(expected_uj / 1e6 / 2.0, rel=1e-12)
    cols = reading.to_columns(401)
    assert cols["energy_j_per_sample"] == pytest.approx(expected_uj / 1e6 / 401, rel=1e-12)
    assert cols["power_reason"] is None
    assert cols["energy_scope"] == "package"  # the packages' counters, not the machine


def test_several_wraparounds_are_counted_when_each_is_seen(powercap) -> None:
    root, pkg0, _ = powercap
    clock = FakeClock(0.0)
    monitor = _monitor(root, clock)
    monitor.start()  # package-0 at MAX - 1000
    for t, value in [(0.5, 4_000), (1.0, MAX_UJ - 500), (1.5, 2_000)]:
        set_energy(pkg0, value)
        clock.t = t
        monitor.sample()
    clock.t = 2.0
    reading = monitor.stop()
    # 1000 + 4000 (wrap), then MAX - 4500, then 500 + 2000 (wrap): one full range and 3000 uJ
    assert reading.energy_j == pytest.approx((MAX_UJ + 3_000) / 1e6, rel=1e-12)


def test_the_trace_is_power_between_polls(powercap) -> None:
    root, pkg0, pkg1 = powercap
    clock = FakeClock(10.0)
    monitor = _monitor(root, clock)
    monitor.start()
    set_energy(pkg1, 3_000_000)  # +2 J in 0.5 s
    clock.t = 10.5
    monitor.sample()
    clock.t = 11.0
    monitor.sample()  # no counter moved: the interval stays open, no 0 W reading
    set_energy(pkg0, MAX_UJ)  # +1000 uJ over the 1.0 s since 10.5
    clock.t = 11.5
    reading = monitor.stop()
    assert reading.trace == [(0.5, pytest.approx(4.0)), (1.5, pytest.approx(0.001))]
    assert reading.power_w_max == pytest.approx(4.0)


def test_counters_that_did_not_move_or_a_short_window_give_no_energy(powercap) -> None:
    root, pkg0, _ = powercap
    clock = FakeClock(10.0)
    monitor = _monitor(root, clock)
    monitor.start()
    clock.t = 12.0
    reading = monitor.stop()
    assert reading.energy_j is None and "did not move" in reading.reason
    monitor.start()
    set_energy(pkg0, 50_000)
    clock.t = 12.5
    reading = monitor.stop()
    assert reading.energy_j is None and "0.500 s is shorter than the 1 s minimum" in reading.reason
    # the mean power is still known: 1000 uJ to the top, then 50000 uJ after the wrap, in 0.5 s
    assert reading.power_w_mean == pytest.approx(0.051 / 0.5, rel=1e-12)


def test_no_powercap_or_no_package_is_a_reason(tmp_path: Path) -> None:
    monitor = make_power_monitor("cpu", powercap_root=tmp_path / "absent")
    assert isinstance(monitor, NullPowerMonitor)
    assert monitor.source.startswith("unavailable: no powercap interface at")
    _zone(tmp_path / "pc", "intel-rapl:0", "psys", 1)
    monitor = make_power_monitor("cpu", powercap_root=tmp_path / "pc")
    assert "no RAPL package zone" in monitor.source


def test_a_root_only_counter_is_a_reason_that_says_the_fix(powercap, monkeypatch) -> None:
    root, pkg0, _ = powercap
    energy = pkg0 / "energy_uj"
    energy.chmod(0o200)
    if os.access(energy, os.R_OK):  # running as root: permissions do not stop reads
        real = Path.read_text

        def read_text(self: Path, *args: object, **kwargs: object) -> str:
            if self == energy:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", read_text)
    monitor = make_power_monitor("cpu", powercap_root=root)
    assert isinstance(monitor, NullPowerMonitor)
    assert "readable by root only" in monitor.source and "CVE-2020-8694" in monitor.source


def test_this_machine_as_it_is() -> None:
    monitor = make_power_monitor("cpu")
    root = rapl.POWERCAP_ROOT
    if not root.is_dir():
        assert monitor.source == (
            f"unavailable: no powercap interface at {root} (no RAPL on this machine); "
            "CPU power is not measured (pass --cnn-power=off to silence this)"
        )
        assert monitor.min_window_s == 0.0
        return
    # a machine with powercap: what its files say, by the kernel's layout (intel-rapl:N zones
    # named package-N; energy_uj readable by root only since Linux 5.10)
    packages = []
    for zone in sorted(root.iterdir()):
        if re.fullmatch(r"intel-rapl:\d+", zone.name):
            try:
                if (zone / "name").read_text().startswith("package"):
                    packages.append(zone)
            except OSError:
                continue
    if not packages:
        assert isinstance(monitor, NullPowerMonitor)
        assert "no RAPL package zone" in monitor.source, monitor.source
    elif not all(os.access(z / "energy_uj", os.R_OK) for z in packages):
        assert isinstance(monitor, NullPowerMonitor)
        assert "readable by root only" in monitor.source, monitor.source
    else:
        assert isinstance(monitor, RaplPowerMonitor), monitor.source
        n = len(packages)
        assert monitor.source == f"rapl:package_counter({n} package{'s' if n > 1 else ''})"
        assert monitor.min_window_s == 1.0


_WRITER = """
import os, sys, time
path, watts, start, top = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0, parent = time.perf_counter(), os.getppid()
while os.getppid() == parent:  # a test process killed outright leaves no writer spinning
    value = int(start + watts * 1e6 * (time.perf_counter() - t0)) % (top + 1)
    with open(path + ".tmp", "w") as f:
        f.write(f"{value}\\n")
    os.replace(path + ".tmp", path)
    time.sleep(0.002)
"""


class CounterWriter:
    """A separate process keeps a package counter at ``watts * elapsed`` (in uJ, wrapping like
    RAPL), so the energy of any window is known by the formula E = P * t. A process, not a
    thread: the measured process's GIL and garbage collector cannot hold the counter back."""

    def __init__(self, zone: Path, watts: float, start_uj: int) -> None:
        self.energy = zone / "energy_uj"
        self.args = [sys.executable, "-c", _WRITER, str(self.energy), str(watts), str(start_uj)]
        self.args.append(str(MAX_UJ))

    def __enter__(self) -> CounterWriter:
        before = self.energy.read_text()
        self.proc = subprocess.Popen(self.args)
        deadline = time.perf_counter() + 30
        while self.energy.read_text() == before:  # wait until the writer runs
            if time.perf_counter() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the counter writer did not start")
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def test_a_monitor_around_a_timed_loop_in_real_time(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", "package-0", MAX_UJ - 20_000_000)  # wraps after 0.5 s
    monitor = make_power_monitor("cpu", powercap_root=root)  # 100 Hz, a real thread
    with CounterWriter(zone, watts=40.0, start_uj=MAX_UJ - 20_000_000):
        monitor.start()
        rounds = 0
        deadline = time.perf_counter() + 1.2
        while time.perf_counter() < deadline:  # the "timed rounds": busy Python work
            sum(i * i for i in range(2000))
            rounds += 1
        reading = monitor.stop()
    # the counter file is rewritten every few ms: the energy is 40 W * window, give or take
    # one rewrite interval at each end (generous: the machine is shared)
    assert reading.energy_j == pytest.approx(40.0 * reading.window_s, abs=40.0 * 0.05)
    assert reading.power_w_mean == pytest.approx(40.0, abs=2.0)
    assert len(reading.trace) >= 10
    cols = reading.to_columns(rounds)
    assert cols["energy_j_per_sample"] == pytest.approx(reading.energy_j / rounds)


def test_the_runner_row_carries_the_energy_of_the_rounds(tmp_path, monkeypatch) -> None:
    from harness.core.spec import Case
    from harness.run.runner import RunOptions, run_case

    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", "package-0", 0)
    monkeypatch.setenv(rapl.ROOT_ENV, str(root))
    # 1.5 s of rounds of a model that sleeps 10 ms a call: the rounds last what they were
    # planned to, loaded machine or not (a conv's fastest warm-up call on a loaded machine was
    # 20x its rounds' time: a 0.08 s window). No interval target and no re-measure: when the
    # rounds stop is not what this is about (with them a case ran for a minute here).
    options = RunOptions(
        warmup_rounds=1, warmup_time_s=0.0, min_rounds=3, min_time_s=1.5, max_time_s=2.0,
        ci_target=None, remeasure=0,
    )  # fmt: skip
    case = Case("tests.models_for_tests:sleeper_10ms", (1, 2, 2), batch_size=2)
    with CounterWriter(zone, watts=25.0, start_uj=0):
        result = run_case(case, options)
    row = result.row
    assert row["status"] == "ok", row.get("error")
    assert row["power_source"] == "rapl:package_counter(1 package)"
    assert row["energy_window_s"] >= 1.0, row["energy_window_s"]
    # the writer process rewrites the counter every few ms, but on a loaded 2-core machine
    # it can be starved for tens of ms at either end of a ~1.5 s window
    assert row["power_w_mean"] == pytest.approx(25.0, rel=0.15)
    samples = row["energy_rounds"] * 2  # the energy window's own rounds (not the timed ones)
    assert row["energy_j_per_sample"] == pytest.approx(row["energy_j_total"] / samples)
    assert row["power_reason"] is None
    assert list(result.power.columns) == ["t_s", "power_w"]


def test_rounds_that_end_before_the_energy_window_are_flagged_never_0_j(
    tmp_path, monkeypatch
) -> None:
    """The runner plans the rounds to last 1.2x the monitor's 1 s window from the fastest
    warm-up call; a step that runs 20x faster once the warm-up is over (20 ms, then 1 ms:
    tests/models_for_tests.py) ends its 60 planned rounds in about 0.1 s: no energy, a
    reason, never 0 J."""
    from harness.core.spec import Case
    from harness.run.runner import RunOptions, run_case

    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", "package-0", 0)
    monkeypatch.setenv(rapl.ROOT_ENV, str(root))
    options = RunOptions(
        warmup_rounds=1, warmup_time_s=0.0, min_rounds=3, min_time_s=0.01, max_time_s=0.3,
        ci_target=None, remeasure=0,
    )  # fmt: skip
    case = Case("tests.models_for_tests:fast_after_warmup", (1, 2, 2))
    with CounterWriter(zone, watts=25.0, start_uj=0):
        result = run_case(case, options)
    row = result.row
    assert row["status"] == "ok", row.get("error")
    assert row["power_source"] == "rapl:package_counter(1 package)"
    assert 0 < row["energy_window_s"] < 1.0, row["energy_window_s"]
    assert row["energy_j_total"] is None and row["energy_j_per_sample"] is None
    assert "shorter than the 1 s minimum" in row["power_reason"], row["power_reason"]
    assert list(result.power.columns) == ["t_s", "power_w"]


def test_a_sampler_process_that_cannot_start_leaves_the_thread_in_charge(
    powercap, monkeypatch
) -> None:
    from harness.measure.power import sampler as sampler_process

    def broken(*args: object, **kwargs: object) -> None:
        raise sampler_process.SamplerUnavailable("the sampler process could not start: EAGAIN")

    monkeypatch.setattr(sampler_process, "ChildSampler", broken)
    root, pkg0, _ = powercap
    monitor = make_power_monitor("cpu", powercap_root=root)
    assert monitor.sampler == "thread"
    assert (
        monitor.sampler_note
        == "thread (process failed: the sampler process could not start: EAGAIN)"
    )
    with monitor:
        set_energy(pkg0, MAX_UJ - 1_000 + 500)
        time.sleep(0.05)
    assert monitor.reading.polls >= 2 and monitor.reading.reason is not None  # too short


def test_the_rapl_child_reads_the_same_files(powercap) -> None:
    root, pkg0, _ = powercap
    monitor = make_power_monitor("cpu", powercap_root=root, sample_hz=200.0)
    assert monitor.sampler == "process" and monitor.sampler_note is None
    try:
        monitor.start()
        for i in range(1, 6):  # 5 updates of 1 J each, 40 ms apart
            time.sleep(0.04)
            set_energy(pkg0, (MAX_UJ - 1_000 + i * 1_000_000) % MAX_UJ)
        time.sleep(0.04)
        reading = monitor.stop()
    finally:
        monitor.close()
    assert monitor.sampler_cpu_s > 0
    # the counters: package-0 moved 5 J across its wraparound, package-1 not at all
    assert reading.window_s < 1.0 and reading.energy_j is None
    assert reading.power_w_mean == pytest.approx(5.0 / reading.window_s, rel=1e-9)
    assert len(reading.trace) >= 4  # the child saw the steps between start and stop


def test_a_sweep_reuses_one_sampler_process(powercap) -> None:
    root, _, _ = powercap

    def pid(monitor: object) -> int:
        return monitor._child._proc.pid  # type: ignore[attr-defined]

    first = make_power_monitor("cpu", powercap_root=root)
    pid1 = pid(first)
    first.close()  # the case is over: its child goes back
    second = make_power_monitor("cpu", powercap_root=root)
    assert pid(second) == pid1  # no new process for the next case
    third = make_power_monitor("cpu", powercap_root=root)  # while the second still holds it
    assert pid(third) != pid1
    for monitor in (second, third):
        with monitor:
            time.sleep(0.02)
        assert monitor.reading.polls >= 2
        monitor.close()


def test_a_sampler_process_killed_mid_window_loses_the_trace_not_the_energy(powercap) -> None:
    import signal

    root, pkg0, _ = powercap
    monitor = make_power_monitor("cpu", powercap_root=root, min_window_s=0.2)
    proc = monitor._child._proc  # type: ignore[attr-defined]
    monitor.start()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    set_energy(pkg0, (MAX_UJ - 1_000 + 2_000_000) % MAX_UJ)  # 2 J, across the wraparound
    time.sleep(0.25)  # the window: longer than its 0.2 s minimum
    reading = monitor.stop()
    # the counters were read here, at start and stop: the energy stands
    assert reading.energy_j == pytest.approx(2.0, rel=1e-9) and reading.reason is None
    assert reading.polls == 2  # only this process's polls: the trace is start and stop
    assert monitor.sampler_note.startswith("the sampler process failed")
    monitor.close()
    fresh = make_power_monitor("cpu", powercap_root=root)
    assert fresh._child._proc.pid != proc.pid  # type: ignore[attr-defined]
    with fresh:
        time.sleep(0.02)
    assert fresh.reading.polls >= 2
    fresh.close()
