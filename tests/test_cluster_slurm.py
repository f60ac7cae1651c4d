"""`cnnbench submit` against a real Slurm (a single node: .ci/slurm-up.sh, which CI runs): a
two-shard quick sweep through sbatch, waited for; a task cancelled mid-run with scancel that
leaves its finished rows and is listed incomplete, and a re-submission that runs only what is
missing. Without a Slurm that can be started these tests skip with one line; in CI they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cluster.status import sweep_status
from harness.cluster.tree import counts_as_done
from harness.results import load_results, tree
from harness.results.runs import select_runs

ROOT = Path(__file__).resolve().parents[1]
UP = ROOT / ".ci" / "slurm-up.sh"
FAST = [
    "--benchmark-only", "--cnn-min-rounds=3", "--cnn-max-time=1", "--cnn-warmup-rounds=1",
    "--cnn-remeasure=0", "--cnn-power=off", "--cnn-isolate=none", "-p", "no:cacheprovider",
]  # fmt: skip
SUITE = """
import pytest

M = "tests.models_for_tests:"

@pytest.mark.cnnbench(models=[M + "tiny_cnn", M + "sleeper_10ms", "lenet5"], batch_sizes=[1, 2])
def test_quick(cnn_case, cnn_bench):
    cnn_bench(cnn_case)

@pytest.mark.cnnbench(models=[M + "tiny_cnn", M + "sleeper_10ms", "lenet5"], batch_sizes=[3, 4])
def test_slow(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""

pytestmark = pytest.mark.slurm


def _slurm_answers() -> bool:
    return subprocess.run(["bash", str(UP), "--check"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def slurm() -> None:
    """Slurm answering here, started by .ci/slurm-up.sh where it is installed and we are root."""
    if not _slurm_answers() and os.geteuid() == 0 and shutil.which("slurmctld"):
        subprocess.run(["bash", str(UP)], capture_output=True, timeout=120)
    if not _slurm_answers():
        why = "no Slurm here: .ci/slurm-up.sh starts a single-node one (root, Debian's slurm-wlm)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{why}; CI must run it before the tests", pytrace=False)
        pytest.skip(why)


@pytest.fixture
def here(tmp_path: Path) -> Path:
    (tmp_path / "test_suite.py").write_text(SUITE)
    return tmp_path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _submit(here: Path, *args: str, background: bool = False):
    cmd = [sys.executable, "-m", "harness", "submit", *args]
    if background:
        return subprocess.Popen(cmd, cwd=here, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    return subprocess.run(cmd, cwd=here, env=_env(), capture_output=True, text=True, timeout=300)


def test_a_two_shard_quick_sweep_through_sbatch_is_one_run(slurm, here):
    out = _submit(here, "--shards", "2", "--wait", "--cpus-per-task", "1", "--sweep", "two",
                  "--results-dir", "tree", "--", "test_suite.py", "-k", "quick", *FAST,
                  "--cnn-min-time=0.05")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 shard(s) as Slurm job array" in out.stdout
    assert "shard 1/2 (job " in out.stdout and "completed, 3/3 cases" in out.stdout
    assert "sweep two: complete, 6 cases" in out.stdout
    df = load_results(here / "tree" / "sweep=two")
    assert len(df) == 6 and df["case_id"].is_unique and set(df["run_id"]) == {"two"}
    assert df["run_complete"].all() and len(select_runs(df).runs) == 1
    assert (here / "reports" / "two.html").stat().st_size > 10_000
    script = next((here / "tree" / "sweep=two" / ".jobs").glob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --cpus-per-task=1" in script
    assert "#SBATCH --time=525600" in script  # no --time: the partition's (unlimited), not 5 min


def _rows_of(leaf: Path) -> int:
    try:
        return len(load_results(leaf))
    except Exception:  # nothing readable yet
        return 0


def test_a_cancelled_task_is_listed_incomplete_and_a_resubmission_runs_only_what_is_missing(
    slurm, here
):
    args = ["--cpus-per-task", "1", "--results-dir", "tree"]
    proc = _submit(here, "--shards", "3", "--wait", "--sweep", "three", *args, "--",
                   "test_suite.py", "-k", "slow", *FAST, "--cnn-min-time=1", "--cnn-block-cases=1",
                   background=True)  # fmt: skip
    manifest = here / "tree" / "sweep=three" / "sweep.json"
    deadline = time.monotonic() + 60
    while not manifest.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    busy = _submit(here, "--resume", "three", *args)  # while its tasks run: refused
    assert busy.returncode == 2, busy.stdout + busy.stderr
    err = busy.stderr.strip().splitlines()
    assert len(err) == 1 and "still has task(s) pending or running" in err[0]

    leaf = tree.leaf_dir(here / "tree", "three", 3, 3, tree.host_name())
    deadline = time.monotonic() + 150
    while _rows_of(leaf) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _rows_of(leaf) >= 1, "shard 3 wrote no row in time"
    task = subprocess.run(["squeue", "-h", "-r", "-n", "cnnbench-three", "-t", "R", "-o", "%i"],
                          capture_output=True, text=True).stdout.split()  # fmt: skip
    assert task, "no running task of the sweep"
    subprocess.run(["scancel", task[-1]], check=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "shard 3/3: incomplete" in out and "--resume three" in out

    first = load_results(leaf)
    kept = {
        c for c, s, e in zip(first["case_id"], first["status"], first["error"], strict=True)
        if counts_as_done(s, e)
    }  # fmt: skip
    assert len(kept) == 1
    listed = _submit(here, "--status", "three", "--results-dir", "tree")
    assert listed.returncode == 1 and "shard 3/3: incomplete, 1/2 cases" in listed.stdout
    assert "shard 1/3: complete, 2/2 cases" in listed.stdout

    again = _submit(here, "--resume", "three", "--wait", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "shard(s) 3 of 3 as Slurm job" in again.stdout
    logs = "".join(p.read_text() for p in (here / "tree" / "sweep=three" / ".jobs").glob("*.out"))
    assert "1 of the grid's 6 cases (1 done by an earlier run" in logs
    status = sweep_status(here / "tree", "three")
    assert status.complete
    df = load_results(here / "tree" / "sweep=three")
    done = df[[counts_as_done(s, e) for s, e in zip(df["status"], df["error"], strict=True)]]
    assert len(done) == 6 and done["case_id"].is_unique  # every case measured once
    assert kept <= set(done.loc[done["timestamp_utc"].isin(first["timestamp_utc"]), "case_id"])


def test_an_unknown_partition_is_one_line(slurm, here):
    out = _submit(here, "--shards", "2", "--partition", "nope", "--results-dir", "tree", "--",
                  "test_suite.py")  # fmt: skip
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(err) == 1, out.stderr
    assert "partition 'nope' does not exist; partitions here: debug" in err[0]
    assert not (here / "tree").exists() or not list((here / "tree").glob("sweep=*"))


def test_what_sbatch_refuses_is_one_line_and_leaves_no_sweep(slurm, here):
    out = _submit(
        here,
        "--shards",
        "2",
        "--gpus-per-task",
        "1",
        "--results-dir",
        "tree",
        "--",
        "test_suite.py",
    )  # fmt: skip  (the node has no GPU: sbatch refuses the gres)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(err) == 1, out.stderr
    assert "sbatch refused the job: Invalid generic resource (gres) specification" in err[0]
    assert not list((here / "tree").glob("sweep=*"))
