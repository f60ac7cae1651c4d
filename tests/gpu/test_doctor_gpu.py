"""`cnnbench doctor --device cuda:0` on a real GPU: every check runs (none unavailable but
energy where NVML has no counter) and none fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_doctor_passes_on_this_gpu(cuda: torch.device) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "harness", "doctor", "--device", str(cuda), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    report = json.loads(out.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    failed = {n: c for n, c in by_name.items() if c["status"] == "FAIL"}
    assert not failed, json.dumps(failed, indent=1)
    assert out.returncode == 0
    for name in ("timing", "memory", "compile", "failure_recovery"):
        assert by_name[name]["status"] in ("PASS", "WARN"), by_name[name]
    assert report["machine"]["cuda"]["available"] is True
    assert report["machine"]["nvml"]["available"] is True, report["machine"]["nvml"]
    assert by_name["failure_recovery"]["numbers"]["classified_as"] == "oom"
    assert report["seconds"] < 300  # "about two minutes"
