"""`cnnbench submit` where no Slurm is needed: bad input in one line and exit 2 (no Slurm, an
unwritable tree, options the submission sets, a sweep id taken), the status of a tree, and a
sweep through submitit's local executor end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.cluster.submit import parse_sbatch, parse_time
from harness.core.errors import InvalidInputError
from harness.results import load_results, tree

ROOT = Path(__file__).resolve().parents[1]
SUITE = """
import pytest

M = "tests.models_for_tests:"

@pytest.mark.cnnbench(models=[M + "tiny_cnn", M + "sleeper_10ms"], batch_sizes=[1, 2])
def test_small(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
FAST = [
    "--benchmark-only", "--cnn-min-time=0.01", "--cnn-min-rounds=3", "--cnn-max-time=0.2",
    "--cnn-warmup-rounds=1", "--cnn-remeasure=0", "--cnn-power=off", "--cnn-isolate=none",
    "-p", "no:cacheprovider",
]  # fmt: skip


def _one_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_without_slurm_it_says_so_and_names_the_local_executor(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on it
    line = _one_line(capsys, ["submit", "--shards", "2", "--results-dir", str(tmp_path / "t")])
    assert "no Slurm here (sbatch is not on PATH)" in line and "--executor local" in line
    assert not (tmp_path / "t").exists()  # nothing written before the check


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--shards", "2", "--executor", "local", "--results-dir", "afile/tree", "--", "x.py"],
         "cannot write the results tree at"),
        (["--shards", "2", "--executor", "local", "--", "x.py", "--cnn-shard=1/2"],
         "cnnbench submit sets --cnn-shard for each shard"),
        (["--shards", "2", "--executor", "local", "--", "x.py", "--cnn-results-dir=r"],
         "use its --results-dir instead"),
        (["--shards", "2", "--time", "soon", "--", "x.py"], "--time 'soon'"),
        (["--shards", "0", "--executor", "local"], "--shards must be"),
        (["--shards", "2", "x.py"], "pytest's arguments go after --"),
        (["--status", "--results-dir", "afile"], "is not a results tree"),
        (["--resume", "nope", "--executor", "local", "--results-dir", "."], "no submitted sweep"),
        (["--shards", "2", "--sbatch", "Bad Key=1", "--executor", "local"], "--sbatch"),
    ],
)  # fmt: skip
def test_bad_submissions_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file, not a directory\n")
    assert says in _one_line(capsys, ["submit", *argv])


def test_slurm_time_formats_and_sbatch_options():
    assert [parse_time(t) for t in ("90", "1:30:00", "2-00:00", "0:30", "1:00:01")] == [
        90, 90, 2880, 1, 61,
    ]  # fmt: skip
    with pytest.raises(InvalidInputError):
        parse_time("0")
    assert parse_sbatch(["qos=high", "--exclusive", "constraint=h100"]) == {
        "qos": "high", "exclusive": True, "constraint": "h100",
    }  # fmt: skip


def test_a_sweep_through_the_local_executor_and_its_status(tmp_path, capsys, monkeypatch):
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run(
        [sys.executable, "-m", "harness", "submit", "--shards", "2", "--executor", "local",
         "--sweep", "L", "--results-dir", "tree", "--", "test_suite.py", *FAST],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 shard(s) as local processes" in run.stdout
    assert "sweep L: complete, 4 cases" in run.stdout
    df = load_results(tmp_path / "tree")
    assert len(df) == 4 and df["case_id"].is_unique and set(df["run_id"]) == {"L"}
    assert (tmp_path / "reports" / "L.html").exists()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["submit", "--status", "L", "--results-dir", "tree"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "sweep L: complete",
        f"  shard 1/2: complete, 2/2 cases on {tree.host_name()}",
        f"  shard 2/2: complete, 2/2 cases on {tree.host_name()}",
    ]
    again = ["submit", "--shards", "2", "--sweep", "L", "--executor", "local", "--results-dir",
             "tree", "--", "test_suite.py"]  # fmt: skip
    line = _one_line(capsys, again)
    assert "sweep L exists in" in line and "--resume L" in line
    assert main(["submit", "--resume", "L", "--executor", "local", "--results-dir", "tree"]) == 0
    assert "every shard is complete, nothing to submit" in capsys.readouterr().out


SLOW = """
import pytest

@pytest.mark.cnnbench(models=["tests.models_for_tests:sleeper_10ms"], batch_sizes=[1, 2, 3, 4])
def test_slow(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


def test_the_time_limit_warning_stops_a_shard_cleanly(tmp_path):
    """Slurm's SIGUSR2 before the limit, to every process of the task: the shard stops after
    its current case, its files merged (incomplete), instead of dying with them unmerged."""
    (tmp_path / "test_slow.py").write_text(SLOW)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # one case a block: rows end one by one, as "after the current case" means
    args = ("test_slow.py", *FAST, "--cnn-min-time=0.5", "--cnn-block-cases=1")
    code = (
        "import sys; from harness.cluster.jobs import ShardTask, run_shard; "
        f"sys.exit(run_shard(ShardTask(1, 1, 'T', 'tree', '.', {args!r})))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    leaf = tree.leaf_dir(tmp_path / "tree", "T", 1, 1, tree.host_name())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(leaf.glob("T.parts/*.cases.arrows")):
        time.sleep(0.2)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGUSR2)  # as Slurm signals every process of the step
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "SIGUSR2: the time limit is near, stopping after the current case" in out
    assert (leaf / "T.parquet").exists() and not (leaf / "T.parts").exists()  # merged
    df = load_results(leaf)
    assert 1 <= len(df) < 4 and not df["run_complete"].any()
