"""harness.compare.compare and `cnnbench compare`: real files, known factors, exit codes.

"Other hardware" is stood for by files written through ResultWriter whose latency samples are
drawn from seeded log-normal distributions with known medians (median * exp(0.05 * N(0, 1)),
whose median is exactly ``median``): the expected ratios and verdicts follow from those
medians, not from the code under test.
"""

from __future__ import annotations

import json
import math
import re
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.cli.main import main
from harness.compare.bootstrap import bootstrap_medians
from harness.compare.compare import compare_runs
from harness.core.errors import InvalidInputError
from harness.results import ResultWriter, compare, schema

V1_FIXTURE = Path(__file__).parent / "fixtures" / "results_v1.parquet"
N_SAMPLES = 301


def samples(median: float, seed: int, sigma: float = 0.05, n: int = N_SAMPLES) -> np.ndarray:
    return median * np.exp(sigma * np.random.default_rng(seed).standard_normal(n))


def row(model: str, batch: int, lat: np.ndarray | None, device: str, **over: object) -> dict:
    """A row as the runner writes it, with the statistics computed from the given samples."""
    r: dict = {
        "timestamp_utc": "2026-01-02T00:00:00+00:00",
        "case_id": f"{model}-3x224x224-b{batch}",
        "model": model,
        "input_shape": "3x224x224",
        "batch_size": batch,
        "dtype": "float32",
        "dtype_method": "autocast",
        "memory_format": "contiguous",
        "mode": "inference",
        "compiled": False,
        "device": "cuda:0",
        "device_name": device,
        "driver_version": "550.54" if device.endswith("A") else "560.35",
        "torch_version": "2.3.0",
        "cpu_threads": 8,
        "params": {"resnet18": 11689512, "vgg16": 138357544}.get(model, 1000),
        "peak_memory_bytes": 2**30,
        "energy_j_per_sample": 1.0 if device.endswith("A") else 1.5,
        "status": "ok",
        "validity": "valid",  # as the runner judged it; the tests of noise set it otherwise
    }
    if lat is not None:
        med = float(np.median(lat))
        r.update(latency_s_samples=lat, latency_s_median=med, throughput_per_s=batch / med)
    r.update(over)
    return r


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Directories A (baseline GPU), B (2x slower GPU), C (like B, another device name)."""
    root = tmp_path_factory.mktemp("runs")
    with ResultWriter(root / "A", run_id="a-early") as w:  # superseded by the later run
        w.add_case(
            row(
                "resnet18",
                1,
                samples(0.050, 99),
                "GPU A",
                timestamp_utc="2026-01-01T00:00:00+00:00",
            )
        )
    with ResultWriter(root / "A", run_id="a-late") as w:
        w.add_case(row("resnet18", 1, samples(0.010, 1), "GPU A"))
        w.add_case(row("resnet18", 8, samples(0.040, 2), "GPU A"))
        w.add_case(row("vgg16", 1, samples(0.020, 3), "GPU A"))
        w.add_case(row("lenet5", 1, samples(0.0001, 4), "GPU A", energy_j_per_sample=None))
        w.add_case(row("resnet34", 1, samples(0.015, 5), "GPU A"))
        w.add_case(row("alexnet", 1, samples(0.005, 6), "GPU A"))
    for name, device in (("B", "GPU B"), ("C", "GPU C")):
        with ResultWriter(root / name, run_id=f"{name.lower()}-run") as w:
            w.add_case(row("resnet18", 1, samples(0.020, 11), device))  # 2x slower
            w.add_case(row("resnet18", 8, samples(0.080, 12), device))  # 2x slower
            w.add_case(row("vgg16", 1, samples(0.020, 13), device, params=138357545))  # same
            w.add_case(row("lenet5", 1, samples(0.00005, 14), device))  # 2x faster
            w.add_case(
                row(
                    "resnet34",
                    1,
                    None,
                    device,
                    status="oom",
                    error="out of memory",
                    peak_memory_bytes=None,
                    energy_j_per_sample=None,
                )
            )
            w.add_case(row("googlenet", 1, samples(0.007, 15), device))
    return {"A": root / "A", "B": root / "B", "C": root / "C", "root": root}


def cell(df: pd.DataFrame, model: str, metric: str, batch: int = 1, **pair: str) -> pd.Series:
    sel = df[(df["model"] == model) & (df["metric"] == metric) & (df["batch_size"] == batch)]
    for k, v in pair.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, sel
    return sel.iloc[0]


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_median_matches_the_exact_distribution_for_odd_n() -> None:
    """For odd n the bootstrap median is x_(j) or less iff at least k=(n+1)/2 draws are among
    the j smallest: P = P(Binomial(n, j/n) >= k), a formula independent of the code."""
    n, k = 25, 13
    x = np.arange(1.0, n + 1)
    draws = bootstrap_medians(x, 200_000, np.random.default_rng(7))
    for j in range(1, n + 1):
        p = j / n
        exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert abs(np.mean(draws <= j) - exact) < 0.004, j


def test_bootstrap_median_matches_brute_force_resampling_for_even_n() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 0.3, 40)
    fast = bootstrap_medians(x, 50_000, np.random.default_rng(1))
    brute = np.median(rng.choice(x, size=(50_000, len(x)), replace=True), axis=1)
    grid = np.unique(np.concatenate([fast, brute]))
    ks = np.max(
        np.abs(
            np.searchsorted(np.sort(fast), grid, side="right") / 50_000
            - np.searchsorted(np.sort(brute), grid, side="right") / 50_000
        )
    )
    assert ks < 0.015


# --------------------------------------------------------------------------- python API


def test_known_factors_give_exact_verdicts_and_ratios_within_the_interval(runs: dict) -> None:
    df = compare(runs["A"], runs["B"])
    expected = {  # model, batch, metric -> (true ratio, verdict)
        ("resnet18", 1, "latency"): (2.0, "slower"),
        ("resnet18", 8, "latency"): (2.0, "slower"),
        ("resnet18", 1, "throughput"): (0.5, "slower"),
        ("vgg16", 1, "latency"): (1.0, "same"),
        ("vgg16", 1, "throughput"): (1.0, "same"),
        ("lenet5", 1, "latency"): (0.5, "faster"),
        ("lenet5", 1, "throughput"): (2.0, "faster"),
        ("resnet18", 1, "energy"): (1.5, "higher"),
        ("resnet18", 1, "memory"): (1.0, "same"),
    }
    for (model, batch, metric), (true, verdict) in expected.items():
        r = cell(df, model, metric, batch)
        assert r["verdict"] == verdict, (model, batch, metric)
        assert r["ratio"] == pytest.approx(true, rel=0.03)
        if metric in ("latency", "throughput"):
            assert r["ci_low"] <= true <= r["ci_high"], (model, metric)
            assert r["ci_high"] / r["ci_low"] < 1.05  # 301 samples, 5% spread: a tight interval
        else:
            assert math.isnan(r["ci_low"]) and math.isnan(r["ci_high"])  # no raw samples
    # the throughput interval is the inverse of the latency one
    lat, thr = cell(df, "resnet18", "latency"), cell(df, "resnet18", "throughput")
    assert thr["ci_low"] == pytest.approx(1 / lat["ci_high"])
    # unmeasured on one side (lenet5 energy in A) and a failed case: n/a, never a ratio of 0
    assert cell(df, "lenet5", "energy")["verdict"] == "n/a"
    oom = cell(df, "resnet34", "latency")
    assert (oom["verdict"], oom["candidate_status"]) == ("n/a", "oom")
    assert math.isnan(oom["ratio"])


def test_duplicates_one_sided_cases_environment_and_static_changes(runs: dict) -> None:
    c = compare_runs(runs["A"], runs["B"])
    info = c.inputs.set_index("label")
    assert info.loc[str(runs["A"]), "duplicates_dropped"] == 1  # the earlier resnet18 b1 row
    assert info.loc[str(runs["A"]), "rows"] == 7
    # the later row (median 10 ms, not 50 ms) is the one compared
    assert cell(c.cases, "resnet18", "latency")["baseline_value"] == pytest.approx(0.010, rel=0.02)
    only = {(r.side, r.model) for r in c.only.itertuples()}
    assert only == {("baseline", "alexnet"), ("candidate", "googlenet")}
    env = {r.field: (r.baseline_value, r.candidate_value) for r in c.environment.itertuples()}
    assert env == {"device_name": ("GPU A", "GPU B"), "driver_version": ("550.54", "560.35")}
    assert c.static[["model", "column", "baseline_value", "candidate_value"]].values.tolist() == [
        ["vgg16", "params", 138357544, 138357545]
    ]
    latency = c.summary.set_index("metric").loc["latency"]
    # geometric mean over resnet18 b1, b8 (x2), vgg16 (x1), lenet5 (x0.5): 2^(1/4)
    assert latency["cases"] == 4
    assert latency["geomean_ratio"] == pytest.approx(2**0.25, rel=0.02)
    assert latency["ci_low"] <= 2**0.25 <= latency["ci_high"]
    assert (latency["slower"], latency["faster"], latency["same"], latency["n/a"]) == (2, 1, 1, 1)


def test_more_candidates_are_each_compared_with_the_baseline(runs: dict) -> None:
    c = compare_runs(runs["A"], runs["B"], runs["C"], labels=["a100", "h100", "l4"])
    assert list(dict.fromkeys(zip(c.cases["baseline"], c.cases["candidate"], strict=True))) == [
        ("a100", "h100"),
        ("a100", "l4"),
    ]
    assert len(c.summary[c.summary["metric"] == "latency"]) == 2
    assert cell(c.cases, "resnet18", "latency", candidate="l4")["verdict"] == "slower"


def test_failures_need_the_threshold_and_the_interval(runs: dict) -> None:
    c = compare_runs(runs["A"], runs["B"], metrics=["latency", "throughput", "energy"])
    fails = c.failures({"latency_s_median": 0.05})
    assert sorted(zip(fails["model"], fails["batch_size"], strict=True)) == [
        ("resnet18", 1),
        ("resnet18", 8),
        ("resnet34", 1),
    ]
    assert "status ok -> oom" in fails[fails["model"] == "resnet34"]["reason"].iloc[0]
    assert set(c.failures({"latency_s_median": 1.5})["model"]) == {"resnet34"}  # +100% < 150%
    assert set(c.failures({"throughput_per_s": 0.4})["model"]) == {"resnet18", "resnet34"}
    assert set(c.failures({"energy_j_per_sample": 0.6})["model"]) == {"resnet34"}


def test_a_change_inside_the_noise_does_not_fail(tmp_path: Path) -> None:
    with ResultWriter(tmp_path / "a") as a, ResultWriter(tmp_path / "b") as b:
        a.add_case(row("noisy", 1, samples(0.010, 21, sigma=0.6, n=15), "GPU A"))
        b.add_case(row("noisy", 1, samples(0.010, 22, sigma=0.6, n=15), "GPU B"))
    c = compare_runs(tmp_path / "a", tmp_path / "b", metrics=["latency"])
    r = c.cases.iloc[0]
    # precondition of this seeded draw: more than 5% slower by the point estimate, but noisy
    assert r["ratio"] > 1.05 and r["ci_low"] < 1 < r["ci_high"]
    assert r["verdict"] == "same"
    assert c.failures({"latency_s_median": 0.05}).empty


def test_min_effect_makes_a_tiny_real_change_the_same(tmp_path: Path) -> None:
    with ResultWriter(tmp_path / "a") as a, ResultWriter(tmp_path / "b") as b:
        a.add_case(row("tiny", 1, samples(0.010, 31, sigma=0.001), "GPU A"))
        b.add_case(row("tiny", 1, samples(0.0101, 32, sigma=0.001), "GPU B"))  # +1%
    r = compare(tmp_path / "a", tmp_path / "b", metrics=["latency"]).iloc[0]
    assert r["ci_low"] > 1  # the interval says "real"...
    assert r["verdict"] == "same"  # ...but 1% is inside the 2% minimum effect
    r = compare(tmp_path / "a", tmp_path / "b", metrics=["latency"], min_effect=0.005).iloc[0]
    assert r["verdict"] == "slower"


def test_mixed_schema_versions_compare(tmp_path: Path) -> None:
    v1 = pq.read_table(V1_FIXTURE).to_pylist()[0]
    with ResultWriter(tmp_path) as w:
        keep = {
            k: v1[k]
            for k in (
                "model",
                "input_shape",
                "batch_size",
                "dtype",
                "memory_format",
                "mode",
                "compiled",
                "case_id",
            )
        }
        lat = [s / 2 for s in v1["latency_s_samples"]]
        w.add_case(
            {
                **keep,
                "latency_s_samples": lat,
                "latency_s_median": float(np.median(lat)),
                "status": "ok",
            }
        )
    r = cell(compare(V1_FIXTURE, tmp_path, metrics=["latency"]), "lenet5", "latency")
    assert r["ratio"] == pytest.approx(0.5)
    # the v1 row (5 samples, no verdict of its own) is assessed on loading: too few rounds for a
    # 95% interval of its median, so the pair is noisy, not "faster"
    assert r["verdict"] == "noisy"
    assert "baseline: noisy: assessed on load (schema version 1 file)" in r["noise_reason"]


def test_no_common_case_is_a_clear_error(runs: dict) -> None:
    with pytest.raises(InvalidInputError, match="no common cases matching --model nomatch"):
        compare(runs["A"], runs["B"], models=["nomatch*"])


@pytest.mark.serial  # a real run whose verdict depends on a quiet CPU
def test_a_real_run_on_this_cpu_against_itself_and_a_slower_copy(tmp_path: Path) -> None:
    runner = pytest.importorskip("harness.run.runner")
    from harness.core.spec import Case

    options = runner.RunOptions(
        warmup_rounds=1,
        warmup_time_s=0.0,
        min_rounds=60,
        min_time_s=0.02,
        max_time_s=0.5,
        power="off",
        threads=1,
    )
    result = runner.run_case(Case("lenet5", (1, 32, 32)), options)
    assert result.status == "ok", result.row.get("error")
    names = set(schema.column_names("cases"))
    real = {k: v for k, v in result.row.items() if k in names}  # see the report: extra keys
    layers = result.layers[[c for c in result.layers.columns if c in schema.column_names("layers")]]
    with ResultWriter(tmp_path / "real") as w:
        w.add_case(real, layers=layers)
    lat = np.asarray(real["latency_s_samples"]) * 3  # the same machine, three times slower
    slow = {
        **real,
        "device_name": "three times slower",
        "latency_s_samples": lat,
        "latency_s_median": 3 * real["latency_s_median"],  # the windows' value, three times
        "throughput_per_s": real["batch_size"] / (3 * real["latency_s_median"]),
    }
    with ResultWriter(tmp_path / "slow") as w:
        w.add_case(slow)
    same = compare(tmp_path / "real", tmp_path / "real", labels=["run", "again"])
    # a loaded machine can make the row noisy: then no verdict but "noisy" may come from it
    allowed = {"same", "n/a"} if real["validity"] == "valid" else {"noisy", "same", "n/a"}
    assert set(same["verdict"]) <= allowed
    assert cell(same, "lenet5", "latency", input_shape="1x32x32")["ratio"] == 1.0
    df = compare(tmp_path / "real", tmp_path / "slow", metrics=["latency", "throughput"])
    lat_row = cell(df, "lenet5", "latency")
    assert lat_row["ratio"] == pytest.approx(3.0)
    # a shared CPU can be noisy enough for the interval to reach 1; the rule decides
    if real["validity"] == "valid":
        assert lat_row["ci_low"] <= 3.0 <= lat_row["ci_high"]
        assert lat_row["verdict"] == ("slower" if lat_row["ci_low"] > 1.02 else "same")
    else:
        assert lat_row["verdict"] == "noisy"
    assert cell(df, "lenet5", "throughput")["ratio"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------ CLI


def run_cli(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_sections_and_exit_0(runs: dict, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, runs["A"], runs["B"])
    assert code == 0 and err == ""
    for text in (
        "metric",
        "95% CI",
        "geometric mean of the ratios",
        "environment differences",
        "model definition changed",
        "only in the baseline (1 case(s))",
        "only in the candidate (1 case(s))",
        "1 duplicate case row(s) dropped",
        "a valid row beats",
        "1.0 GiB",
    ):
        assert text in out, text
    line = next(x for x in out.splitlines() if x.startswith("resnet18") and " latency " in x)
    assert line.split()[-1] == "slower"


def test_cli_formats_filters_and_sort(runs: dict, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(
        capsys, runs["A"], runs["B"], "--format", "csv", "--model", "resnet*", "--metric", "latency"
    )
    csv = pd.read_csv(StringIO(out))
    assert code == 0
    assert set(csv["model"]) == {"resnet18", "resnet34"} and set(csv["metric"]) == {"latency"}
    code, out, _ = run_cli(capsys, runs["A"], runs["B"], "--format", "json", "--sort", "ratio")
    doc = json.loads(out)
    assert set(doc) >= {"method", "inputs", "cases", "summary", "environment", "only"}
    ratios = [r["ratio"] for r in doc["cases"] if r["metric"] == "latency"]
    assert ratios[:-1] == sorted(ratios[:-1]) and ratios[-1] is None  # n/a sorts last
    code, out, _ = run_cli(
        capsys, runs["A"], runs["B"], "--format", "markdown", "--changed", "--metric", "latency"
    )
    assert out.startswith("|") and "\n### " in out
    cells = [[c.strip() for c in x.split("|")] for x in out.splitlines() if x.startswith("|")]
    latency_rows = [c[1] for c in cells if c[1] != "latency" and "latency" in c]
    assert latency_rows == ["resnet18", "resnet18", "lenet5", "resnet34"]  # vgg16's is the same


R18 = {"resnet18 b1", "resnet18 b8"}


@pytest.mark.parametrize(
    ("fail_on", "failing"),
    [
        ("latency_s_median:5%", R18),
        ("latency:150%", set()),
        ("throughput_per_s:40", R18),
        ("energy:60%", set()),
        ("energy:40%", {*R18, "vgg16 b1"}),
    ],
)
def test_cli_fail_on_exit_codes(
    runs: dict, capsys: pytest.CaptureFixture, fail_on: str, failing: set[str]
) -> None:
    # 2x slower resnet18, same vgg16, 2x faster lenet5; energy x1.5 (lenet5's unmeasured in A)
    got, _, err = run_cli(
        capsys,
        runs["A"],
        runs["B"],
        "--model",
        "resnet18",
        "--model",
        "vgg16",
        "--model",
        "lenet5",
        "--fail-on",
        fail_on,
    )
    assert got == (1 if failing else 0)
    listed = {" ".join(x.split()[2:5:2]) for x in err.splitlines() if x.startswith("  FAIL ")}
    assert listed == failing
    if failing:
        assert f"{len(failing)} regression(s) over the --fail-on thresholds" in err


def test_cli_bad_inputs_exit_2_with_one_line(
    runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"a": [1]}), foreign)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not parquet")
    cases = {
        "not a cnnbench result file": [foreign, runs["B"]],
        "not a readable result file": [runs["A"], corrupt],
        "no common cases": [runs["A"], runs["B"], "--model", "nomatch*"],
        "does not exist": [runs["A"], tmp_path / "missing"],
        "write METRIC:PERCENT": [runs["A"], runs["B"], "--fail-on", "latency"],
        "unknown metric 'speed'": [runs["A"], runs["B"], "--metric", "speed"],
    }
    for message, argv in cases.items():
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, message
        assert err.startswith("cnnbench compare: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_json_and_fail_on_exit_1(runs: dict, capsys: pytest.CaptureFixture) -> None:
    # (in this process: `python -m harness` exits with main()'s return value, and that entry
    # point runs in a child process, as a user runs it, in tests/test_cli_profile.py)
    code, out, err = run_cli(capsys, runs["A"], runs["B"], "--format", "json",
                             "--fail-on", "latency:5%")  # fmt: skip
    assert code == 1, err
    doc = json.loads(out)
    assert {(f["model"], f["batch_size"]) for f in doc["failures"]} == {
        ("resnet18", 1),
        ("resnet18", 8),
        ("resnet34", 1),
    }
    assert "FAIL latency_s_median resnet18" in err


# ------------------------------------------------------------------ missing values, said why


def test_na_rows_say_why(runs: dict) -> None:
    df = compare(runs["A"], runs["B"])
    oom = cell(df, "resnet34", "latency")
    assert oom["verdict"] == "n/a" and oom["na_reason"] == "candidate: oom: out of memory"
    # lenet5 has no energy in A: nothing in the row says why, so it was not recorded
    assert cell(df, "lenet5", "energy")["na_reason"] == "baseline: energy not recorded"
    assert cell(df, "resnet18", "latency")["na_reason"] == ""  # a ratio needs no reason
    # the same file twice is a sanity check, not an error: the second gets "#2"
    old = cell(compare(V1_FIXTURE, V1_FIXTURE), "lenet5", "memory")
    assert old["na_reason"] == "both: memory not recorded (a schema version 1 file)"
    assert old["candidate"] == f"{V1_FIXTURE} #2"
    assert cell(compare(V1_FIXTURE, V1_FIXTURE), "lenet5", "latency")["ratio"] == 1.0


def test_cli_lists_the_na_reasons_under_the_table(
    runs: dict, capsys: pytest.CaptureFixture
) -> None:
    code, out, _ = run_cli(capsys, runs["A"], runs["B"], "--model", "resnet34")
    assert code == 0
    block = out.split("n/a (no ratio) because:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block == [
        "  1 case (latency, throughput, energy, memory): candidate: oom: out of memory",
    ]
    # the four n/a rows of the one case are one line of the table (issue 13.8)
    rows = [x for x in out.split("per model")[0].splitlines() if x.startswith("resnet34")]
    assert len(rows) == 1 and "latency, throughput, energy, memory" in rows[0]
    assert rows[0].split()[-1] == "n/a"
    # the machine formats keep one row per metric
    code, out, _ = run_cli(capsys, runs["A"], runs["B"], "--model", "resnet34", "--format", "csv")
    assert list(pd.read_csv(StringIO(out))["metric"]) == ["latency", "throughput", "energy",
                                                          "memory"]  # fmt: skip


def test_cli_na_rows_of_one_case_with_different_reasons_stay_apart(
    runs: dict, capsys: pytest.CaptureFixture
) -> None:
    # lenet5: energy is missing in the baseline only; its other metrics have ratios
    code, out, _ = run_cli(capsys, runs["A"], runs["B"], "--model", "lenet5")
    assert code == 0
    table = out.split("per model")[0]
    assert [x.split()[-1] for x in table.splitlines() if x.startswith("lenet5")] == [
        "faster", "faster", "n/a", "same"
    ]  # fmt: skip
    block = out.split("n/a (no ratio) because:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block == ["  1 case (energy): baseline: energy not recorded"]


def test_cli_fail_on_a_metric_nobody_measured_warns(
    runs: dict, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run_cli(
        capsys, runs["A"], runs["B"], "--model", "lenet5", "--fail-on", "energy:5%"
    )
    assert code == 0
    assert err == (
        "cnnbench compare: warning: --fail-on energy_j_per_sample checked nothing: no case has "
        "it on both sides (the n/a reasons say why)\n"
    )
    # a status change is a check: it fails, with no warning
    code, _, err = run_cli(
        capsys, runs["A"], runs["B"], "--model", "resnet34", "--fail-on", "energy:5%"
    )
    assert code == 1 and "warning" not in err and "status ok -> oom" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ci-level", "2"], "--ci-level 2: pass a confidence level from 0.5 to 0.995"),
        (["--resamples", "5"], "--resamples 5 are too few for an interval: pass 100 to"),
        (["--model", "nomatch*"], "; the models in these files: alexnet, googlenet, lenet5, "),
    ],
)
def test_cli_settings_errors_name_the_fix(
    runs: dict, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, runs["A"], runs["B"], *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnbench compare: error: ") and message in err
    assert err.count("\n") == 1


def test_environment_bytes_are_humanised() -> None:
    from harness.cli.compare_text import _env_value

    assert _env_value("ram_bytes", "25276514304") == "23.5 GiB"  # 25276514304 / 2**30
    assert _env_value("gpu_memory_bytes", "85899345920, 42949672960") == "80.0 GiB, 40.0 GiB"
    assert _env_value("host", "25276514304") == "25276514304"
    assert _env_value("ram_bytes", "") == "-"


# ------------------------------------------------------------ issue 17: bounds and hygiene


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resamples", "1000000000000"], "--resamples 1000000000000 is more than the 100000 "),
        (["--resamples", "30000000"], "--resamples 30000000 is more than the 100000 "),
        (["--seed", "-1"], "--seed -1: the bootstrap seed must be 0 or more"),
    ],
)
def test_cli_bounds_the_bootstrap_options(
    runs: dict, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, runs["A"], runs["B"], *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnbench compare: error: ") and message in err, err
    assert err.count("\n") == 1


HOSTILE_MODEL = "evil\x1b]0;pwned\x07\x1b[31m|x|\r\nFAKE LINE\x9b2J"
HOSTILE_ERROR = "boom\x1b[2J\r\nresnet18 | 1.000 | same"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs whose strings try to drive the terminal and break markdown tables."""
    root = tmp_path_factory.mktemp("hostile")
    for name, device in (("A", "GPU A"), ("B", "GPU\x1b[5m B|")):
        with ResultWriter(root / name, run_id=f"{name.lower()}-run") as w:
            w.add_case(row(HOSTILE_MODEL, 1, samples(0.01 * (1 + (name == "B")), 1), device))
            if name == "A":
                w.add_case(row("vgg16", 1, samples(0.02, 2), device))
            else:
                w.add_case(
                    row("vgg16", 1, None, device, status="error", error=HOSTILE_ERROR,
                        peak_memory_bytes=None, energy_j_per_sample=None)
                )  # fmt: skip
    return {"A": root / "A", "B": root / "B"}


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_cli_prints_strings_from_result_files_inert(
    hostile: dict, capsys: pytest.CaptureFixture, fmt: str
) -> None:
    code, out, err = run_cli(
        capsys, hostile["A"], hostile["B"], "--format", fmt, "--fail-on", "latency:5%"
    )
    assert code == 1
    for text in (out, err):
        assert not CONTROL.search(text), repr(CONTROL.search(text))
        assert "\nFAKE LINE" not in text and "\nresnet18 | 1.000" not in text
    assert "FAIL latency_s_median evil\\x1b]0;pwned\\x07" in err
    if fmt == "markdown":  # every row of a table has its header's number of cells
        for block in out.split("\n\n"):
            lines = [x for x in block.splitlines() if x.startswith("|")]
            cells = {len(re.split(r"(?<!\\)\|", x)) for x in lines}
            assert len(cells) <= 1, block
        assert "evil\\x1b]0;pwned\\x07\\x1b[31m\\|x\\|\\r\\nFAKE LINE\\x9b2J" in out
    if fmt == "json":  # JSON escapes them itself and keeps the value exact
        doc = json.loads(out)
        assert {c["model"] for c in doc["cases"]} == {HOSTILE_MODEL, "vgg16"}
    if fmt == "table":
        assert "evil\\x1b]0;pwned\\x07\\x1b[31m|x|\\r\\nFAKE LINE\\x9b2J" in out


