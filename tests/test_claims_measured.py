"""Measured claims from result rows built here (the schema's columns; real parquet through
ResultWriter where the command reads files): one run and one configuration at a time, valid rows
only, thread counts never mixed, an all-OOM file giving insufficient data, layer times for the
FC time share, strings from result files escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.claims import CONFIRMED, INSUFFICIENT, PARTLY, REFUTED, UNDECIDED, check_claims
from harness.cli.main import main
from harness.core.schema import column_names
from harness.results import ResultWriter
from tests.test_claims_static import vgg16_layer_table

MACS = {"resnet18": 1_814_073_344, "resnet34": 3_663_761_408, "resnet50": 4_089_184_256,
        "resnet101": 7_801_405_440, "resnet152": 11_513_626_624, "plain18": 1_794_805_760,
        "plain34": 3_644_493_824, "inception_3a": 128_049_152,
        "inception_3a_naive": 303_464_448, "vgg16": 15_470_264_320}  # fmt: skip
PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
          "resnet101": 44_549_160, "resnet152": 60_192_808, "plain18": 11_515_688,
          "plain34": 21_623_848, "inception_3a": 163_696, "inception_3a_naive": 387_296,
          "vgg16": 138_357_544}  # fmt: skip
LATENCY = {"resnet18": 0.020, "resnet34": 0.040, "resnet50": 0.050, "resnet101": 0.100,
           "resnet152": 0.150, "plain18": 0.0198, "plain34": 0.0396, "inception_3a": 0.0037,
           "inception_3a_naive": 0.0050}  # fmt: skip


def row(model: str, latency: float, ci: float = 0.01, **extra: Any) -> dict[str, Any]:
    """One valid ok row at batch 1 on a 2-thread CPU, its median known to +-ci."""
    return {
        "run_id": "run-a", "run_complete": True, "timestamp_utc": "2026-01-01T00:00:00+00:00",
        "case_id": f"{model}-b1", "model": model,
        "input_shape": "192x28x28" if model.startswith("inception") else "3x224x224",
        "batch_size": 1, "dtype": "float32", "memory_format": "contiguous", "mode": "inference",
        "compiled": False, "device": "cpu", "device_name": "Test CPU", "host": "host-a",
        "cpu_threads": 2, "torch_version": "2.13.0", "params": PARAMS[model],
        "macs": MACS[model], "latency_s_median": latency,
        "latency_s_median_ci_low": latency * (1 - ci),
        "latency_s_median_ci_high": latency * (1 + ci),
        "latency_s_samples": [latency * (1 + d) for d in (-ci, 0.0, ci)],
        "throughput_per_s": 1 / latency, "peak_memory_bytes": PARAMS[model] * 4 + 10 * 2**20,
        "status": "ok", "validity": "valid", **extra,
    }  # fmt: skip


def frame(latency: dict[str, float] | None = None, **extra: Any) -> pd.DataFrame:
    return pd.DataFrame([row(m, t, **extra) for m, t in (latency or LATENCY).items()])


def by_id(results: list) -> dict[str, Any]:
    return {r.id: r for r in results}


def test_measured_claims_from_valid_rows() -> None:
    got = by_id(check_claims(frame(), kinds=["measured"]))
    depth = got["resnet.depth_vs_cost"]
    assert depth.verdict == CONFIRMED, depth.explanation
    assert "host-a, Test CPU, 2 threads, torch 2.13.0 (cpu)" in depth.rows
    assert "batch 1, float32" in depth.rows and "run run-a" in depth.rows
    assert depth.quantities["resnet50_latency_s"].low == pytest.approx(0.0495)
    plain = got["resnet.plain_vs_residual_time"]
    assert plain.verdict == CONFIRMED
    ratio = plain.quantities["resnet18_to_plain18_latency_ratio"]
    assert ratio.value == pytest.approx(0.020 / 0.0198)
    assert (ratio.low, ratio.high) == pytest.approx((0.0198 / 0.019998, 0.0202 / 0.019602))
    assert plain.quantities["resnet18_to_plain18_macs_ratio"].value == pytest.approx(
        MACS["resnet18"] / MACS["plain18"])  # fmt: skip
    assert got["googlenet.inception_3a_time"].verdict == CONFIRMED
    macs = got["macs_vs_time"]
    models = list(LATENCY)  # ranks by hand: MACs order vs latency order, no ties
    rank = {m: i for i, m in enumerate(sorted(models, key=MACS.get))}
    by_time = {m: i for i, m in enumerate(sorted(models, key=LATENCY.get))}
    n = len(models)
    rho = 1 - 6 * sum((rank[m] - by_time[m]) ** 2 for m in models) / (n * (n * n - 1))
    assert macs.quantities["spearman_rho"].value == pytest.approx(rho)
    assert macs.verdict == (CONFIRMED if rho >= 0.9 else REFUTED)
    assert got["macs_vs_energy"].verdict == INSUFFICIENT


def test_noisy_rows_do_not_decide_and_straddling_intervals_are_undecided() -> None:
    rows = frame()
    noisy = rows["model"] == "resnet50"
    rows.loc[noisy, "validity"] = "noisy"
    rows.loc[noisy, "validity_reason"] = "load 2.8 on 2 cores (limit cores + 0.5)"
    wide = rows["model"] == "resnet18"  # 41% slower than plain18 with CI 0.57-3.54 (issue 14)
    rows.loc[wide, "latency_s_median"] = 0.0198 * 1.41
    rows.loc[wide, "latency_s_median_ci_low"] = 0.0198 * 0.57
    rows.loc[wide, "latency_s_median_ci_high"] = 0.0198 * 3.54
    got = by_id(check_claims(rows, kinds=["measured"]))
    depth = got["resnet.depth_vs_cost"]
    assert depth.verdict == INSUFFICIENT
    assert "resnet50_latency_s" in depth.explanation
    assert "noisy row: load 2.8 on 2 cores" in depth.explanation
    assert got["resnet.plain_vs_residual_time"].verdict == UNDECIDED


def test_static_quantities_never_depend_on_a_rows_timing() -> None:
    """Issue 25: 'missing: resnet101_params, resnet101_macs (resnet101: noisy row)' although
    parameters and MACs are static and exact; a noisy row's peak memory (not a timing) counts
    too, its latency does not."""
    rows = frame()
    noisy = rows["model"] == "resnet101"
    rows.loc[noisy, "validity"] = "noisy"
    rows.loc[noisy, "validity_reason"] = "CPU pressure 0.41 > 0.1"
    (depth,) = check_claims(rows, only="resnet.depth_vs_cost")
    q = depth.quantities
    assert q["resnet101_params"].value == PARAMS["resnet101"]
    assert q["resnet101_macs"].value == MACS["resnet101"]
    assert q["resnet101_peak_memory_bytes"].value == PARAMS["resnet101"] * 4 + 10 * 2**20
    assert q["resnet101_latency_s"].missing
    assert depth.verdict == INSUFFICIENT
    missing = depth.explanation.split("missing")[1].split(";")[0]
    assert "resnet101_latency_s" in missing and "resnet101_params" not in missing
    assert "resnet101_macs" not in missing


def test_two_thread_counts_are_never_mixed() -> None:
    """Issue 10: claims over two runs with different thread counts do not mix them."""
    one = frame({"resnet18": 0.040, "plain18": 0.0396, "inception_3a": 0.0074},
                cpu_threads=1, run_id="run-1t")  # fmt: skip
    two = frame({"resnet18": 0.020, "plain18": 0.0198, "inception_3a_naive": 0.0050},
                run_id="run-2t")  # fmt: skip
    results = check_claims(pd.concat([one, two]), only="resnet.plain_vs*,*3a_time")
    plain = [r for r in results if r.id == "resnet.plain_vs_residual_time"]
    assert len(plain) == 2  # one verdict per configuration
    for r in plain:  # the ratio within one thread count: 1.0101, never 2.02 or 0.495
        assert r.quantities["resnet18_to_plain18_latency_ratio"].value == pytest.approx(1 / 0.99)
    assert {("1 thread," in r.rows, "run-1t" in r.rows) for r in plain} == {
        (True, True),
        (False, False),
    }
    inception = [r for r in results if r.id == "googlenet.inception_3a_time"]
    assert [r.verdict for r in inception] == [INSUFFICIENT, INSUFFICIENT]
    assert all("no row of inception_3a" in r.explanation for r in inception)  # fmt: skip


def test_one_gpu_model_under_xdist_is_one_configuration() -> None:
    """Issue 22 item 2: ``-n auto`` on an 8-GPU box puts whole models on different GPUs; rows of
    one GPU model and settings are one configuration, whatever GPU index they ran on (older
    files say cuda:N, newer ones cuda:0 with NVML's index beside it)."""
    gpu = {"device_name": "NVIDIA H100 80GB HBM3", "cpu_threads": 28}
    rows = frame()
    placed = {"resnet18": ("cuda:0", 0), "plain18": ("cuda:1", 1), "resnet34": ("cuda:0", 5),
              "plain34": ("cuda:3", 3)}  # fmt: skip
    for model, (device, index) in placed.items():
        at = rows["model"] == model
        rows.loc[at, "device"] = device
        rows.loc[at, "gpu_index"] = index
    rows = rows[rows["model"].isin(list(placed))].assign(**gpu)
    results = check_claims(rows, only="resnet.plain_vs*")
    assert len(results) == 1, [r.rows for r in results]
    (plain,) = results
    assert plain.verdict == CONFIRMED, plain.explanation
    assert "NVIDIA H100 80GB HBM3" in plain.rows and "(cuda: GPU 0, 1, 3, 5)" in plain.rows


def test_runs_are_not_pooled_unless_asked() -> None:
    old = frame(
        {"inception_3a_naive": 0.00422}, run_id="run-old", timestamp_utc="2025-01-01T00:00:00+00:00"
    )
    new = frame({"inception_3a": 0.00736}, run_id="run-new")  # fmt: skip
    rows = pd.concat([old, new])
    (latest,) = check_claims(rows, only="googlenet.inception_3a_time")
    assert latest.verdict == INSUFFICIENT and "run run-new" in latest.rows
    (pooled,) = check_claims(rows, only="googlenet.inception_3a_time", all_runs=True)
    assert pooled.verdict == REFUTED  # on purpose: 4.22 ms naive from one run, 7.36 ms from another
    assert "run-new" in pooled.rows and "run-old" in pooled.rows


def write(directory: Path, rows: list[dict[str, Any]], layers: pd.DataFrame | None = None,
          run_id: str = "run-a") -> Path:  # fmt: skip
    with ResultWriter(directory, run_id=run_id) as w:
        for r in rows:
            r = {k: v for k, v in r.items() if k not in ("run_id", "run_complete")}
            w.add_case(r, layers=layers if r["model"] == "vgg16" else None)
    return directory


def test_all_oom_results_give_insufficient_data_per_claim(tmp_path: Path, capsys: Any) -> None:
    """Issue 17: a file with no ok row was KeyError: 'macs'."""
    oom = [{"case_id": f"{m}-b256", "model": m, "input_shape": "3x224x224", "batch_size": 256,
            "dtype": "float32", "device": "cuda:0", "device_name": "Test GPU", "status": "oom",
            "error": "CUDA out of memory"} for m in ("resnet18", "plain18", "vgg16")]  # fmt: skip
    path = write(tmp_path / "oom", oom)
    assert main(["claims", "--results", str(path), "--format", "json", "--only", "*time*"]) == 0
    data = json.loads(capsys.readouterr().out)
    verdicts = {c["id"]: c["verdict"] for c in data["evidence"]}
    assert set(verdicts.values()) == {INSUFFICIENT} and len(verdicts) == 4
    plain = next(c for c in data["evidence"] if c["id"] == "resnet.plain_vs_residual_time")
    assert "oom: CUDA out of memory" in plain["explanation"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "run.parquet").write_bytes(b"")
    assert main(["claims", "--results", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "not a readable result file" in err and len(err.strip().splitlines()) == 1


def vgg16_layers(fc_time: float, other_time: float) -> pd.DataFrame:
    layers = vgg16_layer_table(batch=1)
    layers["time_s"] = [fc_time if t == "Linear" else other_time for t in layers["layer_type"]]
    layers["layer_name"] = [f"layer{i}" for i in range(len(layers))]
    return layers[[c for c in column_names("layers") if c in layers and c != "case_id"]]


@pytest.mark.parametrize(
    ("fc_time", "verdict"), [(0.0005, CONFIRMED), (0.02, PARTLY)], ids=["little", "much"]
)
def test_fc_time_share_from_layer_rows(tmp_path: Path, capsys: Any, fc_time: float,
                                       verdict: str) -> None:  # fmt: skip
    layers = vgg16_layers(fc_time, 0.002)
    n_fc, n = int((layers["layer_type"] == "Linear").sum()), len(layers)
    path = write(tmp_path, [row("vgg16", 0.25, layer_time_coverage=0.97)], layers)
    assert main(["claims", "--results", str(path), "--only", "vgg16.*", "--format", "json"]) == 0
    (claim,) = json.loads(capsys.readouterr().out)["evidence"]
    share = n_fc * fc_time / (n_fc * fc_time + (n - n_fc) * 0.002)
    assert claim["quantities"]["fc_time_share"]["value"] == pytest.approx(share)
    assert claim["quantities"]["fc_params_share"]["value"] == pytest.approx(
        123_642_856 / 138_357_544)  # fmt: skip
    assert claim["verdict"] == verdict and (share <= 0.1) == (verdict == CONFIRMED)


def test_fc_time_share_without_layer_times_says_why() -> None:
    rows = frame({"vgg16": 0.25}, layer_time_source="not measured (--cnn-layer-times off)")
    (r,) = check_claims(rows, only="vgg16.fc_time_share")
    assert r.verdict == INSUFFICIENT and "--cnn-layer-times off" in r.explanation


def test_energy_claim_names_why_power_is_missing() -> None:
    reason = "unavailable: NVML library not found"
    (r,) = check_claims(frame(power_source=reason), only="macs_vs_energy")
    assert r.verdict == INSUFFICIENT and reason in r.explanation
    rows = frame(power_source="nvml")
    rows["energy_j_per_sample"] = [MACS[m] * 1e-11 for m in rows["model"]]  # 100 GMAC/J
    (r,) = check_claims(rows, only="macs_vs_energy")
    assert r.verdict == CONFIRMED and r.quantities["spearman_rho"].value == pytest.approx(1.0)
    assert r.quantities["resnet18_MAC_per_J"].value == pytest.approx(1e11)


def test_strings_from_result_files_are_escaped(tmp_path: Path, capsys: Any) -> None:
    hostile = "\x1b]0;owned\x07\x1b[31mred\r\nrefuted  fake.claim | x"
    rows = [row(m, t) for m, t in LATENCY.items()]
    rows[0] |= {"validity": "noisy", "validity_reason": hostile, "host": "evil\x1b[2J"}
    path = write(tmp_path, rows)
    for fmt in ("table", "markdown"):
        argv = ["--results", str(path), "--only", "resnet.*", "--format", fmt, "--details"]
        assert main(["claims", *argv]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\r" not in out and "\\x1b[31mred\\r\\n" in out
        assert "\nrefuted  fake.claim" not in out
    assert "fake.claim \\| x" in out  # markdown: the table separator escaped
