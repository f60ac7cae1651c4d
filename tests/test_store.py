"""ResultWriter and load_results: atomic files, interruptions, schema versions, bad files."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.core.errors import InvalidInputError, ResultFileError
from harness.results import ResultWriter, load_results, new_run_id, result_files, schema

FIXTURES = Path(__file__).parent / "fixtures"
V1_FIXTURE = FIXTURES / "results_v1.parquet"


def case_row(i: int, **over: object) -> dict:
    """A row shaped like the runner's (a subset of the CASES columns; the rest stay null)."""
    row = {
        "timestamp_utc": f"2026-01-01T00:00:{i:02d}+00:00",
        "case_id": f"lenet5-1x32x32-b{i + 1}-float32-contiguous-inference-eager-cpu",
        "model": "lenet5",
        "input_shape": "1x32x32",
        "batch_size": i + 1,
        "dtype": "float32",
        "memory_format": "contiguous",
        "mode": "inference",
        "compiled": False,
        "device": "cpu",
        "device_name": "test cpu",
        "params": 61706,
        "macs": 416520 * (i + 1),
        "latency_s_samples": [0.001, 0.002, 0.004],
        "latency_s_median": 0.002,
        "throughput_per_s": (i + 1) / 0.002,
        "status": "ok",
    }
    row.update(over)
    return row


def layers_frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["lenet5"] * n,
            "input_shape": ["1x32x32"] * n,
            "batch_size": [1] * n,
            "layer_index": list(range(n)),
            "layer_name": [f"c{j}" for j in range(n)],
            "layer_type": ["Conv2d"] * n,
            "params": [156 * (j + 1) for j in range(n)],
        }
    )


def test_new_run_id_is_sortable_unique_and_a_safe_file_name() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    first = new_run_id()
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert re.fullmatch(r"\d{8}T\d{6}Z-[A-Za-z0-9-]+-[0-9a-f]{6}", first)
    # it starts with the UTC start time, so ids sort by when the run started
    stamp = datetime.strptime(first[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert before <= stamp <= datetime.now(timezone.utc)


def test_round_trip_keeps_values_nulls_order_and_dtypes(tmp_path: Path) -> None:
    with ResultWriter(tmp_path, run_id="run-a") as w:
        w.add_case(case_row(0), layers=layers_frame())
        w.add_case(
            case_row(
                1,
                params=None,
                latency_s_median=float("nan"),
                status="error",
                error="boom",
                latency_s_samples=None,
                throughput_per_s=None,
            )
        )
    assert w.paths == {
        "cases": tmp_path / "run-a.parquet",
        "layers": tmp_path / "run-a.layers.parquet",
    }
    df = load_results(tmp_path)
    assert list(df.columns) == schema.column_names("cases")
    assert all(isinstance(t, pd.ArrowDtype) for t in df.dtypes)
    assert df["schema_version"].tolist() == [schema.SCHEMA_VERSION] * 2
    assert df["run_id"].tolist() == ["run-a"] * 2
    assert df["run_complete"].tolist() == [True, True]
    assert df["latency_s_samples"][0] == [0.001, 0.002, 0.004]
    # nulls stay nulls: never 0, and NaN is stored as null
    assert df["params"].tolist() == [61706, pd.NA]
    assert df["latency_s_median"][1] is pd.NA
    assert df["latency_s_samples"][1] is pd.NA
    assert df["peak_memory_bytes"].isna().all()  # never given -> null
    layers = load_results(tmp_path, table="layers")
    assert list(layers.columns) == schema.column_names("layers")
    assert layers["case_id"].unique().tolist() == [case_row(0)["case_id"]]
    assert layers["run_id"].unique().tolist() == ["run-a"]
    assert layers["params"].tolist() == [156, 312, 468]
    assert layers["macs"].isna().all()


def test_every_add_case_leaves_a_readable_file_marked_incomplete(tmp_path: Path) -> None:
    w = ResultWriter(tmp_path)
    for i in range(4):
        w.add_case(case_row(i), layers=layers_frame(i + 1))
        df = load_results(w.paths["cases"])
        assert df["batch_size"].tolist() == list(range(1, i + 2))
        assert not df["run_complete"].any()
        assert len(load_results(w.paths["cases"], table="layers")) == sum(range(1, i + 2))
    assert not list(tmp_path.glob("*.tmp"))
    w.finish()
    assert load_results(tmp_path)["run_complete"].all()


def test_keyboard_interrupt_keeps_rows_and_marks_run_incomplete(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), ResultWriter(tmp_path) as w:
        w.add_case(case_row(0))
        w.add_case(case_row(1))
        raise KeyboardInterrupt
    df = load_results(tmp_path)
    assert len(df) == 2
    assert df["run_complete"].tolist() == [False, False]


def test_unknown_columns_tables_and_bad_types_are_clear_errors(tmp_path: Path) -> None:
    w = ResultWriter(tmp_path)
    w.add_case(case_row(0))
    with pytest.raises(InvalidInputError, match=r"'modle' \(did you mean 'mode' or 'model'\?\)"):
        w.add_case({**case_row(1), "modle": "x"})
    with pytest.raises(InvalidInputError, match=r"unknown result table.*'layer'"):
        w.add_case(case_row(1), layer=layers_frame())
    with pytest.raises(InvalidInputError, match="column 'batch_size' must hold int64"):
        w.add_case(case_row(1, batch_size="eight"))
    # pyarrow alone would store 4096.5 bytes as 4096: a fraction in a count column is refused
    with pytest.raises(InvalidInputError, match=r"'peak_memory_bytes' must hold int64.*4096\.5"):
        w.add_case(case_row(1, peak_memory_bytes=4096.5))
    with pytest.raises(InvalidInputError, match=r"'layers' table.*'flops'"):
        w.add_case(case_row(1), layers=layers_frame().assign(flops=1))
    with pytest.raises(InvalidInputError, match="no case_id"):
        w.add_case(case_row(1, case_id=None), layers=layers_frame())
    # the rejected rows left nothing behind, the good one is intact
    assert load_results(tmp_path)["batch_size"].tolist() == [1]
    assert "layers" not in w.paths


def test_an_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    with ResultWriter(tmp_path, run_id="same") as w:
        w.add_case(case_row(0))
    with pytest.raises(InvalidInputError, match="already exists"):
        ResultWriter(tmp_path, run_id="same")
    with pytest.raises(InvalidInputError, match="cannot be a file name"):
        ResultWriter(tmp_path, run_id="../escape")


KILL_SCRIPT = """
import sys, time
from harness.results import ResultWriter
w = ResultWriter(sys.argv[1], run_id="killed")
samples = [0.001 * (1 + k % 7) for k in range(20000)]  # big rows: the rewrite takes a while
for i in range(1000):
    w.add_case({"case_id": f"c{i}", "model": "lenet5", "batch_size": i + 1, "status": "ok",
                "latency_s_samples": samples})
    print(i, flush=True)
"""


def test_sigkill_in_the_middle_of_a_sweep_leaves_every_finished_case(tmp_path: Path) -> None:
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "res")], stdout=subprocess.PIPE, text=True
    )
    try:
        done = [int(proc.stdout.readline()) for _ in range(5)]  # five cases reported finished
        time.sleep(0.01)  # then kill at some point inside the next rewrite(s)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -9
    df = load_results(tmp_path / "res")
    assert df["batch_size"].tolist()[:5] == [i + 1 for i in done]
    assert df["batch_size"].tolist() == list(range(1, len(df) + 1))  # whole rows, in order
    assert not df["run_complete"].any()
    assert all(len(s) == 20000 for s in df["latency_s_samples"])