# ------------------------------------------------------------------------------- validity


def test_a_noisy_candidate_is_never_called_slower_nor_fails_a_gate(tmp_path: Path) -> None:
    """The issue's case: a quiet run against one taken under load (97x slower, FAIL)."""
    load = "CPU pressure 99% of the rounds: other tasks waited for a CPU (limit 10%)"
    with ResultWriter(tmp_path / "quiet") as a, ResultWriter(tmp_path / "loaded") as b:
        a.add_case(row("resnet1d18", 1, samples(0.009, 41), "CPU"))
        a.add_case(row("resnet18", 1, samples(0.030, 42), "CPU"))
        b.add_case(row("resnet1d18", 1, samples(0.876, 43, sigma=0.3), "CPU",
                       validity="noisy", validity_reason=load))  # fmt: skip
        b.add_case(row("resnet18", 1, samples(0.060, 44), "CPU"))  # really 2x slower, valid
    c = compare_runs(tmp_path / "quiet", tmp_path / "loaded", metrics=["latency", "memory"])
    noisy = cell(c.cases, "resnet1d18", "latency")
    assert noisy["ratio"] > 90 and noisy["verdict"] == "noisy"
    assert noisy["noise_reason"] == f"candidate: noisy: {load}"
    assert cell(c.cases, "resnet1d18", "memory")["verdict"] == "same"  # memory is not noise
    assert cell(c.cases, "resnet18", "latency")["verdict"] == "slower"
    gate = {"latency_s_median": 0.05}
    assert list(c.failures(gate)["model"]) == ["resnet18"]  # the noisy case is left out...
    assert set(c.failures(gate, include_noisy=True)["model"]) == {"resnet1d18", "resnet18"}
    assert c.noisy[["side", "model", "validity"]].values.tolist() == [
        ["candidate", "resnet1d18", "noisy"]
    ]
    # ...and from the geometric mean: only resnet18's 2x remains
    summary = c.summary.set_index("column").loc["latency_s_median"]
    assert summary["geomean_ratio"] == pytest.approx(2.0, rel=0.05)
    assert (summary["cases"], summary["noisy"], summary["slower"]) == (1, 1, 1)


