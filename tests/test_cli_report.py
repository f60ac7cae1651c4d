"""`cnnbench report -o`: a directory gets a fresh file inside it; an unwritable path is one line."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from harness.cli.main import main
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


# ------------------------------------------ issue 17.1: nothing at -o replaced by surprise


def one_line_refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("cnnbench report: error: ")
    return err


def test_a_fifo_is_refused_and_stays_a_fifo(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    err = one_line_refusal(capsys, ["report", str(results_dir), "-o", str(fifo)])
    assert f"{fifo} is a FIFO (named pipe), not a regular file" in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "results"]  # no temporary file


def test_a_symlink_is_refused_and_its_target_untouched(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "t.html"
    target.write_text("my notes")
    link = tmp_path / "l.html"
    link.symlink_to(target.name)
    err = one_line_refusal(capsys, ["report", str(results_dir), "-o", str(link)])
    assert f"{link} is a symbolic link (to t.html)" in err and f"-o {target}" in err
    assert link.is_symlink() and target.read_text() == "my notes"
    # the link's target itself, named directly, is a regular file: replaced, as documented
    assert main(["report", str(results_dir), "-o", str(target)]) == 0
    assert target.read_text().startswith("<!DOCTYPE html>") and link.is_symlink()


def test_a_device_file_is_refused() -> None:
    from harness.cli.commands.report import refusal

    assert refusal(Path("/dev/null")) == (
        "/dev/null is a character device, not a regular file: pass -o with a file path (an "
        "existing regular file is replaced)"
    )
    assert refusal(Path("/no/such/file.html")) is None


def test_a_missing_directory_with_a_slash_is_created(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_dir = tmp_path / "new" / "reports"
    assert main(["report", str(results_dir), "-o", f"{new_dir}/"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed.parent == new_dir and re.fullmatch(r"report-\d{8}T\d{6}Z\.html", printed.name)
    # a slash after an existing file's name: that file is not a directory
    err = one_line_refusal(capsys, ["report", str(results_dir), "-o", f"{printed}/"])
    assert f"-o {printed}/ names a directory, but {printed} is a file" in err
