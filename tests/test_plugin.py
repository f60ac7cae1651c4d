"""The pytest plugin run as a user runs it: pytester runs in this process (pytest's inline
mode: the same plugin, options, hooks, files and output as a child's, without importing torch
again), and real child processes where the process is the point (SIGKILL, Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import ResultFileError
from harness.results.store import load_results

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--cnn-min-time=0.01",
    "--cnn-min-rounds=3",
    "--cnn-max-time=0.5",
    "--cnn-target-ci=0",  # no test here is about when the rounds stop
    "--cnn-warmup-rounds=1",
    "--cnn-remeasure=0",
    "--cnn-power=off",
    "-p",
    "no:cacheprovider",
]

SUITE = """
import pytest

M = "tests.models_for_tests:"

@pytest.mark.cnnbench(models=[M + "tiny_cnn"], batch_sizes=[1, 2])
def test_tiny(cnn_case, cnn_bench):
    cnn_bench(cnn_case)

@pytest.mark.cnnbench(models=[M + "failing_above_batch_1"], batch_sizes=[1, 2, 3])
def test_failing(cnn_case, cnn_bench):
    cnn_bench(cnn_case)

@pytest.mark.cnnbench(models=[M + "oom_from_batch_4"], batch_sizes=[1, 4, 8])
def test_oom(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


@pytest.fixture
def suite(
    plugin_modules: None, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_run_writes_one_row_per_case_and_goes_on_after_failures(suite: pytest.Pytester):
    results = suite.path / "results"
    out = suite.runpytest(
        "--benchmark-only",
        f"--cnn-results-dir={results}",
        "--cnn-no-report",
        f"--benchmark-json={suite.path / 'bench.json'}",
        *FAST,
    )
    out.assert_outcomes(passed=4, failed=2, skipped=2)
    out.stdout.fnmatch_lines(
        [
            "*cnnbench summary*",
            "*model*input*batch*dtype*mode*median*IQR*throughput*peak mem*status*validity*test",
            "*tiny_cnn*3x16x16*2*float32*inference*ok*",
            "*failing_above_batch_1*error: ValueError: this model refuses batch 2*",
            "*oom_from_batch_4*oom*",
            "*oom_from_batch_4*skipped: batch 4 already ran out of memory*",
            "results (cases): *.parquet",
            "results (layers): *.layers.parquet",
        ]
    )
    df = load_results(results)
    assert len(df) == 8
    assert df["run_complete"].all()
    by_status = df.groupby("status")["case_id"].count().to_dict()
    assert by_status == {"ok": 4, "error": 2, "oom": 1, "skipped": 1}
    ok = df[df["status"] == "ok"]
    assert ok["latency_s_median"].notna().all() and ok["throughput_per_s"].gt(0).all()
    assert df[df["status"] != "ok"]["latency_s_median"].isna().all()
    layers = load_results(results, table="layers")
    assert set(layers["case_id"]) >= set(ok["case_id"])
    # pytest-benchmark kept working, with the harness's metrics in extra_info
    bench = json.loads((suite.path / "bench.json").read_text())
    tiny = [b for b in bench["benchmarks"] if "tiny_cnn" in b["name"]]
    assert len(tiny) == 2
    assert tiny[0]["extra_info"]["macs"] > 0 and tiny[0]["extra_info"]["status"] == "ok"
    assert tiny[0]["stats"]["rounds"] == len(
        ok[ok["case_id"] == tiny[0]["param"]]["latency_s_samples"].iloc[0]
    )
    assert "cnnbench" in bench["machine_info"]


def test_options_documented_in_pytest_help(plugin_modules: None, pytester: pytest.Pytester):
    out = pytester.runpytest("--help")
    out.stdout.fnmatch_lines(
        [
            "*CNN benchmarking*",
            "*--cnn-device=DEVICE*",
            "*--cnn-scale=*",
            "*--cnn-models=*",
            "*--cnn-batch-sizes=*",
            "*--cnn-power=*",
            "*--cnn-results-dir=*",
            "*--cnn-no-report*",
        ]
    )


def test_ini_options_and_filters(suite: pytest.Pytester):
    suite.makeini("[pytest]\ncnn_batch_sizes = 2\ncnn_report = false\n")
    out = suite.runpytest(
        "--benchmark-only",
        f"--cnn-results-dir={suite.path / 'r'}",
        "--cnn-models=*tiny*",
        "--cnn-isolate=none",  # not about crash isolation: the cases run in this process
        *FAST,
    )
    out.assert_outcomes(passed=1, skipped=2)
    df = load_results(suite.path / "r")
    assert list(df["batch_size"]) == [2]


@pytest.mark.parametrize(
    "option, message",
    [
        ("--cnn-batch-sizes=one", "*batch sizes must be integers*"),
        ("--cnn-threads=0", "*--cnn-threads: 0 is not a usable thread count*"),
        ("--cnn-device=tpu", "*'tpu' is not a device: use auto, cpu, cuda or cuda:N*"),
        ("--cnn-models=tiny_cn", "*'tiny_cn' matches no model of the collected suites*"),
    ],
)
def test_bad_option_is_a_usage_error(suite: pytest.Pytester, option: str, message: str):
    out = suite.runpytest(option, "--cnn-no-report", *FAST)
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines([message])


def _slow_suite(tmp_path: Path) -> Path:
    (tmp_path / "test_slow.py").write_text(
        "import pytest\n"
        "M = 'tests.models_for_tests:'\n"
        "@pytest.mark.cnnbench(models=[M + 'tiny_cnn'], batch_sizes=list(range(1, 200)))\n"
        "def test_many(cnn_case, cnn_bench):\n"
        "    cnn_bench(cnn_case)\n"
    )
    return tmp_path


def _start(tmp_path: Path, *options: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_slow.py"),
            "--benchmark-only",
            f"--cnn-results-dir={tmp_path / 'results'}",
            "--cnn-no-report",
            "-q",
            *options,
            *FAST,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_for_rows(tmp_path: Path, proc: subprocess.Popen, n: int, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            rows = len(load_results(tmp_path / "results"))
        except ResultFileError:  # nothing written yet
            rows = 0
        if rows >= n:
            return rows
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        time.sleep(0.2)
    raise AssertionError("the sweep wrote no rows in time")


def test_sigkill_mid_sweep_leaves_every_finished_case_on_disk(tmp_path: Path):
    # the pytest process is what is killed; the cases run in it (crash isolation is not what
    # this is about, and it spares the fork server's import of torch)
    proc = _start(_slow_suite(tmp_path), "--cnn-isolate=none")
    try:
        seen = _wait_for_rows(tmp_path, proc, 3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    df = load_results(tmp_path / "results")
    assert len(df) >= seen >= 3
    assert list(df["batch_size"]) == list(range(1, len(df) + 1))
    assert not df["run_complete"].any()
    assert (df["status"] == "ok").all()


def test_ctrl_c_keeps_rows_and_marks_the_run_incomplete(tmp_path: Path):
    proc = _start(_slow_suite(tmp_path))
    try:
        _wait_for_rows(tmp_path, proc, 2)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "run interrupted" in output
    df = load_results(tmp_path / "results")
    assert len(df) >= 2 and not df["run_complete"].any()


def test_a_bad_marker_is_one_line_naming_the_suite(plugin_modules: None, pytester: pytest.Pytester):
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.cnnbench(model=["lenet5"])
def test_bad(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    out = pytester.runpytest("--cnn-no-report", *FAST)
    assert out.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the session
    # ("[" opens a character class in fnmatch: "?" stands for the brackets)
    out.stdout.fnmatch_lines(["test_bad.py::test_bad: unknown cnnbench marker key(s) ?'model'?*"])
    out.stdout.no_fnmatch_line("*Traceback*")
    out.stdout.no_fnmatch_line("*pluggy/_*")  # no frame of the hook machinery
