"""The plugin as a user runs it, for sweeps: crashes survived, pytest-xdist workers writing one
run, the budget, thread sweeps, models named on the command line, smoke runs, reports by
choice, and bad directories found before anything is measured.

pytester runs in this process (pytest's inline mode: the same plugin, hooks, files and output
as a child's, without importing torch again); the cases still run in the fork server's real
children unless a test says --cnn-isolate=none. pytest-xdist's workers are real processes, and
so is the run that three Ctrl-Cs stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results.store import load_results

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--benchmark-only",
    "--cnn-min-time=0.01",
    "--cnn-min-rounds=3",
    "--cnn-max-time=0.3",
    "--cnn-warmup-rounds=1",
    "--cnn-target-ci=0",
    "--cnn-remeasure=0",
    "--cnn-power=off",
    "-p",
    "no:cacheprovider",
]
# where crash isolation is not what a test is about, the cases run in the pytest process
IN_PROCESS = [*FAST, "--cnn-isolate=none"]
M = "tests.models_for_tests:"


@pytest.fixture
def here(
    plugin_modules: None, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return pytester


CRASH_SUITE = f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn", "{M}aborts_in_forward", "lenet5"])
def test_three(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


def test_a_case_that_kills_its_process_is_a_crashed_row_and_the_sweep_goes_on(here):
    here.makepyfile(test_crash=CRASH_SUITE)
    results = here.path / "results"
    out = here.runpytest(f"--cnn-results-dir={results}", "--cnn-no-report", *FAST)
    out.assert_outcomes(passed=2, failed=1)
    df = load_results(results)
    # one block: the crash ended its row first (at its first call); the others after their windows
    assert dict(zip(df["model"], df["status"], strict=True)) == {
        f"{M}tiny_cnn": "ok",
        f"{M}aborts_in_forward": "crashed",
        "lenet5": "ok",
    }
    crashed = df[df["status"] == "crashed"].iloc[0]
    assert crashed["error"].startswith("the case killed its process: SIGABRT")
    assert "models_for_tests.py" in crashed["error"]  # faulthandler's innermost frame
    assert set(df["isolation"]) == {"model"}
    out.stdout.fnmatch_lines(["*aborts_in_forward*crashed: the case killed its process: SIGABRT*"])


def test_without_isolation_the_same_suite_is_measured_in_process(here):
    here.makepyfile(
        test_one=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn"], batch_sizes=[1, 2])
def test_one(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    results = here.path / "results"
    out = here.runpytest(
        f"--cnn-results-dir={results}", "--cnn-no-report", "--cnn-isolate=none", *FAST
    )
    out.assert_outcomes(passed=2)
    assert set(load_results(results)["isolation"]) == {"none"}


def test_xdist_workers_write_one_run_with_every_row_and_one_report(here):
    here.makepyfile(
        test_two=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn", "lenet5"], batch_sizes=[1, 2])
def test_models(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    results, reports = here.path / "results", here.path / "reports"
    # the workers are real processes; the cases run in them (crash isolation is not what this
    # is about, and each worker's fork server would import torch once more)
    out = here.runpytest(
        "-n", "2", f"--cnn-results-dir={results}", f"--cnn-reports-dir={reports}", *IN_PROCESS
    )
    out.assert_outcomes(passed=4)
    files = sorted(p.name for p in results.iterdir())
    assert len([f for f in files if f.endswith(".parquet") and ".layers." not in f]) == 1, files
    assert not [f for f in files if f.endswith(".parts")]  # merged by the controller
    df = load_results(results)
    assert len(df) == 4 and df["run_id"].nunique() == 1 and df["run_complete"].all()
    assert set(df["worker"]) <= {"gw0", "gw1"}
    # one model's cases stay on one worker (--dist loadgroup), each worker on its own core
    assert df.groupby("model")["worker"].nunique().max() == 1
    for _, rows in df.groupby("worker"):
        assert rows["cpu_affinity"].nunique() == 1 and rows["cpu_threads"].eq(1).all()
    if df["worker"].nunique() == 2:
        assert df["cpu_affinity"].nunique() == 2  # disjoint cores
    assert len(list(reports.glob("*.html"))) == 1
    out.stdout.fnmatch_lines(["*cnnbench summary*", "results (cases): *.parquet", "report: *.html"])


def test_too_many_cpu_workers_is_one_usage_line(here):
    here.makepyfile(test_x="def test_x(): pass")
    out = here.runpytest("-n", str((os.cpu_count() or 1) + 1), "--cnn-device=cpu")
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines(["*asks for more workers than the * CPU(s)*"])


def test_a_budget_skips_the_cases_that_would_not_fit(here):
    here.makepyfile(
        test_budget=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}sleeper_10ms"], batch_sizes=[1, 2, 3, 4, 5, 6])
def test_budget(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    results = here.path / "results"
    out = here.runpytest(
        f"--cnn-results-dir={results}", "--cnn-no-report", "--cnn-max-minutes=0.03", *IN_PROCESS
    )
    df = load_results(results)
    assert len(df) == 6  # every case has a row
    skipped = df[df["status"] == "skipped"]
    assert len(skipped) >= 1 and skipped["error"].str.startswith("budget: ").all()
    # the order covered the smallest and the largest batch first
    assert df["batch_size"].tolist()[:2] == [1, 6]
    out.stdout.fnmatch_lines(["*budget: *"])


def test_a_thread_sweep_is_a_grid_dimension(here):
    here.makepyfile(
        test_threads=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn"])
def test_threads(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    results = here.path / "results"
    out = here.runpytest(
        f"--cnn-results-dir={results}", "--cnn-no-report", "--cnn-threads=1,2", *IN_PROCESS
    )
    out.assert_outcomes(passed=2)
    df = load_results(results)
    assert df["threads"].tolist() == [1, 2] and df["cpu_threads"].tolist() == [1, 2]
    assert df["case_id"].str.contains("-t1-").sum() == 1


def test_a_model_named_on_the_command_line_runs_without_a_suite_listing_it(here):
    here.makepyfile(
        test_suite=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn"])
def test_tiny(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    results = here.path / "results"
    out = here.runpytest(
        f"--cnn-results-dir={results}", "--cnn-no-report",
        f"--cnn-models={M}tiny_cnn,{M}sleeper_10ms", "--cnn-input-shape=3x20x20", *IN_PROCESS,
    )  # fmt: skip
    out.assert_outcomes(passed=2)
    df = load_results(results).set_index("model")
    named = df.loc[f"{M}sleeper_10ms"]
    assert named["test_name"].endswith("builtin_suite.py::test_named_models")
    assert named["input_shape"] == "3x20x20"  # --cnn-input-shape replaces every model's input
    assert df.loc[f"{M}tiny_cnn", "input_shape"] == "3x20x20"
    assert df.loc[f"{M}tiny_cnn", "test_name"].endswith("test_suite.py::test_tiny")


def test_an_unknown_named_model_is_one_usage_line(here):
    here.makepyfile(test_x="def test_x(): pass")
    out = here.runpytest("--cnn-models=nosuchpkg.mod:factory", *FAST)
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines(["ERROR: --cnn-models: *nosuchpkg*"])
    assert "Traceback" not in out.stderr.str()


def test_benchmark_disable_is_a_smoke_run_that_writes_nothing(here):
    here.makepyfile(
        test_smoke=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn"], batch_sizes=[1, 2])
def test_smoke(cnn_case, cnn_bench):
    r = cnn_bench(cnn_case)
    assert r.row["rounds"] == 1
"""
    )
    out = here.runpytest("--benchmark-disable", "--cnn-isolate=none", "-p", "no:cacheprovider")
    out.assert_outcomes(passed=2)
    assert not (here.path / "results").exists() and not (here.path / "reports").exists()
    out.stdout.fnmatch_lines(["*no results written (a smoke run: --benchmark-disable)*"])


