"""Result files against issue 24's hostile user: bad files in a results directory (each named
and passed over, the rest read), a disk full at the first write, the results directory removed
mid-run. In-process where the process adds nothing; a real pytest process where the run's end
(its merge, summary and exit status) is the point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core import schema
from harness.core.errors import ResultFileError
from harness.results.loader import ResultFileWarning
from harness.results.store import ResultWriter, load_results, merge_parts

ROOT = Path(__file__).resolve().parents[1]


def row(i: int, **over: object) -> dict:
    values = {
        "case_id": f"m-b{i}",
        "model": "m",
        "input_shape": "3x16x16",
        "batch_size": i,
        "dtype": "float32",
        "memory_format": "contiguous",
        "mode": "inference",
        "compiled": False,
        "device": "cpu",
        "status": "ok",
        "rounds": 3,
        "latency_s_samples": [0.001, 0.002, 0.003],
        "latency_s_median": 0.002,
        "throughput_per_s": i / 0.002,
    }
    values.update(over)
    return values


def _rewrite(src: Path, dst: Path, table: pa.Table | None = None, version: bytes | None = None):
    """``src`` rewritten at ``dst`` with another table or schema version (kept metadata)."""
    t = table if table is not None else pq.read_table(src)
    meta = dict(pq.read_schema(src).metadata)
    if version is not None:
        meta[schema.META_VERSION] = version
    pq.write_table(t.replace_schema_metadata(meta), dst)


# ------------------------------------------------------------- item 8: bad files in a directory


def test_each_bad_file_in_a_directory_is_named_and_passed_over(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with ResultWriter(results, run_id="good") as w:
        w.add_case(row(1))
        w.add_case(row(2))
    good = results / "good.parquet"
    (results / "truncated.parquet").write_bytes(good.read_bytes()[:300])
    (results / "garbage.parquet").write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    (results / "empty.parquet").write_bytes(b"")
    _rewrite(good, results / "future.parquet", version=str(schema.SCHEMA_VERSION + 1).encode())
    _rewrite(good, results / "huge_version.parquet", version=b"9" * 5000)
    t = pq.read_table(good)  # latency_s_median written as text a number cannot be read from
    i = t.schema.get_field_index("latency_s_median")
    mistyped = t.set_column(i, "latency_s_median", pa.array(["fast", "slow"]))
    _rewrite(good, results / "mistyped.parquet", table=mistyped)
    parts = results / "killed.parts"  # a run killed before its parts were merged
    parts.mkdir()
    (parts / "main-1.cases.arrows").write_bytes(b"")  # zero length: a disk full at once
    (parts / "main-2.cases.arrows").write_bytes(os.urandom(500))  # garbage
    bad = {"truncated.parquet", "garbage.parquet", "empty.parquet", "future.parquet",
           "huge_version.parquet", "mistyped.parquet", "main-1.cases.arrows",
           "main-2.cases.arrows"}  # fmt: skip

    with pytest.warns(ResultFileWarning) as warned:
        df = load_results(results)
    assert df["case_id"].tolist() == ["m-b1", "m-b2"]  # the good file, whole
    skipped = df.attrs["skipped_files"]
    named = {Path(s.split(" ")[0].rstrip(":")).name for s in skipped}
    assert named == bad and len(skipped) == len(bad), skipped
    assert {str(w.message) for w in warned} == {f"passed over {s}" for s in skipped}
    reasons = {Path(s.split(" ")[0].rstrip(":")).name: s for s in skipped}
    assert "newer than this cnnbench knows" in reasons["future.parquet"]
    assert "5000 characters" in reasons["huge_version.parquet"]
    assert len(reasons["huge_version.parquet"]) < 400
    assert "'latency_s_median' holds string" in reasons["mistyped.parquet"]
    assert all("\n" not in s for s in skipped)


@pytest.mark.parametrize(
    "kind", ["huge_version", "mistyped", "truncated", "zero_length_part", "future"]
)
def test_a_bad_file_named_explicitly_is_one_clear_error(tmp_path: Path, kind: str) -> None:
    with ResultWriter(tmp_path, run_id="good") as w:
        w.add_case(row(1))
    good = tmp_path / "good.parquet"
    bad = tmp_path / f"{kind}.parquet"
    if kind == "huge_version":
        _rewrite(good, bad, version=b"1" * 5000)
    elif kind == "future":
        _rewrite(good, bad, version=b"99")
    elif kind == "mistyped":
        t = pq.read_table(good)
        i = t.schema.get_field_index("batch_size")
        _rewrite(good, bad, table=t.set_column(i, "batch_size", pa.array(["one"])))
    elif kind == "truncated":
        bad.write_bytes(good.read_bytes()[:100])
    else:
        bad = tmp_path / "x.parts" / "main-1.cases.arrows"
        bad.parent.mkdir()
        bad.write_bytes(b"")
    with pytest.raises(ResultFileError) as err:
        load_results(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert len(str(err.value)) < 600


# ------------------------------------------------------------ item 7: a disk full at once


def test_a_zero_length_part_is_merged_as_nothing(tmp_path: Path) -> None:
    """The disk was full at a writer's first write: its part is empty. The merge reads the
    other writers' parts and does not fail on it (it raised ArrowInvalid, uncaught)."""
    with ResultWriter(tmp_path, run_id="r", name="gw0", merge=False) as w:
        w.add_case(row(1))
    (tmp_path / "r.parts" / "gw1-99.cases.arrows").write_bytes(b"")
    (tmp_path / "r.parts" / "gw1-99.layers.arrows").write_bytes(b"\xff\xff\xff\xff\x10")
    paths = merge_parts(tmp_path, "r", complete=False)
    df = load_results(paths["cases"])
    assert df["case_id"].tolist() == ["m-b1"] and not df["run_complete"].any()