def test_cli_lists_noisy_cases_and_gates_without_them(tmp_path: Path, capsys) -> None:
    with ResultWriter(tmp_path / "a") as a, ResultWriter(tmp_path / "b") as b:
        a.add_case(row("resnet18", 1, samples(0.030, 51), "CPU"))
        b.add_case(row("resnet18", 1, samples(0.300, 52), "CPU", validity="noisy",
                       validity_reason="load 2.8 on 2 cores (limit cores + 0.5)"))  # fmt: skip
    code, out, err = run_cli(capsys, tmp_path / "a", tmp_path / "b", "--fail-on", "latency:5%")
    assert code == 0, err
    assert "noisy" in out and "load 2.8 on 2 cores" in out
    assert "FAIL" not in out + err
    code, _, err = run_cli(
        capsys, tmp_path / "a", tmp_path / "b", "--fail-on", "latency:5%", "--include-noisy"
    )
    assert code == 1 and "resnet18" in err


def _raw_file(path: Path, rows: list[dict]) -> None:
    """Rows written around the writer's checks (as a foreign tool might): the loader and
    compare must not trust them."""
    path.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    full = {c: table.column(c) for c in table.column_names}
    arrays = [
        full[c.name].cast(c.type) if c.name in full else pa.nulls(len(rows), c.type)
        for c in schema.CASES
    ]
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema.arrow_schema("cases")),
                   path / "raw.parquet")  # fmt: skip