# ----------------------------------------------------------------------------------- loading


def test_older_schema_files_load_with_missing_columns_as_nulls(tmp_path: Path) -> None:
    with ResultWriter(tmp_path, run_id="new") as w:
        w.add_case(case_row(0, peak_memory_bytes=1234))
    # an older file: fewer columns, version 1, and a column this code does not know
    old = pa.table(
        {
            "schema_version": [1],
            "run_id": ["old"],
            "model": ["lenet5"],
            "batch_size": [7],
            "latency_s_median": [0.5],
            "legacy_note": ["kept"],
        }
    ).replace_schema_metadata({schema.META_TABLE: b"cases", schema.META_VERSION: b"1"})
    pq.write_table(old, tmp_path / "old.parquet")
    df = load_results([tmp_path / "old.parquet", tmp_path])
    assert list(df.columns) == [*schema.column_names("cases"), "legacy_note"]
    assert df["run_id"].tolist() == ["old", "new"]  # order of the arguments, each file once
    old_row = df.iloc[0]
    assert old_row["batch_size"] == 7
    assert old_row["peak_memory_bytes"] is pd.NA  # a column the old file lacks: null, not 0
    assert old_row["params"] is pd.NA
    assert df["legacy_note"].tolist() == ["kept", pd.NA]
    assert df["peak_memory_bytes"].tolist() == [pd.NA, 1234]


