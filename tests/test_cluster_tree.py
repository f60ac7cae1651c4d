"""Shards through the pytest plugin, as a scheduler's tasks run them (pytester, a subprocess
each): the shards of a sweep, with and without xdist, write one run into the results tree that
load_results, compare, report and claims read as one; a shard run again does only what is
missing; bad input and a second writer of one shard are one line, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.claims.rows import Measured
from harness.cli.main import main
from harness.cluster.plan import record_plan
from harness.cluster.shard import plan
from harness.cluster.status import sweep_status
from harness.cluster.tree import ShardLock, counts_as_done
from harness.core.spec import Case
from harness.results import ResultWriter, load_results, tree
from harness.results.runs import pick_one_per_case, select_runs

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--benchmark-only", "--cnn-min-time=0.01", "--cnn-min-rounds=3", "--cnn-max-time=0.2",
    "--cnn-warmup-rounds=1", "--cnn-remeasure=0", "--cnn-power=off", "--cnn-isolate=none",
    "--cnn-no-report", "-p", "no:cacheprovider",
]  # fmt: skip
SUITE = """
import pytest

M = "tests.models_for_tests:"

@pytest.mark.cnnbench(models=[M + "tiny_cnn", M + "sleeper_10ms"], batch_sizes=[1, 2])
def test_small(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
SLOW_SUITE = """
import pytest

M = "tests.models_for_tests:"

@pytest.mark.cnnbench(models=[M + "sleeper_10ms"], batch_sizes=[1, 2, 3, 4])
def test_slow(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makepyfile(test_suite=SUITE, test_slow=SLOW_SUITE)
    return pytester


def _pytest(suite: pytest.Pytester, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=suite.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_an_xdist_shard_of_another_grid_is_refused_in_one_line(suite):
    """A plain shard, then one under -n 2 without --cnn-threads: the xdist workers run one
    thread each, so their cases (a thread count in the key) are another grid than the sweep's
    plan. The workers' refusal reaches the controller: one line, a usage error, nothing run
    (it used to be an INTERNALERROR from xdist's scheduler)."""
    root = suite.path / "tree"
    args = ["test_suite.py", *FAST, f"--cnn-results-dir={root}", "--cnn-sweep=A"]
    first = _pytest(suite, *args, "--cnn-shard=1/2")
    assert first.wait(timeout=180) == 0
    second = _pytest(suite, *args, "--cnn-shard=2/2", "-n", "2")
    out = second.communicate(timeout=180)[0]
    assert second.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "INTERNALERROR" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("ERROR: ")]
    assert len(errors) == 1 and "collected another grid than the sweep's plan" in errors[0], out
    assert not list((root / "sweep=A").glob("host=*/shard=2of2/*.parquet"))


def test_two_shards_with_and_without_xdist_are_one_run_beside_another_sweep(suite, capsys):
    root = suite.path / "tree"
    # one thread in both shards: an xdist worker runs one thread on its core, and the thread
    # count is part of a case (the same grid, the same plan, for both shards)
    args = ["test_suite.py", *FAST, f"--cnn-results-dir={root}", "--cnn-threads=1"]
    # Sweep A's two shards (one under xdist) and another sweep, B, into one tree at once.
    runs = [
        _pytest(suite, *args, "--cnn-shard=1/2", "--cnn-sweep=A"),
        _pytest(suite, *args, "--cnn-shard=2/2", "--cnn-sweep=A", "-n", "2"),
    ]
    with ResultWriter(tree.leaf_dir(root, "B", 1, 1, "other-host"), run_id="B") as writer:
        for b in (1, 2, 3, 4):
            writer.add_case(
                {"case_id": f"b{b}", "model": "net", "batch_size": b, "status": "error"}
            )
    outs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert "shard 1/2 of sweep A: 2 of the grid's 4 cases" in outs[0]

    host = tree.host_name()
    assert tree.is_tree(root)
    assert [p.relative_to(root).as_posix() for p in tree.leaves(root, "A")] == [
        f"sweep=A/host={host}/shard=1of2",
        f"sweep=A/host={host}/shard=2of2",
    ]
    plan = json.loads((root / "sweep=A" / "plan.json").read_text())
    assert sorted(plan["cases"].values()) == [1, 1, 2, 2]

    sweep_a = tree.leaves(root, "A")
    df = load_results(sweep_a)
    assert len(df) == 4 and df["case_id"].is_unique  # every case once
    assert set(df["run_id"]) == {"A"} and df["run_complete"].all()
    assert "main" in set(df["worker"]) and set(df["worker"]) & {"gw0", "gw1"}
    # One run, one configuration (1 CPU thread in every case), no row dropped.
    selection = select_runs(df)
    assert set(selection.runs["run_id"]) == {"A"} and selection.runs["chosen"].all()
    assert len(selection.frame) == 4
    everything = load_results(root)  # the tree's root: both sweeps
    assert sorted(everything["run_id"].value_counts().to_dict().items()) == [("A", 4), ("B", 4)]
    measured = Measured(df)
    assert not measured.notes  # claims: one run per configuration, nothing left out
    # one configuration: claims read its one setting (a batch size) holding both models
    assert [len(rows.frame) for rows in measured.groups([])] == [2]

    status = sweep_status(root, "A")
    assert status.complete and [s.state for s in status.shards] == ["complete", "complete"]
    a = str(root / "sweep=A")
    capsys.readouterr()
    assert main(["compare", a, a, "--metric", "latency", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 4  # a header, A's cases
    assert main(["report", str(root), "-o", str(suite.path / "r.html")]) == 0
    assert (suite.path / "r.html").stat().st_size > 10_000


def test_a_shard_interrupted_then_run_again_does_only_what_is_missing(suite):
    root = suite.path / "tree"
    args = ["test_slow.py", *FAST, "--cnn-min-time=0.3", f"--cnn-results-dir={root}",
            "--cnn-shard=1/1", "--cnn-sweep=S"]  # fmt: skip
    proc = _pytest(suite, *args)
    leaf = tree.leaf_dir(root, "S", 1, 1, tree.host_name())
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # Ctrl-C once two cases are on disk
        parts = list(leaf.glob("S.parts/*.cases.arrows"))
        if parts and len(load_results(leaf)) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    first = load_results(leaf)
    finished = first[
        [counts_as_done(*r) for r in zip(first["status"], first["error"], strict=True)]
    ]
    assert 2 <= len(finished) < 4, out  # (the case Ctrl-C cut short has a row: "interrupted")
    assert not first["run_complete"].any()  # merged, marked incomplete
    status = sweep_status(root, "S")
    assert status.shards[0].state == "incomplete" and status.incomplete() == [1]

    again = suite.runpytest_subprocess(*args)
    assert again.ret == 0, again.stdout.str()
    done_before = len(finished)
    assert f"{4 - done_before} of the grid's 4 cases ({done_before} done" in again.stdout.str()
    df = load_results(leaf)
    assert df["run_complete"].all() and set(df["case_id"]) == set(first["case_id"]) | set(
        df.loc[df["status"] == "ok", "case_id"]
    )
    kept, _ = pick_one_per_case(df)  # what compare, report and claims keep: each case measured
    assert len(kept) == 4 and (kept["status"] == "ok").all()
    assert set(finished["timestamp_utc"]) <= set(df["timestamp_utc"])  # the first run's rows kept
    assert sweep_status(root, "S").complete


def test_a_second_writer_of_one_shard_is_refused_and_nothing_is_lost(suite):
    root = suite.path / "tree"
    leaf = tree.leaf_dir(root, "A", 1, 2, tree.host_name())
    tree.mark_tree(root)
    with ResultWriter(leaf, run_id="A") as writer:  # an earlier, finished run of the shard
        writer.add_case({"case_id": "x", "model": "x", "status": "error", "error": "kept"})
    before = {p.name: p.read_bytes() for p in leaf.glob("*.parquet")}
    lock = ShardLock.acquire(leaf, "x")  # this process holds the shard, as a run going on would
    try:
        result = suite.runpytest_subprocess(
            "test_suite.py", *FAST, f"--cnn-results-dir={root}", "--cnn-shard=1/2", "--cnn-sweep=A"
        )
    finally:
        lock.release()
    err = result.stderr.str().strip().splitlines()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(err) == 1 and "shard 1/2 of sweep A is being written by another run" in err[0]
    assert f"pid {os.getpid()}" in err[0]
    assert {p.name: p.read_bytes() for p in leaf.glob("*.parquet")} == before


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--cnn-shard=3/2", "--cnn-sweep=A"], "--cnn-shard=3/2: the shard must be from 1 to 2"),
        (["--cnn-shard=0/0", "--cnn-sweep=A"], "the number of shards must be from 1"),
        (["--cnn-shard=1/2"], "pass the id all its shards share as --cnn-sweep=ID"),
        (["--cnn-sweep=a/b"], "--cnn-sweep 'a/b' cannot name a directory"),
        (["--cnn-sweep=A", "--cnn-results-dir=afile/tree"], "cannot write results"),
    ],
)
def test_bad_shard_input_is_one_line(suite, options, says):
    (suite.path / "afile").write_text("a file, not a directory\n")
    result = suite.runpytest_inprocess("test_suite.py", *FAST, *options)
    err = result.stderr.str().strip().splitlines()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(err) == 1 and says in err[0], err
    assert "Traceback" not in result.stdout.str()


def test_a_shard_that_collects_another_grid_is_refused(suite):
    root = suite.path / "tree"
    tree.mark_tree(root)
    models = (("tiny_cnn", (3, 16, 16)), ("sleeper_10ms", (1, 2, 2)))
    theirs = [
        Case(f"tests.models_for_tests:{m}", s, batch_size=b) for m, s in models for b in (1, 2)
    ]
    record_plan(root, "A", plan(theirs, 2), 1, [1.0, 1.0])  # shard 1 ran batches 1 and 2
    other = suite.runpytest_subprocess(
        "test_suite.py", *FAST, f"--cnn-results-dir={root}", "--cnn-sweep=A", "--cnn-shard=2/2",
        "--cnn-batch-sizes=1,2,3",
    )  # fmt: skip
    err = other.stderr.str().strip().splitlines()
    assert other.ret == pytest.ExitCode.USAGE_ERROR
    assert len(err) == 1 and "collected another grid than the sweep's plan" in err[0]
    assert "2 case(s) the plan lacks" in err[0]
    assert not list(root.glob("sweep=A/host=*/shard=2of2/*.parquet"))


def test_an_attempt_killed_on_another_host_counts_and_is_closed(tmp_path):
    """Its finished rows count as done here; its parts are merged (incomplete) by the run that
    takes the shard over, so the shard ends merged."""
    from harness.cluster.shard import unit_cost
    from harness.cluster.slot import open_slot, select

    root = tree.mark_tree(tmp_path / "tree")
    done, left = (
        Case("tests.models_for_tests:tiny_cnn", (3, 16, 16), batch_size=b) for b in (1, 2)
    )
    elsewhere = tree.leaf_dir(root, "S", 1, 1, "elsewhere")
    killed = ResultWriter(elsewhere, run_id="S")  # killed: parts written, never merged
    row = {"case_id": done.case_id, "model": done.model, "device": "cpu", "status": "error"}
    killed.add_case({**row, "error": "the model's own error: a finished case"})
    killed._close_streams()
    slot = open_slot(root, "S", 1, 1, owner=True)
    try:
        assert (elsewhere / "S.parquet").exists() and not (elsewhere / "S.parts").exists()
        assert not load_results(elsewhere)["run_complete"].any()
        chosen = select([done, left, None], 1, 1, slot=slot, cost=unit_cost)
        assert chosen.keep == [False, True, True] and (chosen.mine, chosen.done) == (2, 1)
    finally:
        slot.release()
