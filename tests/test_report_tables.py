"""The report's HTML tables: integer columns print as integers, booleans as words.

Result files hold integers (threads, batch size, parameters) as int64; the report normalises
every number to float64 for its figures, so the tables must not print ``2.0`` threads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.report.data import prepare_cases
from harness.report.tables import cases_table, run_summary_table
from harness.results.store import ResultWriter, load_results
from tests.report_data import case_row, cpu_env


def _cells(html: str, css_class: str) -> list[list[str]]:
    """The text of each body cell of the table with ``css_class``, row by row."""
    body = re.search(rf'<table class="[^"]*{css_class}[^"]*">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, html[:300]
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    cell = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
    return [[re.sub(r"<[^>]+>", "", c) for c in cell.findall(r)] for r in rows]


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
        **{**cpu_env(), **values},
    )
    row = {k: v for k, v in row.items() if k not in ("schema_version", "run_id", "run_complete")}
    with ResultWriter(tmp_path, run_id=run_id) as w:
        w.add_case(row)
    return prepare_cases(load_results(tmp_path))


def test_run_table_prints_integer_columns_as_integers(tmp_path: Path) -> None:
    df = _loaded(tmp_path, cpu_threads=2, compiled=False)
    assert df["cpu_threads"].dtype == "float64"  # what the table gets: normalised to float
    html = run_summary_table(df).text
    headers = _headers(html)
    (row,) = _cells(html, "summary")
    cells = dict(zip(headers, row, strict=True))
    assert cells["threads"] == "2"
    assert cells["complete"] == "yes"
    assert cells["cases"] == "1 ok"


def test_cases_table_prints_batch_and_compiled_readably(tmp_path: Path) -> None:
    df = _loaded(tmp_path, cpu_threads=2, compiled=True)
    html = cases_table(df).text
    (row,) = _cells(html, "cases")
    cells = dict(zip(_headers(html), row, strict=True))
    assert cells["batch"] == "8"
    assert cells["compiled"] == "compiled"
    eager = cases_table(_loaded(tmp_path / "eager", compiled=False)).text
    assert dict(zip(_headers(eager), _cells(eager, "cases")[0], strict=True))["compiled"] == (
        "eager"
    )


def test_two_runs_on_one_machine_are_one_device_in_the_subtitle(tmp_path: Path) -> None:
    from harness.report import build_report

    one = _loaded(tmp_path / "a", cpu_threads=1)
    two = _loaded(tmp_path / "b", cpu_threads=2, run_id="run-b")
    html = build_report(pd.concat([one, two], ignore_index=True))
    assert "2 cases from 2 runs on 1 device ·" in html