def test_benchmark_histogram_without_pygal_is_one_line(here):
    pytest.importorskip("xdist")
    try:
        import pygal  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pygal is installed: the histogram works")
    here.makepyfile(test_x="def test_x(): pass")
    out = here.runpytest("--benchmark-histogram", "-p", "no:cacheprovider")
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines(["*--benchmark-histogram needs pygal*pip install*"])


REPORT_SUITE = f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn"])
def test_tiny(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


@pytest.mark.parametrize(
    ("args", "report"),
    [([], True), (["-k", "tiny"], False), (["-x"], False), (["-k", "tiny", "--cnn-report"], True)],
)
def test_a_report_is_written_unless_the_run_was_narrowed(here, args, report):
    here.makepyfile(test_r=REPORT_SUITE)
    reports = here.path / "reports"
    here.runpytest(
        f"--cnn-results-dir={here.path / 'results'}",
        f"--cnn-reports-dir={reports}",
        *args,
        *IN_PROCESS,
    )
    assert bool(list(reports.glob("*.html"))) == report


def test_an_unwritable_results_directory_is_found_before_measuring(here):
    here.makepyfile(test_r=REPORT_SUITE)
    out = here.runpytest("--cnn-results-dir=/proc/x", *FAST)
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines(["ERROR: cannot write results to /proc/x: *"])
    assert "Traceback" not in out.stderr.str()


@pytest.mark.slow
def test_repeated_ctrl_c_leaves_rows_and_no_temporary_file(here):
    here.makepyfile(
        test_many=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}sleeper_10ms"], batch_sizes=list(range(1, 40)))
def test_many(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    results = here.path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--cnn-results-dir={results}", "--cnn-no-report", *FAST],
        cwd=here.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until three cases have finished
        seen.append(line)
        if line.startswith("[ 3/"):
            break
    for _ in range(3):  # Ctrl-C three times: the terminal signals the whole group
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.15)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert not list(results.rglob("*.tmp")), output
    df = load_results(results)
    assert len(df) >= 3 and not df["run_complete"].any(), output
    assert "run interrupted: every finished case is on disk" in output


def test_a_large_cpu_sweep_says_its_size_and_time_before_it_starts(here):
    here.makepyfile(test_r=REPORT_SUITE)
    sizes = ",".join(str(b) for b in range(1, 121))
    out = here.runpytest("--co", "-q", f"--cnn-batch-sizes={sizes}", "--cnn-device=cpu")
    out.stdout.fnmatch_lines(
        ["cnnbench plan: 120 cases on cpu: about * (* to * by the timing settings)*"
         "Narrow it with --cnn-models*"]
    )  # fmt: skip
    small = here.runpytest("--co", "-q", "--cnn-batch-sizes=1,2", "--cnn-device=cpu")
    assert "cnnbench plan" not in small.stdout.str()


def test_cnn_plan_prints_the_estimate_and_measures_nothing(here):
    """Issue 22 item 12: the case count and the duration the settings imply, then exit 0."""
    here.makepyfile(test_r=REPORT_SUITE)
    results = here.path / "results"
    out = here.runpytest(
        "--cnn-plan", "--cnn-batch-sizes=1,2,4", "--cnn-device=cpu", f"--cnn-results-dir={results}"
    )
    assert out.ret == 0
    out.stdout.fnmatch_lines(["cnnbench plan: 3 cases on cpu: about * s (*); a case: * fixed + *"])
    assert not results.exists() or not list(results.rglob("*.parquet"))
