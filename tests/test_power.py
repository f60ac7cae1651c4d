"""harness.measure.power.meters: the reading's columns against the schema, the null monitor's
reasons, input checks, the clock-event decoding, and the no-driver path as it really is on this
machine.

The NVML paths through the real bindings are in test_power_nvml.py, RAPL in test_power_rapl.py.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from array import array

import pyarrow as pa
import pytest

from harness.core import schema
from harness.core.errors import InvalidInputError
from harness.measure.power import nvml
from harness.measure.power.meters import (
    DeviceState,
    NullPowerMonitor,
    PowerReading,
    make_power_monitor,
)
from harness.measure.power.reading import hold_integral, hold_mean


def _real_nvml_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def _reading() -> PowerReading:
    return PowerReading(
        source="nvml:energy_counter+instant_field",
        window_s=1.5,
        energy_j=300.0,
        power_w_mean=200.0,
        power_w_max=310.5,
        trace=[(0.0, 150.0), (0.75, 310.5), (1.5, 140.0)],
        sample_hz=100.0,
        polls=150,
        start=DeviceState(1410, 1593, 40, 300.0, "gpu_idle"),
        end=DeviceState(1200, 1593, 83, 300.0, "sw_power_cap,sw_thermal_slowdown"),
        energy_scope="gpu",
    )


def test_columns_are_the_schema_columns_with_the_schema_types() -> None:
    cols = _reading().to_columns(samples_processed=600)
    known = {c.name: c for c in schema.CASES}
    assert set(cols) <= set(known), set(cols) - set(known)
    for name, value in cols.items():  # each value converts to its column's arrow type
        pa.array([value], type=known[name].type)
    assert cols["energy_j_per_sample"] == 300.0 / 600
    assert cols["samples_per_j"] == 600 / 300.0
    assert cols["power_samples"] == 3
    assert cols["power_limit_w"] == 300.0
    assert cols["throttle_reasons_end"] == "sw_power_cap,sw_thermal_slowdown"
    assert cols["energy_scope"] == "gpu"
    # no energy, no scope: the scope says what an energy figure covers
    no_energy = PowerReading(source="nvml:energy_counter+instant_field", energy_scope="gpu")
    assert no_energy.to_columns(8)["energy_scope"] is None


def test_the_trace_frame_is_the_power_table_without_its_keys() -> None:
    frame = _reading().trace_frame()
    keys = {"schema_version", "run_id", "case_id"}
    assert list(frame.columns) == [c for c in schema.column_names("power") if c not in keys]
    assert frame["t_s"].tolist() == [0.0, 0.75, 1.5]
    assert frame["power_w"].tolist() == [150.0, 310.5, 140.0]
    assert schema.FILE_SUFFIX["power"] == ".power.parquet"
    assert schema.SCHEMA_VERSION >= 2  # the power table arrived in version 2
    assert PowerReading(source="off: x").trace_frame() is None


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_samples_processed_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="samples_processed"):
        _reading().to_columns(bad)  # type: ignore[arg-type]


def test_hold_mean_and_integral_weight_each_reading_by_how_long_it_held() -> None:
    t, p = array("d", [0.0, 0.25, 1.0]), array("d", [100.0, 300.0, 50.0])
    # 100 W for 0.25 s, 300 W for 0.75 s, 50 W for 0.5 s
    assert hold_integral(t, p, 1.5) == pytest.approx(25.0 + 225.0 + 25.0)
    assert hold_mean(t, p, 1.5) == pytest.approx(275.0 / 1.5)
    assert hold_mean(array("d"), array("d"), 1.0) is None


def test_clock_event_reasons_decode_to_the_nvml_names() -> None:
    # bit values from nvml.h: GpuIdle 0x1, SwPowerCap 0x4, HwSlowdown 0x8, SwThermal 0x20,
    # HwThermal 0x40, HwPowerBrake 0x80
    assert nvml.decode_clock_event_reasons(0) == "none"
    assert nvml.decode_clock_event_reasons(0x1) == "gpu_idle"
    assert nvml.decode_clock_event_reasons(0x4 | 0x8) == "sw_power_cap,hw_slowdown"
    assert nvml.decode_clock_event_reasons(0x20 | 0x40 | 0x80) == (
        "sw_thermal_slowdown,hw_thermal_slowdown,hw_power_brake_slowdown"
    )
    assert nvml.decode_clock_event_reasons(0x4 | 0x10000) == "sw_power_cap,unknown_0x10000"


def test_off_measures_nothing_and_says_so() -> None:
    monitor = make_power_monitor("cuda:0", mode="off")
    assert isinstance(monitor, NullPowerMonitor) and monitor.min_window_s == 0.0
    with monitor:
        pass
    cols = monitor.reading.to_columns(8)
    assert cols["power_source"] == "off: disabled by --cnn-power=off"
    assert all(v is None for k, v in cols.items() if k not in ("power_source", "power_reason"))
    assert monitor.measure_idle(0.5) is None


def test_a_device_without_a_power_source_says_which() -> None:
    monitor = make_power_monitor("mps")
    assert (
        monitor.source
        == "unavailable: no power source for mps devices (NVML covers cuda, RAPL cpu)"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "on"}, "power mode must be 'auto' or 'off'"),
        ({"sample_hz": 0}, "sample rate"),
        ({"sample_hz": 5000}, "sample rate"),
        ({"min_window_s": -1.0}, "min_window_s"),
    ],
)
def test_bad_options_are_typed_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        make_power_monitor("cpu", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", ["cuda:x", "", "cuda:0:1", "gpu-0"])
def test_bad_device_strings_are_typed_errors(device: str) -> None:
    with pytest.raises(InvalidInputError, match="not a device"):
        make_power_monitor(device)


def test_idle_seconds_must_be_positive() -> None:
    with pytest.raises(InvalidInputError, match="idle seconds"):
        make_power_monitor("cuda:0", mode="off").measure_idle(-1.0)


@pytest.mark.skipif(_real_nvml_present(), reason="a real NVIDIA driver is installed here")
def test_no_driver_as_it_really_is_gives_a_null_reading_with_the_reason() -> None:
    # a fresh interpreter, the real pynvml, no stub anywhere: what a CPU-only user sees
    code = """
import json, pynvml
from harness.measure.power.meters import make_power_monitor
try:
    pynvml.nvmlInit()
    error = None
except pynvml.NVMLError as err:
    error = type(err).__name__
monitor = make_power_monitor("cuda:0")
monitor.start()
cols = monitor.stop().to_columns(64)
print(json.dumps({"error": error, "monitor": type(monitor).__name__,
                  "min_window_s": monitor.min_window_s, "cols": cols}))
"""
    env_out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    out = json.loads(env_out.stdout.strip().splitlines()[-1])
    assert out["error"] == "NVMLError_LibraryNotFound"
    assert out["monitor"] == "NullPowerMonitor" and out["min_window_s"] == 0.0
    cols = out["cols"]
    assert cols["power_source"] == (
        "unavailable: NVML library not found (no NVIDIA driver on this machine); "
        "install the NVIDIA driver or pass --cnn-power=off"
    )
    assert cols["energy_j_per_sample"] is None and cols["power_w_mean"] is None


def test_a_library_path_that_does_not_load_is_a_reason(tmp_path) -> None:
    missing = tmp_path / "libnvidia-ml.so.1"
    monitor = make_power_monitor("cuda:0", nvml_library=missing)
    assert isinstance(monitor, NullPowerMonitor)
    assert monitor.source.startswith(f"unavailable: NVML library {missing} could not be loaded")