DISK_FULL_CONFTEST = """
import resource, signal

def pytest_runtestloop(session):
    # from here on no file of this process may grow: a disk that is full
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
"""

SUITE = """
import pytest

@pytest.mark.cnnbench(models=["hostile:tiny"], batch_sizes=[1, 2])
def test_tiny(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""

FAST = ["--benchmark-only", "--cnn-min-time=0.01", "--cnn-min-rounds=3", "--cnn-max-time=0.2",
        "--cnn-warmup-rounds=1", "--cnn-remeasure=0", "--cnn-power=off", "--cnn-isolate=none",
        "--cnn-no-report", "-p", "no:cacheprovider"]  # fmt: skip


def _pytest(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, *FAST],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(not hasattr(os, "setrlimit") and sys.platform != "linux", reason="rlimit")
def test_a_disk_full_at_the_first_write_stops_with_the_summary_and_one_line(tmp_path: Path):
    (tmp_path / "conftest.py").write_text(DISK_FULL_CONFTEST)
    (tmp_path / "test_tiny.py").write_text(SUITE)
    results = tmp_path / "results"
    proc = _pytest(tmp_path, "-s", f"--cnn-results-dir={results}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-4000:]  # the run was stopped
    assert "INTERNALERROR" not in out and "Traceback" not in out, out[-4000:]
    assert "cnnbench summary" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("results not fully written: ")]
    assert len(lines) == 1 and "File too large" in lines[0], out[-4000:]
    assert lines[0].endswith("File too large")  # no rows were written: none is said to be kept
    assert not list(results.glob("*.parquet"))  # nothing could be written, nothing claims to be


# ------------------------------------------------- item 9: the results directory removed


def test_a_removed_results_directory_is_found_at_the_next_write(tmp_path: Path) -> None:
    results = tmp_path / "results"
    w = ResultWriter(results, run_id="r")
    w.add_case(row(1))
    shutil.rmtree(results)
    with pytest.raises(FileNotFoundError, match="was removed while the run wrote it"):
        w.add_case(row(2))
    with pytest.raises(FileNotFoundError, match="was removed before the run's files were merged"):
        w.finish(complete=False)
    # replaced by another directory of the same name: found too
    w2 = ResultWriter(results, run_id="r2")
    w2.add_case(row(1))
    shutil.rmtree(results)
    results.mkdir()
    with pytest.raises(FileNotFoundError):
        w2.add_case(row(2))


REMOVING_SUITE = """
import shutil
import pytest

@pytest.mark.cnnbench(models=["hostile:tiny"], batch_sizes=[1, 2, 3])
def test_tiny(cnn_case, cnn_bench, request):
    cnn_bench(cnn_case)
    if cnn_case.batch_size == 1:  # the user deletes the results directory mid-run
        shutil.rmtree(request.config.getoption("cnn_results_dir"))
"""


def test_a_run_whose_results_directory_is_removed_stops_non_zero(tmp_path: Path) -> None:
    (tmp_path / "test_removing.py").write_text(textwrap.dedent(REMOVING_SUITE))
    results = tmp_path / "results"
    proc = _pytest(tmp_path, f"--cnn-results-dir={results}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-4000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("results not fully written: ")]
    # found at the next write, or, where the block had written every row before the test
    # removed the directory, at the merge (harness.run.schedule: a block's rows end together)
    assert len(lines) == 1, out[-4000:]
    assert "was removed while the run wrote it" in lines[0] or (
        "was removed before the run's files were merged" in lines[0]
    ), lines[0]
    assert "results (cases):" not in out  # no path to a file that does not exist


# -------------------------------------------- third pass: a test that changes the directory


CHDIR_SUITE = """
import os
import pytest

@pytest.mark.cnnbench(models=["hostile:tiny"], batch_sizes=[1, 2])
def test_tiny(cnn_case, cnn_bench, tmp_path_factory):
    cnn_bench(cnn_case)
    os.chdir(tmp_path_factory.mktemp("elsewhere"))  # and never back: the results stay put
"""


def test_a_test_that_changes_directory_does_not_move_the_results(tmp_path: Path) -> None:
    (tmp_path / "test_chdir.py").write_text(CHDIR_SUITE)
    proc = _pytest(tmp_path, "--cnn-results-dir=results")  # relative, as users pass it
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "results not fully written" not in out, out[-4000:]
    df = load_results(tmp_path / "results")
    assert df["batch_size"].tolist() == [1, 2] and df["run_complete"].all()
    assert not list((tmp_path / "results").glob("*.parts"))  # merged where it was written