@pytest.mark.parametrize("bad", [-0.01, 0.0, float("inf")])
def test_impossible_latencies_are_invalid_never_faster(tmp_path: Path, bad: float) -> None:
    with ResultWriter(tmp_path / "a") as a:
        a.add_case(row("m", 1, samples(0.010, 61), "CPU"))
    base = {k: v for k, v in row("m", 1, None, "CPU").items() if k != "validity"}
    _raw_file(tmp_path / "b", [{**base, "schema_version": schema.SCHEMA_VERSION,
              "latency_s_median": bad, "throughput_per_s": 1.0}])  # fmt: skip
    c = compare_runs(tmp_path / "a", tmp_path / "b", metrics=["latency"])
    r = c.cases.iloc[0]
    assert r["verdict"] == "invalid"
    assert "a time or rate must be a finite positive number" in r["noise_reason"]
    assert c.failures({"latency_s_median": 0.05}).empty
    summary = c.summary.iloc[0]
    assert summary["cases"] == 0 and pd.isna(summary["geomean_ratio"])  # never inf, never 0


def test_the_writer_refuses_impossible_timings_in_an_ok_row(tmp_path: Path) -> None:
    with ResultWriter(tmp_path) as w, pytest.raises(InvalidInputError, match="impossible"):
        w.add_case(row("m", 1, np.array([0.01, -0.01, 0.02]), "CPU"))