def test_committed_v1_fixture_loads_beside_a_current_file(tmp_path: Path) -> None:
    with ResultWriter(tmp_path, run_id="current") as w:
        w.add_case(case_row(0))
    df = load_results([V1_FIXTURE, tmp_path])
    assert list(df.columns[: len(schema.CASES)]) == schema.column_names("cases")
    assert df["schema_version"].tolist() == [1, 1, schema.SCHEMA_VERSION]
    assert df["model"].tolist() == ["lenet5", "failed", "lenet5"]
    assert df["status"].tolist() == ["ok", "error", "ok"]
    assert df["rounds"][1] is pd.NA
    # the columns later versions added are null in the v1 rows, never 0
    added = set(schema.column_names("cases")) - set(pq.read_schema(V1_FIXTURE).names)
    assert bool(added) == (schema.SCHEMA_VERSION > 1)
    assessed = {"validity", "validity_reason"}  # decided on loading, from what v1 recorded
    assert df.loc[:1, sorted(added - assessed)].isna().all().all()
    assert df["validity"][1] is pd.NA  # a failed case has no verdict
    assert df["validity_reason"][0].startswith("assessed on load (schema version 1 file)")
    assert math.isclose(df["latency_s_median"][0], 0.002)


def test_newer_schema_version_asks_to_upgrade(tmp_path: Path) -> None:
    t = pa.table({"model": ["x"]}).replace_schema_metadata(
        {schema.META_TABLE: b"cases", schema.META_VERSION: str(schema.SCHEMA_VERSION + 1).encode()}
    )
    pq.write_table(t, tmp_path / "future.parquet")
    with pytest.raises(ResultFileError, match=r"newer than this cnnbench knows.*upgrade"):
        load_results(tmp_path / "future.parquet")


def test_foreign_corrupt_missing_and_empty_inputs(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"a": [1]}), foreign)
    with pytest.raises(ResultFileError) as err:
        load_results(foreign)
    assert str(err.value).startswith(
        f"{foreign} is not a cnnbench result file (no cnnbench.table metadata); "
    )
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(ResultFileError, match="not a readable result file"):
        load_results(corrupt)
    with ResultWriter(tmp_path / "ok") as w:
        w.add_case(case_row(0))
    good = w.paths["cases"]
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ResultFileError, match=r"truncated.parquet"):
        load_results(truncated)
    with pytest.raises(ResultFileError, match="does not exist"):
        load_results(tmp_path / "nope.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultFileError, match="no cnnbench 'cases' result files"):
        load_results(tmp_path / "empty")
    with pytest.raises(ResultFileError, match="no cnnbench"):
        load_results([])


def test_directories_choose_files_by_metadata_and_do_not_recurse(tmp_path: Path) -> None:
    with ResultWriter(tmp_path, run_id="r1") as w:
        w.add_case(case_row(0), layers=layers_frame())
    # a layers file under a misleading name is still a layers file
    (tmp_path / "r1.layers.parquet").rename(tmp_path / "misnamed.parquet")
    sub = tmp_path / "fixtures"
    sub.mkdir()
    with ResultWriter(sub, run_id="nested") as w2:
        w2.add_case(case_row(1))
    (tmp_path / "r1.parquet.tmp").write_bytes(b"half written")  # a rewrite in progress
    assert result_files(tmp_path) == [tmp_path / "r1.parquet"]
    assert result_files(tmp_path, table="layers") == [tmp_path / "misnamed.parquet"]
    assert load_results(tmp_path)["run_id"].tolist() == ["r1"]


def test_a_file_of_another_table_stands_for_its_sibling(tmp_path: Path) -> None:
    with ResultWriter(tmp_path, run_id="r2") as w:
        w.add_case(case_row(0), layers=layers_frame())
    both = list(w.paths.values())
    assert result_files(both) == [tmp_path / "r2.parquet"]  # the report passes both: once
    assert result_files(both, table="layers") == [tmp_path / "r2.layers.parquet"]
    assert len(load_results(w.paths["cases"], table="layers")) == 3


def test_writer_cost_stays_small_per_case(tmp_path: Path) -> None:
    """Rewriting the whole file after each case is O(n^2): check it stays cheap at n=50."""
    rng = np.random.default_rng(0)
    w = ResultWriter(tmp_path)
    started = time.perf_counter()
    for i in range(50):
        w.add_case(case_row(i, latency_s_samples=rng.random(1000)), layers=layers_frame(50))
    per_case = (time.perf_counter() - started) / 50
    w.finish()
    assert len(load_results(tmp_path)) == 50
    assert per_case < 0.5, f"{per_case * 1000:.0f} ms per add_case"


def test_a_directory_whose_results_sit_in_sub_directories_names_them(tmp_path: Path) -> None:
    for name in ("h100", "a100"):
        with ResultWriter(tmp_path / name, run_id=name) as w:
            w.add_case(case_row(0))
    (tmp_path / "notes.parquet.txt").write_text("not a result")
    with pytest.raises(ResultFileError) as err:
        load_results(tmp_path)
    assert str(err.value) == (
        f"no cnnbench 'cases' result files directly in {tmp_path} (sub-directories are not "
        f"searched); these hold some, pass them instead: {tmp_path / 'a100'} {tmp_path / 'h100'}"
    )
    assert len(load_results([tmp_path / "a100", tmp_path / "h100"])) == 2
