"""Several hosts: each writes its own results sub-directory; compare, claims' run selection and
the report read the tree and tell hosts and devices apart (README, "Several GPUs, several
hosts")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from harness.cli.main import main
from harness.results import ResultWriter, load_results
from harness.results.runs import config_label, select_runs


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


def test_compare_across_hosts_names_the_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fleet(tmp_path)
    code = main(
        ["compare", str(tmp_path / "node-a"), str(tmp_path / "node-b"), "--metric", "latency"]
    )
    out = capsys.readouterr().out
    assert code == 0
    # the host and the device, named as the environment's differences (the input paths in the
    # header name the hosts too, whatever compare finds: only these rows say it found them)
    differences = out.split("environment differences", 1)[1].splitlines()
    assert re.search(r"^host\s+node-a\s+node-b\s*$", "\n".join(differences), re.M), out
    assert re.search(r"^device_name\s+NVIDIA H100\s+NVIDIA A100\s*$", "\n".join(differences), re.M)
    # the inputs table: each side's device as read from its rows
    assert re.search(r"^baseline\s+\S+node-a\s+2\s+NVIDIA H100\s+1\s*$", out, re.M), out
    assert re.search(r"^candidate\s+\S+node-b\s+2\s+NVIDIA A100\s+1\s*$", out, re.M), out
    table = out.split("per model")[0]  # the cases, not the verdicts per model
    lines = [ln for ln in table.splitlines() if ln.startswith(("resnet50", "vgg16"))]
    assert len(lines) == 2 and all(ln.split()[-1] == "slower" for ln in lines)


def _payload(html: str, element: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', html, re.S)
    assert m is not None, element
    return json.loads(m.group(1))


def test_a_report_over_the_tree_tells_hosts_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fleet(tmp_path)
    page = tmp_path / "fleet.html"
    code = main(["report", str(tmp_path / "node-a"), str(tmp_path / "node-b"), "-o", str(page)])
    assert code == 0, capsys.readouterr().err
    html = page.read_text()
    # (the footer lists the input paths, node-a and node-b among them, whatever the report
    # found: the checks below read what the report made of the rows)
    a = "node-a, NVIDIA H100, 8 threads, torch 2.13.0"
    b = "node-b, NVIDIA A100, 8 threads, torch 2.13.0"
    # the runs table: one row per run, each with its own configuration
    assert f"<td>run-node-a<br><small>complete: yes</small></td><td>{a}<br>" in html
    assert f"<td>run-node-b<br><small>complete: yes</small></td><td>{b}<br>" in html
    # the headline: one row per configuration, named by its device
    assert f"<td><b>H100</b><br><small>{a}</small></td>" in html
    assert f"<td><b>A100</b><br><small>{b}</small></td>" in html
    # the figures: each configuration its own traces; the ratio between them across hardware
    traces = [t for f in _payload(html, "cnnbench-figures")["figures"] for t in f["data"]]
    metas = {tuple(t["meta"][:2]) for t in traces if len(t.get("meta") or []) >= 2}
    assert {("H100", a), ("A100", b)} <= metas, metas
    assert f"Baseline: {a}." in html
    across = [
        t
        for t in traces
        if str(t.get("name", "")).startswith("A100")
        and t.get("hovertext")
        and all(f"against {a}" in h for h in t["hovertext"])
    ]
    assert len(across) == 1, "no ratio of node-b's configuration against node-a's drawn"
    assert sorted(h.split(":")[0] for h in across[0]["hovertext"]) == ["resnet50", "vgg16"]
    # the cases table: the configuration column keeps the two hosts apart
    cases = {c["h"]: c for c in _payload(html, "cnnbench-cases")["columns"]}
    assert sorted(cases["configuration"]["t"]["d"]) == [a, b]
    assert sorted(cases["run"]["d"]) == ["run-node-a", "run-node-b"]
