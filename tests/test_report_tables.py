"""The report's tables: integer columns print as integers, booleans as words, runs are told
apart from configurations, and long cells wrap or collapse so the page fits its width.

Result files hold integers (threads, batch size, parameters) as int64; the report normalises
every number to float64 for its figures, so the tables must not print ``2.0`` threads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.report.build import _selected
from harness.report.data import prepare_cases
from harness.report.tables import cases_payload, run_summary_table
from harness.results.store import ResultWriter, load_results
from tests.report_data import case_row, cpu_env


def _cells(html: str, css_class: str) -> list[list[str]]:
    """The text of each body cell of the table with ``css_class``, row by row."""
    body = re.search(rf'<table class="[^"]*{css_class}[^"]*">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, html[:300]
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    cell = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
    return [[re.sub(r"<[^>]+>", " ", c) for c in cell.findall(r)] for r in rows]


def _headers(html: str) -> list[str]:
    return re.findall(r"<th>(.*?)</th>", html)


def _loaded(tmp_path: Path, run_id: str = "run-a", **values: object) -> pd.DataFrame:
    """A cases table as the report gets it: written by the writer, read by load_results."""
    row = case_row(
        model="resnet18",
        batch_size=8,
        latency_s_median=0.02,
        throughput_per_s=400.0,
        status="ok",
        case_id="c0",
        command_line="pytest suites/ --benchmark-only " + "--cnn-models=resnet18 " * 20,
        **{**cpu_env(), **values},
    )
    row = {k: v for k, v in row.items() if k not in ("schema_version", "run_id", "run_complete")}
    with ResultWriter(tmp_path, run_id=run_id) as w:
        w.add_case(row)
    return load_results(tmp_path)


def _column(payload: dict, header: str) -> list[str]:
    col = next(c for c in payload["columns"] if c["h"] == header)
    return [col["d"][k] if k >= 0 else "—" for k in col["c"]]


def test_run_table_prints_threads_as_integers_and_collapses_the_command(tmp_path: Path) -> None:
    df = prepare_cases(_loaded(tmp_path, cpu_threads=2, compiled=False, validity="valid"))
    assert df["cpu_threads"].dtype == "float64"  # what the table gets: normalised to float
    html = run_summary_table(df).text
    (row,) = _cells(html, "summary")
    cells = dict(zip(_headers(html), row, strict=True))
    assert "2 threads" in cells["configuration"] and "2.0" not in cells["configuration"]
    assert "complete: yes" in cells["run"]
    assert cells["cases"].strip() == "1 valid"
    assert "<details><summary>show</summary>" in html  # the long command line is collapsed
    assert 'class="summary wrap"' in html  # cells wrap instead of widening the page


def test_cases_table_prints_batch_and_compiled_readably(tmp_path: Path) -> None:
    compiled = cases_payload(prepare_cases(_loaded(tmp_path, cpu_threads=2, compiled=True)))
    assert _column(compiled, "batch") == ["8"]
    assert _column(compiled, "compiled") == ["compiled"]
    assert _column(compiled, "median") == ["20 ms"]
    eager = cases_payload(prepare_cases(_loaded(tmp_path / "eager", compiled=False)))
    assert _column(eager, "compiled") == ["eager"]
    assert "run" not in [c["h"] for c in eager["columns"]]  # one run: no run column


def test_several_runs_get_a_run_column_and_configurations_are_counted(tmp_path: Path) -> None:
    from harness.report import build_report

    one = _loaded(tmp_path / "a", cpu_threads=1)
    two = _loaded(tmp_path / "b", cpu_threads=2, run_id="run-b")
    both = pd.concat([one, two], ignore_index=True)
    html = build_report(both)
    assert "2 cases from 2 runs on 2 configurations ·" in html  # threads differ
    marked, _ = _selected(both)
    payload = cases_payload(prepare_cases(marked))
    assert _column(payload, "run") == ["run-a", "run-b"]
    assert _column(payload, "configuration") == [
        "Intel Xeon Test · 1 thread",
        "Intel Xeon Test · 2 threads",
    ]


def test_noisy_reason_and_unreliable_p99_are_in_the_table(tmp_path: Path) -> None:
    df = prepare_cases(
        _loaded(
            tmp_path,
            validity="noisy",
            validity_reason="load 2.8 on 2 cores (limit cores + 0.5)",
            latency_s_p99=0.03,
            p99_reliable=False,
        )
    )
    payload = cases_payload(df)
    validity = next(c for c in payload["columns"] if c["h"] == "validity")
    assert _column(payload, "validity") == ["noisy"]
    assert validity["t"]["d"][validity["t"]["c"][0]] == "load 2.8 on 2 cores (limit cores + 0.5)"
    assert _column(payload, "p99") == ["30 ms †"]