def test_duplicates_keep_the_valid_row_and_say_why(tmp_path: Path) -> None:
    with ResultWriter(tmp_path) as w:
        w.add_case(row("m", 1, samples(0.010, 71), "CPU", timestamp_utc="2026-01-01T00:00:00Z"))
        noisy = {"validity": "noisy", "validity_reason": "IQR 36% of the median"}
        w.add_case(row("m", 1, samples(0.050, 72), "CPU", timestamp_utc="2026-01-02T00:00:00Z",
                       **noisy))  # fmt: skip
    c = compare_runs(tmp_path, tmp_path, labels=["x", "y"], metrics=["latency"])
    assert c.cases.iloc[0]["baseline_value"] == pytest.approx(0.010, rel=0.05)  # not the later
    info = c.inputs.iloc[0]
    assert info["duplicates_dropped"] == 1
    assert "noisy or invalid" in info["duplicates_why"]


@pytest.mark.parametrize("n", [1, 2, 7, 2000])
def test_fast_quantiles_are_numpys_default(n: int) -> None:
    from harness.compare.bootstrap import quantiles

    x = np.random.default_rng(n).standard_normal(n)
    levels = [0.025, 0.5, 0.975]
    assert quantiles(x, levels) == pytest.approx(np.quantile(x, levels).tolist(), abs=1e-12)
