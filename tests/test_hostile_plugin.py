"""The pytest plugin against issue 24's hostile user: runs stopped early must not claim to be
complete, SIGTERM (what Slurm and Kubernetes send) stops a run as Ctrl-C does and leaves no
process behind, ``-p no:benchmark`` runs, and ``-n`` never oversubscribes the cores silently.
In-process (pytester inline, ``--cnn-isolate=none``) where the process adds nothing; real
processes and real signals where they are the point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch._dynamo  # noqa: F401

# Imported here, before any inline run: pytester drops the modules a run imported when it ends,
# and torch's extension cannot be imported a second time in one process.
import harness.plugin.session
import harness.run.sweep  # noqa: F401
from harness.results.runs import select_runs
from harness.results.store import load_results

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--benchmark-only", "--cnn-min-time=0.01", "--cnn-min-rounds=3", "--cnn-max-time=0.2",
        "--cnn-warmup-rounds=1", "--cnn-remeasure=0", "--cnn-power=off", "--cnn-no-report",
        "-p", "no:cacheprovider"]  # fmt: skip

SUITE = """
import pytest

@pytest.mark.cnnbench(models=["tests.hostile:raises", "tests.hostile:tiny"], batch_sizes=[1, 2])
def test_grid(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


@pytest.fixture
def here(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(ROOT))
    pytester.makepyfile(test_grid=SUITE)
    return pytester


def _inline(here: pytest.Pytester, results: Path, *args: str) -> pytest.RunResult:
    return here.runpytest_inprocess(
        f"--cnn-results-dir={results}", "--cnn-isolate=none", *args, *FAST
    )


# ----------------------------------------------- item 4: a run stopped early is not complete


INTERNAL_ERROR = """
def pytest_runtest_logfinish(nodeid, location):
    if "tiny-3x16x16-b1" in nodeid:
        raise RuntimeError("a plugin broke")
"""


@pytest.mark.parametrize("stop", ["-x", "--maxfail=1", "internalerror"])
def test_a_run_stopped_early_is_incomplete_and_not_preferred(here, stop: str) -> None:
    results = here.path / "results"
    full = _inline(here, results)  # every case runs (two fail: the model raises)
    full.assert_outcomes(passed=2, failed=2)
    args = [stop]
    if stop == "internalerror":
        here.makeconftest(INTERNAL_ERROR)
        args = []
    early = _inline(here, results, *args)
    assert early.ret in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERNAL_ERROR)
    df = load_results(results)
    runs = df.groupby("run_id", sort=False)["run_complete"].agg(["all", "size"])
    first, second = runs.index  # in file order: the full run, then the truncated one
    assert runs.loc[first].tolist() == [True, 4]
    assert runs.loc[second, "all"] == False  # noqa: E712 (a numpy bool)
    # (its rows: those of the blocks measured before it stopped, up to all 4: a block's cases
    # are measured together and every row measured is kept)
    chosen = select_runs(df).runs
    assert chosen.loc[chosen["chosen"], "run_id"].tolist() == [first]
    if stop != "internalerror":
        early.stdout.fnmatch_lines(["run incomplete (stopped early: *): every finished case*"])


def test_a_whole_run_with_failing_cases_is_complete(here) -> None:
    results = here.path / "results"
    _inline(here, results, "-k", "tiny").assert_outcomes(passed=2, deselected=2)
    assert load_results(results)["run_complete"].all()  # -k narrows, it does not truncate


# ------------------------------------------------ item 13: pytest-benchmark turned off


def test_the_plugin_runs_without_pytest_benchmark(here) -> None:
    results = here.path / "results"
    out = here.runpytest_inprocess(
        "-p", "no:benchmark", f"--cnn-results-dir={results}", "--cnn-isolate=none",
        *[a for a in FAST if a != "--benchmark-only"],
    )  # fmt: skip
    assert out.ret == pytest.ExitCode.TESTS_FAILED  # the model that raises fails, as usual
    out.assert_outcomes(passed=2, failed=2)
    assert "INTERNALERROR" not in out.stdout.str()
    out.stdout.fnmatch_lines(
        ["pytest-benchmark is not loaded (-p no:benchmark): * --benchmark-* options need it"]
    )
    assert len(load_results(results)) == 4


# ------------------------------------------- Low: -n N with more threads than cores per worker


def test_more_threads_than_a_workers_cores_is_a_usage_error(here: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = here.runpytest_subprocess(
        "-n", str(cores), "--cnn-threads=2", "--cnn-device=cpu", "-p", "no:cacheprovider"
    )
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines(
        [f"ERROR: -n {cores} with --cnn-threads=2: each worker is pinned to 1 of the {cores} "
         "CPU(s)*pass --cnn-threads of at most 1, or fewer workers"]
    )  # fmt: skip


# ------------------------------------------------------------ item 10: SIGTERM as Ctrl-C

SIGNAL_SUITE = """
import pytest

@pytest.mark.cnnbench(models=["hostile:tiny", "hostile:hang"], batch_sizes=[1])
def test_sig(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


def _session_processes(sid: int) -> list[str]:
    """The processes still alive in session ``sid`` (Linux /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # session id; zombies are gone
            alive.append(text.split(")", 1)[0] + ")")
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize(
    ("workers", "group"),
    [(0, False), (2, False), (0, True)],
    ids=["one-process", "xdist-n2", "whole-group"],
)
def test_sigterm_stops_the_run_as_ctrl_c_and_ends_every_process(
    tmp_path: Path, workers: int, group: bool
) -> None:
    """A case hangs in its child when SIGTERM comes: to the pytest process alone (as `kill` or
    Kubernetes send it) or to every process of the run (as Slurm's scancel does). The run's
    files are merged and marked incomplete, the summary is printed, the hung case has its row,
    and the case child, the fork server and the resource tracker all end."""
    if workers:
        pytest.importorskip("xdist")
    (tmp_path / "test_sig.py").write_text(SIGNAL_SUITE)
    results = tmp_path / "results"
    mark = tmp_path / "hanging"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
           "HOSTILE_HANG_MARK": str(mark)}  # fmt: skip
    argv = [sys.executable, "-m", "pytest", "test_sig.py", f"--cnn-results-dir={results}",
            *(["-n", str(workers)] if workers else []), *FAST]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    seen = []
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and time.monotonic() < deadline:  # the hang has begun
            time.sleep(0.2)
        assert mark.exists(), "the hung case never started"
        time.sleep(1)
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = "".join(seen) + rest
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output[-4000:]
    assert "run interrupted by SIGTERM: every finished case is on disk" in output, output[-4000:]
    for bad in ("PluggyTeardownRaisedWarning", "cannot send", "Traceback", "INTERNALERROR"):
        assert bad not in output, output[-4000:]
    df = load_results(results)
    # merged: the run's files, no part streams left (a layers file only if a row had layers)
    assert set(df["run_id"]) and list(results.glob("*.parquet"))
    assert not list(results.glob("*.parts"))
    assert not df["run_complete"].any()
    status = dict(zip(df["model"], df["status"], strict=True))
    error = dict(zip(df["model"], df["error"], strict=True))
    assert status["hostile:hang"] == "error" and error["hostile:hang"].startswith("interrupted")
    # the tiny case finished, or was interrupted in the hung case's block (its windows
    # interleave with the hung one's: harness.run.schedule)
    assert status["hostile:tiny"] == "ok" or error["hostile:tiny"].startswith("interrupted")
    deadline = time.monotonic() + 90  # the fork server ends when its parent has (torch's exit)
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _session_processes(proc.pid) == []
