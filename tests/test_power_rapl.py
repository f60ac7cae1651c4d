"""RAPL package energy against a powercap tree the test builds, laid out as Linux does it
(/sys/class/powercap/intel-rapl:N with name, energy_uj, max_energy_range_uj; sub-zones
intel-rapl:N:M beside them; psys as a top-level zone that is not a package)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.measure import rapl
from harness.measure.power import NullPowerMonitor, RaplPowerMonitor, make_power_monitor

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
    else:  # a machine with RAPL: measured, or a reason why not
        assert isinstance(monitor, RaplPowerMonitor) or monitor.source.startswith("unavailable: ")
