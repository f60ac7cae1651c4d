"""`cnnbench query`: DuckDB over a results tree written by the real ResultWriter (two hosts'
shards, a flat results directory, a shard still running), views cases, layers and power, the
tree's partitions as columns, three output formats, bad input in one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from harness.cli.main import main
from harness.results import ResultWriter, tree


def _row(model: str, host: str, batch: int, median: float) -> dict:
    return {
        "case_id": f"{model}-3x32x32-b{batch}-float32-contiguous-inference-eager-cpu",
        "model": model,
        "input_shape": "3x32x32",
        "batch_size": batch,
        "dtype": "float32",
        "memory_format": "contiguous",
        "mode": "inference",
        "compiled": False,
        "device": "cpu",
        "device_name": "Test CPU",
        "host": host,
        "torch_version": "2.13.0",
        "status": "ok",
        "validity": "valid",
        "latency_s_samples": [median] * 5,
        "latency_s_median": median,
        "throughput_per_s": batch / median,
        "rounds": 5,
    }


def _layers(n: int) -> pd.DataFrame:
    return pd.DataFrame({"layer_index": range(n), "layer_name": [f"l{i}" for i in range(n)],
                         "layer_type": ["Conv2d"] * n, "model": ["m"] * n})  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tree.mark_tree(tmp_path / "tree")
    for index, host in ((1, "node-a"), (2, "node-b")):
        leaf = tree.leaf_dir(root, "S", index, 2, host)
        with ResultWriter(leaf, run_id="S") as w:
            for batch in (1, 2):
                w.add_case(
                    _row(f"net{index}", host, batch, 0.01 * index * batch), layers=_layers(3)
                )
    with ResultWriter(tmp_path / "flat", run_id="old") as w:  # a results directory of old
        w.add_case(_row("legacy\x1b[31m", "laptop", 1, 0.5))
    running = ResultWriter(tree.leaf_dir(root, "R", 1, 1, "node-c"), run_id="R")
    running.add_case(_row("net3", "node-c", 1, 0.03))  # parts only: a shard still going
    running._close_streams()
    return root


def _query(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["query", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_views_read_every_shard_with_its_partitions(root, capsys):
    sql = "SELECT sweep, host, shard, model, count(*) AS n FROM cases GROUP BY ALL ORDER BY model"
    code, out, _ = _query(capsys, sql, "--results", str(root), "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {"sweep": "S", "host": "node-a", "shard": "1of2", "model": "net1", "n": 2},
        {"sweep": "S", "host": "node-b", "shard": "2of2", "model": "net2", "n": 2},
        {"sweep": "R", "host": "node-c", "shard": "1of1", "model": "net3", "n": 1},
    ]
    code, out, _ = _query(capsys, "SELECT shard, count(*) AS n FROM layers GROUP BY ALL ORDER BY 1",
                          "--results", str(root), "--format", "csv")  # fmt: skip
    assert list(csv.reader(io.StringIO(out))) == [["shard", "n"], ["1of2", "6"], ["2of2", "6"]]
    code, out, _ = _query(capsys, "SELECT count(*) AS n FROM power", "--results", str(root),
                          "--format", "json")  # fmt: skip
    assert json.loads(out) == [{"n": 0}]  # no power traces: an empty view, not an error


def test_a_flat_directory_beside_the_tree_and_the_three_formats(root, tmp_path, capsys):
    sql = "SELECT model, host, shard, latency_s_samples FROM cases WHERE host = 'laptop'"
    both = ["--results", str(root), "--results", str(tmp_path / "flat")]
    code, out, _ = _query(capsys, sql, *both, "--format", "json")
    assert json.loads(out) == [
        {"model": "legacy\x1b[31m", "host": "laptop", "shard": None,
         "latency_s_samples": [0.5] * 5}
    ]  # fmt: skip
    code, out, _ = _query(capsys, sql, *both, "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[1] == ["legacy\x1b[31m", "laptop", "", json.dumps([0.5] * 5)]
    code, out, _ = _query(capsys, sql, *both)
    assert code == 0 and "\x1b" not in out  # the terminal never gets the escape
    assert "legacy\\x1b[31m" in out and "[5 values]" in out and "(1 row)" in out


def test_the_readme_queries_run(root, capsys):
    """The README's three example queries, on a tree (their results are checked by hand)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    quoted = [block.split('"')[1] for block in readme.split("cnnbench query ")[1:]]
    queries = [q for q in quoted if q.startswith("SELECT")]
    assert len(queries) == 3
    for sql in queries:
        code, _, err = _query(capsys, sql, "--results", str(root))
        assert code == 0, (sql, err)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["SELEC 1"], "the query failed: Parser Error"),
        (["SELECT nope FROM cases"], "the query failed: Binder Error"),
        (["SELECT 1", "--results", "/nonexistent/x"], "does not exist"),
    ],
)
def test_bad_queries_and_paths_are_one_line_and_exit_2(root, capsys, args, says):
    extra = [] if "--results" in args else ["--results", str(root)]
    code, out, err = _query(capsys, *args, *extra)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err
