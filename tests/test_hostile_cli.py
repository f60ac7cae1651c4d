"""The `cnnbench` commands against issue 24's hostile user: a report written over its own input,
code from the current directory, formula injection in CSV, colliding default report names, an
impossible measured profile, an absurd confidence level. In-process (``main([...])``) where the
process adds nothing; the installed script where the import path is the point."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.cli.main import main
from harness.results.loader import ResultFileWarning
from harness.results.store import ResultWriter, load_results

SCRIPT = Path(sys.executable).parent / "cnnbench"


def write_run(directory: Path, run_id: str, models: tuple[str, ...] = ("m0",)) -> Path:
    """A run of one ok case per model, written as the runner writes it; -> its cases file."""
    with ResultWriter(directory, run_id=run_id) as w:
        for model in models:
            samples = [0.010, 0.011, 0.012, 0.010, 0.011]
            w.add_case(
                {
                    "case_id": f"{model}-b1",
                    "model": model,
                    "input_shape": "3x16x16",
                    "batch_size": 1,
                    "dtype": "float32",
                    "memory_format": "contiguous",
                    "mode": "inference",
                    "compiled": False,
                    "device": "cpu",
                    "device_name": "test cpu",
                    "host": "box",
                    "cpu_threads": 2,
                    "torch_version": "2.13.0",
                    "timestamp_utc": "2026-01-01T00:00:00+00:00",
                    "status": "ok",
                    "rounds": len(samples),
                    "latency_s_samples": samples,
                    "latency_s_median": 0.011,
                    "throughput_per_s": 1 / 0.011,
                }
            )
    return directory / f"{run_id}.parquet"


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, command: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"cnnbench {command}: error: "), err
    return err


# ------------------------------------------------------ item 1: report -o over its own input


@pytest.mark.parametrize("target", ["input", "other_result", "parts", "named_parquet"])
def test_report_never_writes_over_a_result_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    results = tmp_path / "results"
    given = write_run(results, "R")
    other = write_run(tmp_path / "elsewhere", "S")
    (results / "Q.parts").mkdir()
    out = {
        "input": given,
        "other_result": other,  # a result file that is not an input: still measurements
        "parts": results / "Q.parts" / "main-1.cases.arrows",
        "named_parquet": results / "new.parquet",  # would be read as a corrupt result file
    }[target]
    before = {p: p.read_bytes() for p in (given, other)}
    err = one_line_error(capsys, main(["report", str(given), "-o", str(out)]), "report")
    assert str(out) in err and ("result file" in err or "input" in err), err
    assert {p: p.read_bytes() for p in before} == before
    assert not (results / "new.parquet").exists()
    if target == "input":  # the input read through its directory, -o spelt another way
        monkeypatch.chdir(tmp_path)
        code = main(["report", "results", "-o", "results/../results/R.parquet"])
        assert "is a cnnbench result file" in one_line_error(capsys, code, "report")
        code = main(["report", "results/R.parquet", "-o", "./results//R.parquet"])
        assert "is the input results/R.parquet" in one_line_error(capsys, code, "report")
        assert given.read_bytes() == before[given]


# ------------------------------------------------- item 2: no code from the current directory


MARKED = ("pytz", "wcwidth", "bottleneck", "numexpr", "tabulate_helpers")


def _plant_markers(where: Path) -> None:
    """Modules named like optional dependencies of pandas and tabulate that leave a marker."""
    for name in MARKED:
        (where / f"{name}.py").write_text(
            f"open({str(where / ('ran-' + name))!r}, 'w').write('ran')\n"
        )


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


@pytest.mark.parametrize(
    "argv",
    [
        [str(SCRIPT), "report", "R.parquet", "-o", "o.html"],
        [str(SCRIPT), "compare", "R.parquet", "R.parquet"],
        [str(SCRIPT), "models", "lenet*"],
        [sys.executable, "-m", "harness", "report", "R.parquet", "-o", "o.html"],
    ],
    ids=["report", "compare", "models", "python-m-report"],
)
def test_no_module_of_the_current_directory_runs(tmp_path: Path, argv: list[str]) -> None:
    write_run(tmp_path, "R")
    _plant_markers(tmp_path)
    proc = _run(argv, tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == []


def test_a_model_named_module_factory_is_still_found_in_the_current_directory(
    tmp_path: Path,
) -> None:
    _plant_markers(tmp_path)
    (tmp_path / "cwd_net.py").write_text(
        "from torch import nn\n\ndef net():\n    return nn.Sequential(nn.Conv2d(3, 8, 3))\n"
    )
    proc = _run([str(SCRIPT), "profile", "cwd_net:net", "--input", "3x8x8"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "params       224" in proc.stdout  # 8 * 27 weights + 8 biases
    # pandas and tabulate were imported before the directory was searched
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == []


# ------------------------------------------------------------ item 12: CSV formula injection

FORMULAS = ['=HYPERLINK("https://evil.example","click")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd",
            "-2+3+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]  # fmt: skip


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def test_compare_csv_neutralises_formulas(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = write_run(tmp_path / "a", "A", models=tuple(FORMULAS))
    b = write_run(tmp_path / "b", "B", models=tuple(FORMULAS))
    assert main(["compare", str(a), str(b), "--format", "csv"]) == 0
    cells = _cells(capsys.readouterr().out)
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")], cells
    assert not [c for c in cells if c.startswith("-") and c != "-" and not _number(c)]
    assert "'" + FORMULAS[0] in cells  # shown as typed, behind the quote
    assert "'-2+3+cmd|' /C calc'!A0" in cells


def _number(text: str) -> bool:
    try:
        float(text.rstrip("%"))
    except ValueError:
        return False
    return True


def test_models_and_profile_csv_neutralise_formulas(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = tmp_path / "test_formula_suite.py"
    suite.write_text(
        "from torch import nn\nfrom harness import register_model\n\n"
        "@register_model('=cmd|calc', input_shape=(3, 8, 8))\n"
        "def net():\n"
        "    m = nn.Sequential()\n"
        "    m.add_module('=HYPERLINK(1)', nn.Conv2d(3, 4, 3))\n"
        "    return m\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["models", "=cmd*", "--suite", str(suite), "--format", "csv"]) == 0
    cells = _cells(capsys.readouterr().out)
    assert "'=cmd|calc" in cells and "=cmd|calc" not in cells
    assert main(["profile", "=cmd|calc", "--suite", str(suite), "--format", "csv"]) == 0
    cells = _cells(capsys.readouterr().out)
    assert "'=HYPERLINK(1)" in cells and not [c for c in cells if c.startswith("=")]


# -------------------------------------------------- item 16: default report names collide


def test_two_reports_in_one_second_never_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.cli.commands import report

    first = write_run(tmp_path / "a", "A", models=("first_model",))
    second = write_run(tmp_path / "b", "B", models=("second_model",))
    monkeypatch.chdir(tmp_path)
    # both start within one second: the clock reads the same for both
    fixed = Path("reports") / "report-20260101T000000Z.html"
    monkeypatch.setattr(report, "default_output", lambda now=None: fixed)
    assert main(["report", str(first)]) == 0
    assert main(["report", str(second)]) == 0
    printed = capsys.readouterr().out.split()
    pages = sorted((tmp_path / "reports").glob("*.html"))
    assert len(pages) == 2 and len(set(printed)) == 2, (pages, printed)
    texts = [Path(tmp_path, p).read_text() for p in printed]
    assert "first_model" in texts[0] and "second_model" in texts[1]
    # an explicit -o file is still replaced, as documented
    assert main(["report", str(second), "-o", str(tmp_path / "mine.html")]) == 0
    assert main(["report", str(first), "-o", str(tmp_path / "mine.html")]) == 0
    assert "first_model" in (tmp_path / "mine.html").read_text()


# ------------------------------------------- item 14: profile --measure of an impossible case


def test_profile_measure_of_an_impossible_batch_is_one_line(capsys: pytest.CaptureFixture) -> None:
    code = main(["profile", "vgg16", "--measure", "--batch", "100000"])
    err = one_line_error(capsys, code, "profile")
    assert "vgg16 at batch 100000: needs at least" in err and "not run" in err


# ------------------------------------------------------ Low: compare --ci-level 1e-300


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ci-level", "1e-300"], "--ci-level 1e-300: pass a confidence level from 0.5 to 0.995"),
        (["--ci-level", "nan"], "--ci-level nan"),
        (["--ci-level", "0.9999"], "--ci-level 0.9999"),
        (["--ci-level", "0.9999", "--resamples", "100000"], None),  # enough resamples for it
        (["--resamples", "5"], "--resamples 5 are too few"),
    ],
)
def test_compare_refuses_a_confidence_level_it_cannot_give(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str | None
) -> None:
    a = write_run(tmp_path, "A")
    code = main(["compare", str(a), str(a), *argv])
    if message is None:
        assert code == 0, capsys.readouterr().err
        return
    assert message in one_line_error(capsys, code, "compare")


# ------------------------------------------------ item 8: commands name the files passed over


def test_report_compare_and_claims_name_each_file_passed_over(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results"
    good = write_run(results, "good")
    (results / "truncated.parquet").write_bytes(good.read_bytes()[:200])
    parts = results / "torn.parts"
    parts.mkdir()
    (parts / "main-1.cases.arrows").write_bytes(b"")
    expected = ["truncated.parquet", "main-1.cases.arrows"]
    for argv in (
        ["report", str(results), "-o", str(tmp_path / "r.html")],
        ["compare", str(results), str(good)],
        ["claims", "--results", str(results)],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 1), err
        lines = err.splitlines()
        for name in expected:
            named = [ln for ln in lines if name in ln]
            assert len(named) == 1, (argv[0], err)
            assert named[0].startswith(f"cnnbench {argv[0]}: warning: passed over "), named
    assert "truncated.parquet" in (tmp_path / "r.html").read_text()  # and on the page
    with pytest.warns(ResultFileWarning) as passed_over:
        assert len(load_results(results)) == 1
    assert sorted(Path(str(w.message).split()[2]).name for w in passed_over) == sorted(expected)
    assert pq.read_table(good).num_rows == 1
