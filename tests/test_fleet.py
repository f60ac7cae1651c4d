"""Several hosts: each writes its own results sub-directory; compare, claims' run selection and
the report read the tree and tell hosts and devices apart (README, "Several GPUs, several
hosts")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.results import ResultWriter, load_results
from harness.results.runs import config_label, select_runs

ROOT = Path(__file__).resolve().parents[1]


def _row(host: str, device: str, model: str, median: float, seed: int) -> dict:
    samples = median * np.exp(0.01 * np.random.default_rng(seed).standard_normal(101))
    med = float(np.median(samples))
    return {
        "case_id": f"{model}-3x224x224-b1",
        "model": model,
        "input_shape": "3x224x224",
        "batch_size": 1,
        "dtype": "float32",
        "dtype_method": "autocast",
        "memory_format": "contiguous",
        "mode": "inference",
        "compiled": False,
        "device": "cuda:0",
        "device_name": device,
        "host": host,
        "cpu_threads": 8,
        "torch_version": "2.13.0",
        "timestamp_utc": "2026-11-29T00:00:00+00:00",
        "latency_s_samples": samples,
        "latency_s_median": med,
        "throughput_per_s": 1 / med,
        "rounds": 101,
        "status": "ok",
        "validity": "valid",
        "params": 1000,
        "macs": 10**9,
    }


def _fleet(root: Path) -> None:
    for host, device, factor in (("node-a", "NVIDIA H100", 1.0), ("node-b", "NVIDIA A100", 2.0)):
        with ResultWriter(root / host, run_id=f"run-{host}") as w:
            for i, model in enumerate(("resnet50", "vgg16")):
                w.add_case(_row(host, device, model, 0.01 * factor * (i + 1), i))


def test_the_tree_reads_as_one_frame_with_hosts_apart(tmp_path: Path) -> None:
    _fleet(tmp_path)
    df = load_results(sorted(tmp_path.iterdir()))
    assert sorted(df["host"].unique()) == ["node-a", "node-b"]
    selection = select_runs(df)
    labels = sorted({config_label(r) for _, r in selection.frame.iterrows()})
    assert labels == [
        "node-a, NVIDIA H100, 8 threads, torch 2.13.0",
        "node-b, NVIDIA A100, 8 threads, torch 2.13.0",
    ]
    assert len(selection.frame) == 4  # one run per configuration: nothing pooled away


def test_compare_across_hosts_names_the_differences(tmp_path: Path) -> None:
    _fleet(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "compare",
            str(tmp_path / "node-a"),
            str(tmp_path / "node-b"),
            "--metric",
            "latency",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "node-a" in out.stdout and "node-b" in out.stdout  # the host environment difference
    assert "NVIDIA H100" in out.stdout and "NVIDIA A100" in out.stdout
    table = out.stdout.split("per model")[0]  # the cases, not the verdicts per model
    lines = [ln for ln in table.splitlines() if ln.startswith(("resnet50", "vgg16"))]
    assert len(lines) == 2 and all(ln.split()[-1] == "slower" for ln in lines)


def test_a_report_over_the_tree_tells_hosts_apart(tmp_path: Path) -> None:
    _fleet(tmp_path)
    page = tmp_path / "fleet.html"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "report",
            str(tmp_path / "node-a"),
            str(tmp_path / "node-b"),
            "-o",
            str(page),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert "node-a" in html and "node-b" in html
    assert "NVIDIA H100" in html and "NVIDIA A100" in html
