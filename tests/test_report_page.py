"""The report page: self-contained (plotly.js once, nothing fetched), escaped, written
atomically from result files through the store, and reachable from `cnnbench report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from harness.cli.main import main
from harness.core.errors import ResultFileError
from harness.report import build_report, write_report
from harness.report.page import (
    BASIC_BUNDLE,
    FIGURES_ELEMENT_ID,
    bundle_version,
    plotly_js,
    script_safe_json,
)
from harness.report.tables import CASES_ELEMENT_ID
from harness.results.store import ResultWriter
from tests.report_data import (
    HOSTILE_HOST,
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    QUOTED,
    case_row,
    cpu_env,
    make_cases,
    power_trace,
    vgg16_layers,
)


def payload(html: str, element: str = FIGURES_ELEMENT_ID) -> dict:
    m = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', html, re.S)
    assert m is not None
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def hostile_html() -> str:
    return build_report(make_cases(), vgg16_layers(), power_trace(), title="t <b>x</b>")


def test_the_basic_plotly_bundle_is_the_version_the_plotly_package_ships() -> None:
    import plotly.offline

    full = plotly.offline.get_plotlyjs()
    assert bundle_version(BASIC_BUNDLE.read_text(encoding="utf-8")) == bundle_version(full)
    assert plotly_js().startswith("/**\n* plotly.js (basic - minified) v")
    assert len(plotly_js()) < 1_300_000  # a quarter of the full bundle


def test_only_trace_types_of_the_basic_bundle_are_drawn(hostile_html: str) -> None:
    spec = payload(hostile_html)
    kinds = {t.get("type", "scatter") for f in spec["figures"] for t in f["data"]}
    assert kinds <= {"scatter", "bar"}
    assert set(spec["template"]["data"]) <= {"scatter", "bar"}


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
    # plotly.js, the table's JSON, the figures' JSON, the page's own script
    assert rest.count("<script") == 4
    assert "&lt;img src=x onerror=alert(1)&gt;" in rest  # shown as text in the table
    assert "lab&quot;host&#x27;&lt;b&gt;" in rest
    assert "<title>t &lt;b&gt;x&lt;/b&gt;</title>" in rest


def test_figure_json_is_script_safe_and_keeps_the_escaped_names(hostile_html: str) -> None:
    m = re.search(rf'id="{FIGURES_ELEMENT_ID}">(.*?)</script>', hostile_html, re.S)
    assert m is not None
    raw = m.group(1)
    assert "<" not in raw and ">" not in raw and "&" not in raw
    spec = json.loads(raw)
    text = json.dumps(spec)
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<img" not in text and "</script>" not in text
    assert spec["template"] is not None  # stored once
    assert all("template" not in f["layout"] for f in spec["figures"])


def test_table_json_is_script_safe_and_holds_every_row(hostile_html: str) -> None:
    m = re.search(rf'id="{CASES_ELEMENT_ID}">(.*?)</script>', hostile_html, re.S)
    assert m is not None
    assert "<" not in m.group(1) and ">" not in m.group(1) and "&" not in m.group(1)
    table = payload(hostile_html, CASES_ELEMENT_ID)
    cases = make_cases()
    assert table["rows"] == len(cases)
    model = next(c for c in table["columns"] if c["h"] == "model")
    assert [model["d"][k] for k in model["c"]] == list(cases["model"])  # the names verbatim
    median = next(c for c in table["columns"] if c["h"] == "median")
    # a numeric column's strings are ordered by value: sorting by code sorts by value
    coded = [(k, v) for k, v in zip(median["c"], cases["latency_s_median"], strict=True)
             if k >= 0]  # fmt: skip
    assert [v for _, v in sorted(coded)] == sorted(v for _, v in coded)
    assert median["c"].count(-1) == cases["latency_s_median"].isna().sum()  # missing: -1


def test_script_safe_json_round_trips() -> None:
    value = {"a": "</script><!-- & \u2028 >"}
    text = script_safe_json(json.dumps(value))
    assert "</script>" not in text and "<!--" not in text
    assert json.loads(text) == value


def test_missing_values_are_null_in_the_figure_data_not_zero() -> None:
    cases = make_cases(hostile=False)
    cases.loc[cases["batch_size"] == 2, "peak_memory_bytes"] = None
    spec = payload(build_report(cases))
    memory = next(f for f in spec["figures"] if "Peak memory" in f["layout"]["title"]["text"])
    ys = [y for t in memory["data"] for y in t["y"]]
    assert None in ys and 0 not in ys  # an unmeasured peak is a gap


def test_every_section_is_present_and_missing_tables_are_said(hostile_html: str) -> None:
    for anchor in ("headline", "latency", "cost", "memory", "energy", "layers", "roofline",
                   "speedup", "power", "cases", "runs"):  # fmt: skip
        assert f'<section id="{anchor}">' in hostile_html
    assert hostile_html.index('id="headline"') < hostile_html.index('id="latency"')
    plain = build_report(make_cases(hostile=False, two_devices=False))
    assert "No layer table in these results" in plain
    assert "One configuration only" in plain
    assert "no power trace recorded" in plain


def test_figure_count_matches_the_divs(hostile_html: str) -> None:
    spec = payload(hostile_html)
    divs = re.findall(r'<div class="figure" id="(fig-\d+)"></div>', hostile_html)
    assert divs == [f["id"] for f in spec["figures"]]
    # latency and throughput facets, every model at batch 1, cost, memory, energy, VGG-16
    # shares and layers, roofline, speedup, power
    assert len(divs) == 2 + 1 + 1 + 1 + 1 + 2 + 1 + 1 + 1


def test_headline_counts_valid_noisy_and_failed_cases() -> None:
    cases = make_cases(hostile=False)
    cases.loc[cases.index[:3], "validity"] = "noisy"
    crashed = case_row(model="vgg16", batch_size=32, status="crashed", error="killed by "
                       "signal 9", **cases.iloc[0][["run_id", "host", "device", "device_name",
                       "timestamp_utc", "torch_version", "cpu_threads"]].to_dict())  # fmt: skip
    cases = pd.concat([cases, pd.DataFrame([crashed])], ignore_index=True)
    html = build_report(cases)
    ok = cases[cases["status"] == "ok"]
    text = (
        f"{len(cases)} cases in the figures: {len(ok) - 3} valid, 3 noisy, 3 failed "
        "(oom 1, error 1, crashed 1)."
    )
    assert text in html


def test_a_file_whose_model_column_is_all_null_gives_a_clear_page(tmp_path: Path) -> None:
    # issue 17.9: this was "ValueError: max() arg is an empty sequence"
    rows = make_cases(hostile=False, two_devices=False).assign(model=None)
    results = tmp_path / "results"
    write_run(results, "run-null", rows, None)
    out = tmp_path / "r.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "None of the 10 rows names a model" in html


def test_quotes_in_names_read_as_typed_in_plotly_and_are_escaped_in_html() -> None:
    cases = make_cases(hostile=False).replace({"model": {"resnet18": QUOTED}})
    html = build_report(cases, title=QUOTED)
    names = json.dumps(payload(html))
    assert QUOTED.replace('"', '\\"') in names and "&quot;" not in names
    assert "<title>my &quot;net&quot;</title>" in html


def test_a_default_cpu_run_has_at_most_15_figure_blocks() -> None:
    # the CPU quick grid's shape: 22 models at batch 1, four also at batch 8 (two formats),
    # two trained at batch 8, every case with its layer profile
    models = [f"model{i}" for i in range(22)]
    rows = []
    for i, m in enumerate(models):
        bs_list = [(1, "contiguous", "inference")]
        if i < 4:
            bs_list += [(8, "contiguous", "inference"), (8, "channels_last", "inference")]
        if i < 2:
            bs_list += [(8, "contiguous", "training")]
        for bs, fmt, mode in bs_list:
            rows.append(case_row(model=m, batch_size=bs, memory_format=fmt, mode=mode,
                                 latency_s_median=0.01 * bs, latency_s_p90=0.011 * bs,
                                 throughput_per_s=100.0, macs=10**9 * bs, params=10**6,
                                 activation_bytes=10**6 * bs, peak_memory_bytes=2 * 10**6 * bs,
                                 validity="valid", case_id=f"{m}-{bs}-{fmt}-{mode}",
                                 **cpu_env()))  # fmt: skip
    layers = pd.concat(
        [vgg16_layers(model=m, run_id="run-cpu", case_id=f"{m}-1-contiguous-inference")
         for m in ["vgg16", *models[:21]]],
        ignore_index=True,
    )  # fmt: skip
    rows[0]["model"] = "vgg16"
    html = build_report(pd.DataFrame(rows), layers)
    assert len(payload(html)["figures"]) <= 15


# ----------------------------------------------------------------- through the result store


def write_run(results: Path, run_id: str, cases: pd.DataFrame, layers: pd.DataFrame | None) -> None:
    with ResultWriter(results, run_id) as writer:
        for row in cases.to_dict("records"):
            row = {
                k: v
                for k, v in row.items()
                if k not in ("schema_version", "run_id", "run_complete")
            }
            side = layers if layers is not None and row["model"] == "vgg16" else None
            side = side if row["batch_size"] == 1 else None
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
    assert len(spec["figures"]) == 10  # the hostile page's 12 less power (no trace written)
    assert "VGG-16 (3x224x224, batch 1, float32)" in html  # the layers came through the store
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


def test_importing_the_report_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, harness.report, harness.report.build; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_report_reads_results_only() -> None:
    """No module of the report imports torch or the measuring side of the harness."""
    import ast

    import harness.report

    root = Path(harness.report.__file__).parent
    files = [*root.glob("*.py"), root.parent / "cli" / "commands" / "report.py"]
    forbidden = (
        "torch",
        "harness.run.runner",
        "harness.measure",
        "harness.profile",
        "harness.core.spec",
    )
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


def test_headline_names_the_fastest_the_most_efficient_and_the_pareto_front() -> None:
    # (model, MACs per sample, throughput, samples per joule): b is fastest, c most efficient;
    # the front (no model both cheaper and faster) is a -> b, cheapest first; c and d are beaten
    spec = [("a", 1e8, 500.0, 2.0), ("b", 1e9, 800.0, 3.0), ("c", 2e9, 300.0, 9.0),
            ("d", 5e8, 400.0, 1.0)]  # fmt: skip
    rows = [
        case_row(model=m, batch_size=4, macs=int(4 * c), throughput_per_s=t,
                 latency_s_median=4 / t, samples_per_j=j, validity="valid", **cpu_env())
        for m, c, t, j in spec
    ]  # fmt: skip
    html = build_report(pd.DataFrame(rows))
    assert "<small>3x224x224:</small> b, 800 samples/s (batch 4)" in html
    assert "faster in noisy rows only" not in html
    assert "c, 9 samples/J (batch 4)" in html
    assert "a (100 MMACs, 500 /s, batch 4) → b (1 GMACs, 800 /s, batch 4)" in html
    # a noisy row faster than every valid one is named beside the winner, not as the winner
    fast = case_row(model="e", batch_size=8, macs=int(8 * 1e7), throughput_per_s=2000.0,
                    latency_s_median=8 / 2000, validity="noisy",
                    validity_reason="CPU pressure 50% of the rounds", **cpu_env())  # fmt: skip
    html = build_report(pd.DataFrame([*rows, fast]))
    assert (
        "b, 800 samples/s (batch 4); faster in noisy rows only: e, 2 K samples/s (batch 8)" in html
    )


def test_models_are_ranked_only_within_their_input_size() -> None:
    """Issue 25: lenet5 on 32x32 inputs was "fastest" against 224x224 models, and its Pareto
    front was LeNet alone."""
    spec = [
        ("lenet5", "1x32x32", 0.0004, 400_000),
        ("alexnet", "3x224x224", 0.016, 7e8),
        ("resnet18", "3x224x224", 0.05, 1.8e9),
        ("vgg16", "3x224x224", 0.4, 1.5e10),
    ]
    rows = [case_row(model=m, batch_size=1, input_shape=shape, latency_s_median=t,
                     throughput_per_s=1 / t, macs=int(macs), peak_memory_bytes=int(macs / 10),
                     validity="noisy" if m == "alexnet" else "valid",
                     validity_reason="CPU pressure 0.4 > 0.1" if m == "alexnet" else None,
                     **cpu_env()) for m, shape, t, macs in spec]  # fmt: skip
    html = build_report(pd.DataFrame(rows))
    fastest = html[html.index('<table class="headline fastest') :]
    fastest = fastest[: fastest.index("</table>")]
    first, second = re.findall(r"<tr><td>(.*?)</tr>", fastest)[:2]
    # the largest input-size group first; its valid winner, not the faster noisy alexnet
    assert "3x224x224" in first and "<b>resnet18</b>" in first and "valid" in first
    assert "faster in a noisy row only: alexnet 16 ms" in first
    assert "171.7 MiB" in first  # resnet18's peak memory (1.8e8 bytes) beside it
    assert "1x32x32" in second and "<b>lenet5</b>" in second
    # the Pareto front is per input size: 3x224x224's holds the 224x224 models, not lenet5
    assert "<small>3x224x224:</small> resnet18 (1.8 GMACs" in html
    assert "<small>1x32x32:</small> lenet5" not in html.split("Pareto front")[1].split(
        "</table>")[0].split("<small>3x224x224:</small> resnet18 (1.8 GMACs")[0]  # fmt: skip


def test_vgg16_time_shares_at_every_measured_batch_reach_the_page() -> None:
    cases = make_cases(hostile=False, two_devices=False)
    timed = (cases["model"] == "vgg16") & cases["batch_size"].isin([1, 8])
    cases.loc[timed, "layer_time_coverage"] = 0.97
    layers = pd.concat(
        [vgg16_layers(timed=True), vgg16_layers(8, case_id="vgg16-bs8-cuda:0", timed=True),
         vgg16_layers(2, case_id="vgg16-bs2-cuda:0")],  # static only: not read
        ignore_index=True,
    )  # fmt: skip
    html = build_report(cases, layers)
    assert (
        "Measured layer times, as shares of the layers&#x27; summed time: batch 1 (float32, H100"
        in html
    )
    assert "; batch 8 (float32, H100 80GB HBM3, " in html
    assert "Layer times add up to 97.0% of the step" in html


def test_a_new_users_directory_draws_the_full_runs_and_says_so(tmp_path: Path) -> None:
    """Issue 25: two full runs, a three-model -n auto run and a thread sweep in results/; the
    page drew the small runs that finished last (0 valid rows) and left both full runs out."""
    from tests.report_data import USER_RUNS, user_directory

    results = user_directory(tmp_path / "results")
    out = tmp_path / "page.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    head = html[html.index('<section id="headline">') : html.index('<table class="headline')]
    runs = re.search(r'<p class="runs">(.*?)</p>', head, re.S).group(1)
    drawn, left = runs.split("Left out")
    # the later full run for 2 threads (31 cases, 10 valid); for 1 thread, a tie of 11 cases
    # goes to the later run, the thread sweep
    assert f"2 threads: run {USER_RUNS['full-2']} (31 measured, 10 valid)" in drawn
    assert f"1 thread: run {USER_RUNS['threads']} (11 measured, 1 valid)" in drawn
    for name in ("full-1", "xdist"):
        assert USER_RUNS[name] in left
    assert "--all-runs pools them, --run ID draws a run" in left
    assert "42 cases in the figures: 11 valid, 31 noisy" in head
    # the flag draws another run
    assert main(["report", str(results), "-o", str(out), "--run", USER_RUNS["full-1"]]) == 0
    runs = re.search(r'<p class="runs">(.*?)</p>', out.read_text(encoding="utf-8")).group(1)
    assert runs.startswith(f"Figures draw run {USER_RUNS['full-1']} (31 measured, 12 valid)")
    assert main(["report", str(results), "-o", str(out), "--run", "nope"]) == 2
