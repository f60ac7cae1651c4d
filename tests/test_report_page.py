"""The report page: self-contained (plotly.js once, nothing fetched), escaped, written
atomically from result files through the store, and reachable from `cnnbench report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.errors import ResultFileError
from harness.report import build_report, write_report
from harness.report.page import FIGURES_ELEMENT_ID, plotly_js, script_safe_json
from harness.results.store import ResultWriter
from tests.report_data import (
    HOSTILE_HOST,
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    make_cases,
    power_trace,
    vgg16_layers,
)


def payload(html: str) -> dict:
    m = re.search(
        rf'<script type="application/json" id="{FIGURES_ELEMENT_ID}">(.*?)</script>', html, re.S
    )
    assert m is not None
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def hostile_html() -> str:
    return build_report(make_cases(), vgg16_layers(), power_trace(), title="t <b>x</b>")


def test_plotly_js_is_embedded_once_and_nothing_is_fetched(hostile_html: str) -> None:
    bundle = plotly_js()
    assert hostile_html.count(bundle) == 1
    rest = hostile_html.replace(bundle, "")
    assert "<script src" not in rest and "<link" not in rest and "@import" not in rest
    assert "http://" not in rest and "https://" not in rest  # no CDN, no MathJax, no fonts
    assert "mathjax" not in rest.lower()
    assert len(hostile_html) < len(bundle) + 1_000_000  # the data is a small part of the page


def test_hostile_strings_never_reach_the_page_raw(hostile_html: str) -> None:
    rest = hostile_html.replace(plotly_js(), "")
    assert HOSTILE_IMG not in rest
    assert HOSTILE_SCRIPT not in rest
    assert HOSTILE_HOST not in rest
    assert rest.count("<script") == 3  # plotly.js, the JSON figures, the page's own script
    assert "&lt;img src=x onerror=alert(1)&gt;" in rest  # shown as text in the table
    assert "lab&quot;host&#x27;&lt;b&gt;" in rest
    assert "<title>t &lt;b&gt;x&lt;/b&gt;</title>" in rest


def test_figure_json_is_script_safe_and_keeps_the_escaped_names(hostile_html: str) -> None:
    m = re.search(rf'id="{FIGURES_ELEMENT_ID}">(.*?)</script>', hostile_html, re.S)
    assert m is not None
    raw = m.group(1)
    assert "<" not in raw and ">" not in raw and "&" not in raw
    spec = json.loads(raw)
    names = [t.get("name", "") for f in spec["figures"] for t in f["data"]]
    assert any("&lt;img src=x onerror=alert(1)&gt;" in n for n in names)
    assert not any("<img" in n or "</script>" in n for n in names)
    assert spec["template"] is not None  # stored once
    assert all("template" not in f["layout"] for f in spec["figures"])


def test_script_safe_json_round_trips() -> None:
    value = {"a": "</script><!-- & \u2028 >"}
    text = script_safe_json(json.dumps(value))
    assert "</script>" not in text and "<!--" not in text
    assert json.loads(text) == value


def test_missing_values_are_null_in_the_figure_data_not_zero() -> None:
    cases = make_cases(hostile=False)
    html = build_report(cases)
    spec = payload(html)
    energy = next(f for f in spec["figures"] if "Energy" in f["layout"]["title"]["text"])
    ys = [y for t in energy["data"] for y in t["y"]]
    assert None in ys and 0 not in ys


def test_every_section_is_present_and_missing_tables_are_said(hostile_html: str) -> None:
    for anchor in (
        "summary",
        "cases",
        "latency",
        "cost",
        "energy",
        "memory",
        "layers",
        "roofline",
        "speedup",
        "power",
    ):
        assert f'<section id="{anchor}">' in hostile_html
    plain = build_report(make_cases(hostile=False, two_devices=False))
    assert "No layer table in these results" in plain
    assert "One device only" in plain
    assert "no power trace recorded" in json.dumps(payload(plain))


def test_figure_count_matches_the_divs(hostile_html: str) -> None:
    spec = payload(hostile_html)
    divs = re.findall(r'<div class="figure" id="(fig-\d+)"></div>', hostile_html)
    assert divs == [f["id"] for f in spec["figures"]]
    # 4 models, bubbles, energy, memory, vgg16 layers, roofline, speedup, power
    assert len(divs) == 4 + 1 + 1 + 1 + 1 + 1 + 1 + 1


# ----------------------------------------------------------------- through the result store


def write_run(results: Path, run_id: str, cases: pd.DataFrame, layers: pd.DataFrame) -> None:
    with ResultWriter(results, run_id) as writer:
        for row in cases.to_dict("records"):
            row = {
                k: v
                for k, v in row.items()
                if k not in ("schema_version", "run_id", "run_complete")
            }
            side = layers if row["model"] == "vgg16" and row["batch_size"] == 1 else None
            writer.add_case(row, layers=side)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    cases = make_cases()
    results = tmp_path / "results"
    gpu = cases[cases["device"] == "cuda:0"]
    cpu = cases[cases["device"] == "cpu"]
    write_run(results, "run-gpu", gpu, vgg16_layers(case_id="vgg16-bs1-cuda:0"))
    write_run(results, "run-cpu", cpu, vgg16_layers(case_id="vgg16-bs1-cpu", run_id="run-cpu"))
    return results


def test_write_report_from_result_files(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "r.html"
    path = write_report([results_dir], out, title="e2e")
    assert path == out and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]  # no temporary file left
    html = out.read_text(encoding="utf-8")
    assert "<title>e2e</title>" in html
    spec = payload(html)
    assert len(spec["figures"]) == 11
    assert "VGG-16 (vgg16)" in html  # the layer table came through the store
    assert HOSTILE_IMG not in html.replace(plotly_js(), "")
    assert oct(out.stat().st_mode & 0o777) == "0o644"


def test_cli_report_writes_and_prints_the_path(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.html"
    assert main(["report", str(results_dir), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.stat().st_size > len(plotly_js())


def test_cli_report_default_path(
    results_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(results_dir)]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert re.fullmatch(r"reports/report-\d{8}T\d{6}Z\.html", printed.as_posix())
    assert (tmp_path / printed).is_file()


def test_cli_report_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope.parquet"), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists()


def test_write_report_accepts_one_path(results_dir: Path, tmp_path: Path) -> None:
    out = write_report(str(results_dir), tmp_path / "one.html")
    assert "run-gpu" in out.read_text(encoding="utf-8")


def test_write_report_needs_paths(tmp_path: Path) -> None:
    with pytest.raises(ResultFileError, match="no result files given"):
        write_report([], tmp_path / "x.html")


def test_the_report_reads_results_only() -> None:
    """No module of the report imports torch or the measuring side of the harness."""
    import ast

    import harness.report

    root = Path(harness.report.__file__).parent
    files = [*root.glob("*.py"), root.parent / "commands" / "report.py"]
    forbidden = ("torch", "harness.runner", "harness.measure", "harness.profile", "harness.cases")
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            bad = [n for n in names if n.split(".")[0] == "torch" or n.startswith(forbidden[1:])]
            assert not bad, f"{f.name} imports {bad}"
