"""`cnnbench report -o`: a directory gets a fresh file inside it; an unwritable path is one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.results.store import ResultWriter
from tests.report_data import case_row, cpu_env


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    row = case_row(model="lenet5", batch_size=1, latency_s_median=0.002, case_id="c0", **cpu_env())
    row = {k: v for k, v in row.items() if k not in ("schema_version", "run_id", "run_complete")}
    with ResultWriter(tmp_path / "results", run_id="run-a") as w:
        w.add_case(row)
    return tmp_path / "results"


def test_output_directory_gets_a_timestamped_file(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    assert main(["report", str(results_dir), "-o", str(out_dir)]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed.parent == out_dir
    assert re.fullmatch(r"report-\d{8}T\d{6}Z\.html", printed.name)
    assert printed.is_file()


def test_unwritable_output_is_one_line(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["report", str(results_dir), "-o", str(blocker / "x.html")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"cnnbench report: error: cannot write the report to {blocker}/x.html: ")
    assert err.rstrip().endswith("pass -o with a writable file path")
    assert err.count("\n") == 1
