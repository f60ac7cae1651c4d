"""NVML on a real GPU: energy present and consistent with the power trace; the right GPU with a
UUID in CUDA_VISIBLE_DEVICES (in a subprocess); a sticky CUDA error recognised (in a
subprocess, since it poisons the context for good)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.doctor import checks
from harness.measure.power import nvml, nvml_match
from harness.measure.power.meters import NvmlPowerMonitor, make_power_monitor

ROOT = Path(__file__).resolve().parents[2]


def _nvml_device(cuda: torch.device) -> nvml.NvmlDevice:
    try:
        nvml.init_nvml()
        return nvml_match.match_device(cuda.index, nvml_match.torch_cuda_identity(cuda.index))
    except nvml.NvmlUnavailable as err:
        if "MIG" in err.reason:
            pytest.skip(f"NVML gives no per-instance energy: {err.reason}")
        raise


def test_nvml_energy_is_present_and_agrees_with_the_trace(cuda: torch.device) -> None:
    _nvml_device(cuda)
    monitor = make_power_monitor(cuda)
    try:
        assert isinstance(monitor, NvmlPowerMonitor), monitor.source
        assert monitor.sampler == "process", monitor.sampler_note
        assert monitor.counter_step_source == "measured"
        assert 0.001 <= monitor.counter_step_s <= 0.2  # NVML: 20 to 100 ms
        assert monitor.min_window_s == pytest.approx(max(1.0, monitor.counter_step_s / 0.02))
    finally:
        monitor.close()
    check = checks.check_energy(cuda)  # a window of 1.2 x the minimum, resnet18 batch 32
    n = check.numbers
    assert n["energy_scope"] in ("gpu", "module")
    assert n["counter_j"] > 0 and n["trace_readings"] >= 10
    # the counter against the integral of the trace: within 15% (the doctor's WARN band)
    assert check.status in (checks.PASS, checks.WARN), check
    limit = monitor.device.state()["power_limit_mw"]
    if limit:
        assert n["power_w_mean"] <= 1.1 * limit / 1000.0


def _child(code: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-2000:]
    return json.loads(lines[-1])


def test_cuda_visible_devices_with_a_uuid(cuda: torch.device) -> None:
    uuid = _nvml_device(cuda).uuid
    code = """
import json, torch
from harness.measure.env import collect_environment
from harness.measure.power.meters import make_power_monitor
m = make_power_monitor("cuda:0")
env = collect_environment(torch.device("cuda:0"))
print(json.dumps({"count": torch.cuda.device_count(), "source": m.source,
                  "uuid": getattr(getattr(m, "device", None), "uuid", None),
                  "matched_by": getattr(getattr(m, "device", None), "matched_by", None),
                  "env_uuid": env["gpu_uuid"]}))
"""
    got = _child(code, {"CUDA_VISIBLE_DEVICES": uuid})
    assert got["count"] == 1
    assert got["source"].startswith("nvml:"), got
    assert got["uuid"] == uuid and got["env_uuid"] == uuid, got
    assert got["matched_by"].startswith("uuid")


def test_a_sticky_error_is_recognised(cuda: torch.device) -> None:
    code = """
import json, torch
from harness.measure.cuda_state import classify_failure
kinds = []
x = torch.zeros(4, device="cuda")
try:
    x[torch.tensor([10], device="cuda")].sum().item()  # an out-of-bounds index: device assert
    torch.cuda.synchronize()
except Exception as exc:
    kinds.append(classify_failure(exc))
try:
    (torch.ones(1, device="cuda") + 1).item()  # anything later fails the same way
except Exception as exc:
    kinds.append(classify_failure(exc))
print(json.dumps({"kinds": kinds}))
"""
    got = _child(code, {})  # the same GPUs as this process: cuda is its cuda:0
    assert got["kinds"] == ["sticky", "sticky"], got
