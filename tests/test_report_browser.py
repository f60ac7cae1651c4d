"""The report in a real headless Chromium: it renders every figure offline, without console
errors or network requests, runs nothing that result strings smuggle in and shows them as text
(quotes as typed), fits a 1366x768 first screen without horizontal scrolling, and its table
sorts and filters. Three page loads: hostile names on two devices, several runs and
configurations, and a report with nothing optional."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.report import build_report
from harness.report.page import FIGURES_ELEMENT_ID
from tests.browser import RENDERED, Browser, PageVisit, require_browser
from tests.report_data import (
    HOSTILE_HOST,
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    NVML_MISSING,
    QUOTED,
    make_cases,
    power_trace,
    vgg16_layers,
)

pytestmark = pytest.mark.browser
READY = RENDERED + " && document.querySelector('div.cases-table[data-ready]') !== null"
DRAWN = (
    "Array.from(document.querySelectorAll('div.figure'))"
    ".filter(d => d.classList.contains('js-plotly-plot') && d.querySelector('svg.main-svg')"
    " && d.querySelector('.scatterlayer .trace, .barlayer .trace')).length"
)


def figure_count(html: str) -> int:
    m = re.search(rf'id="{FIGURES_ELEMENT_ID}">(.*?)</script>', html, re.S)
    assert m is not None
    return len(json.loads(m.group(1))["figures"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser(require_browser())
    try:
        yield b
    finally:
        b.close()


def _open(browser: Browser, directory: Path, html: str, **size: int) -> tuple[PageVisit, int]:
    path = directory / "report.html"
    path.write_text(html, encoding="utf-8")
    return browser.visit(path, wait_for=READY, **size), figure_count(html)


@pytest.fixture(scope="module")
def hostile(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> tuple[PageVisit, int]:
    cases = make_cases().replace({"model": {"resnet18": QUOTED}})
    html = build_report(cases, vgg16_layers(timed=True), power_trace(), title="hostile")
    return _open(browser, tmp_path_factory.mktemp("hostile"), html, width=1366, height=768)


def test_page_loads_offline_without_errors(hostile: tuple[PageVisit, int]) -> None:
    visit, _ = hostile
    assert visit.console_errors == []
    assert visit.page_errors == []
    assert visit.requests == [visit.url]  # the file itself and nothing else


def test_every_figure_is_drawn(hostile: tuple[PageVisit, int]) -> None:
    visit, expected = hostile
    # latency and throughput facets, every model at batch 1, cost, memory, energy, layer
    # shares, VGG-16 layers and layer roofline, roofline, speedup, power trace
    assert expected == 12
    assert visit.page.get_attribute("body", "data-figures-rendered") == str(expected)
    assert visit.page.evaluate(DRAWN) == expected  # each has a plot with a trace in it


def test_hostile_names_run_nothing_and_show_as_text(hostile: tuple[PageVisit, int]) -> None:
    visit, _ = hostile
    page = visit.page
    assert visit.dialogs == []
    assert page.evaluate("window.__alerts") == []
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 4  # plotly.js, two JSON blocks, the page script
    table = page.inner_text("table.cases")
    for text in (HOSTILE_IMG, HOSTILE_SCRIPT, QUOTED):
        assert text in table  # the table shows them verbatim
    assert HOSTILE_HOST in page.inner_text("table.summary")
    titles = page.evaluate(
        "Array.from(document.querySelectorAll('.annotation-text')).map(e => e.textContent)"
    )
    assert HOSTILE_IMG in titles and HOSTILE_SCRIPT in titles  # facet titles, as text
    assert QUOTED in titles  # read as typed: no &quot;
    assert not any("&quot;" in t or "&lt;" in t for t in titles)


def test_first_screen_fits_1366_without_horizontal_scrolling(
    hostile: tuple[PageVisit, int],
) -> None:
    page = hostile[0].page
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    # nothing that starts on the first screen reaches past its right edge (tables that
    # scroll inside their own box excepted)
    wide = page.evaluate(
        """Array.from(document.querySelectorAll('body *')).filter(e => {
             const r = e.getBoundingClientRect();
             return r.top < 768 && r.right > 1366 + 0.5 && !e.closest('.table-wrap');
           }).map(e => e.tagName + '.' + e.className)"""
    )
    assert wide == []
    headline = page.locator("#headline").bounding_box()
    assert headline is not None and headline["y"] < 200  # the headline is the first section


def test_table_sorts_and_filters(hostile: tuple[PageVisit, int]) -> None:
    page = hostile[0].page
    cases = make_cases().replace({"model": {"resnet18": QUOTED}})
    heads = page.locator("table.cases thead th")
    names = [heads.nth(i).inner_text() for i in range(heads.count())]
    col, model, batch = names.index("median"), names.index("model"), names.index("batch")
    heads.nth(col).click()
    shown = page.evaluate(
        f"Array.from(document.querySelectorAll('table.cases tbody tr'))"
        f".map(r => [r.cells[{model}].textContent, r.cells[{batch}].textContent])"
    )
    ordered = cases[cases["latency_s_median"].notna()].sort_values("latency_s_median",
                                                                    kind="stable")  # fmt: skip
    expected = [[m, str(b)] for m, b in zip(ordered["model"], ordered["batch_size"],
                                            strict=True)]  # fmt: skip
    assert shown[: len(expected)] == expected
    assert all(r[0] in set(cases[cases["latency_s_median"].isna()]["model"])
               for r in shown[len(expected):])  # missing sort last  # fmt: skip
    page.fill("input.filter", "vgg16 h100")
    page.wait_for_function(
        "document.querySelectorAll('table.cases tbody tr').length === 5", timeout=5000
    )
    assert "filtered from 34" in page.inner_text(".table-tools .count")


def test_screenshot(hostile: tuple[PageVisit, int], tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    hostile[0].page.screenshot(path=str(out), full_page=True)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert width == 1366 and height > 3000  # the whole page, every section


def test_several_runs_and_configurations(browser: Browser, tmp_path: Path) -> None:
    gpu = make_cases(hostile=False)
    cpu = gpu[gpu["device"] == "cpu"]
    rerun = cpu.assign(run_id="run-cpu-2", timestamp_utc="2026-11-24T11:00:00Z")
    one_thread = cpu.assign(
        run_id="run-cpu-1t", cpu_threads=1, latency_s_median=cpu["latency_s_median"] * 1.8
    )
    cases = pd.concat([gpu, rerun, one_thread], ignore_index=True)
    visit, n = _open(browser, tmp_path, build_report(cases), width=1366, height=768)
    page = visit.page
    assert visit.console_errors == [] and visit.page_errors == []
    assert page.evaluate(DRAWN) == n
    legend = page.evaluate(
        "Array.from(document.querySelectorAll('#speedup .legendtext')).map(e => e.textContent)"
    )
    # three configurations, not four runs: the GPU baseline and the CPU at 2 and 1 threads
    assert [t.split(" (")[0] for t in legend] == [
        "Intel Xeon Test · 2 threads",
        "Intel Xeon Test · 1 thread",
    ]
    assert all(len(t) < 60 for t in legend)  # short entries, details in the hover
    notes = page.locator("#speedup .figure-notes").bounding_box()
    plot = page.locator("#speedup div.figure").bounding_box()
    assert notes is not None and plot is not None and notes["y"] >= plot["y"] + plot["height"]
    assert "1 other run(s) left out" in page.inner_text("#headline")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_a_report_with_nothing_optional_says_what_is_missing(
    browser: Browser, tmp_path: Path
) -> None:
    cases = make_cases(hostile=False, two_devices=False)
    cases = cases.assign(energy_j_per_sample=None, power_w_mean=None, power_source=NVML_MISSING)
    visit, n = _open(browser, tmp_path, build_report(cases))
    assert visit.console_errors == [] and visit.page_errors == []
    assert visit.requests == [visit.url]
    page = visit.page
    assert page.get_attribute("body", "data-figures-rendered") == str(n)
    body = page.inner_text("body")
    assert f"power not measured: {NVML_MISSING}" in body
    assert "No layer table in these results" in body
    assert "One configuration only" in body


def test_the_screenshot_tool_takes_one_section(browser: Browser, tmp_path: Path) -> None:
    from tests.browser import screenshot

    page = tmp_path / "plain.html"
    page.write_text(build_report(make_cases(hostile=False)), encoding="utf-8")
    out = screenshot(page, tmp_path / "headline.png", section="headline", browser=browser)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") < 1366  # the section's box, not the viewport


def test_a_new_users_first_screen(browser: Browser, tmp_path: Path) -> None:
    """Issue 25, at 1366x768: the first screen says which runs are drawn and which are left
    out with the flag, and answers "the fastest model per input size at batch 1, its memory,
    its validity"; noisy rows are hidden until asked for; the table of cases shows peak memory
    without scrolling right and has no scroll area of its own."""
    from harness.report import write_report
    from tests.report_data import USER_RUNS, user_directory

    results = user_directory(tmp_path / "results")
    page_path = write_report([results], tmp_path / "user.html")
    visit = browser.visit(page_path, width=1366, height=768, wait_for=READY)
    page = visit.page
    assert visit.console_errors == [] and visit.page_errors == []

    def bottom(selector: str) -> float:
        box = page.locator(selector).first.bounding_box()
        assert box is not None
        return box["y"] + box["height"]

    assert bottom("p.runs") <= 768 and bottom("table.fastest") <= 768
    runs = page.inner_text("p.runs")
    assert USER_RUNS["full-2"] in runs.split("Left out")[0] and "--all-runs" in runs
    first = page.locator("table.fastest tbody tr").first.inner_text()
    assert "3x224x224" in first and "alexnet" in first and "MiB" in first and "valid" in first
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    # noisy traces are hidden until the box in the bar is ticked, then drawn
    count = (
        "Array.from(document.querySelectorAll('div.figure')).reduce((n, gd) => n + "
        "(gd.data || []).filter(t => String(t.uid || '').startsWith('noisy-') && "
        "t.visible !== false).length, 0)"
    )
    assert page.evaluate(count) == 0
    page.check("#show-noisy")
    page.wait_for_function("document.body.getAttribute('data-noisy-shown') === 'true'")
    assert page.evaluate(count) > 0 and visit.page_errors == []
    # the table: peak memory within the window, no inner vertical scroll
    peak = page.locator("#cases thead th", has_text="peak memory").first.bounding_box()
    assert peak is not None and peak["x"] + peak["width"] <= 1366
    inner = page.evaluate(
        "(() => { const w = document.querySelector('#cases .table-wrap'); "
        "return w.scrollHeight - w.clientHeight; })()"
    )
    assert inner == 0


def test_a_page_without_a_valid_row_draws_its_noisy_rows(browser: Browser, tmp_path: Path) -> None:
    """A run of which no row is valid (this VM on a bad day: every row noisy) would otherwise
    open on empty charts: the toggle starts ticked, the noisy traces are drawn once the figures
    exist, and the first screen says why; with one valid row they start hidden again."""
    cases = make_cases(hostile=False)
    ok = cases["status"] == "ok"
    cases.loc[ok, "validity"] = "noisy"
    cases.loc[ok, "validity_reason"] = "windows disagree: 1.40x between the fastest and slowest"
    page_path = tmp_path / "noisy.html"
    page_path.write_text(build_report(cases), encoding="utf-8")
    visit = browser.visit(page_path, width=1366, height=768, wait_for=READY)
    page = visit.page
    assert visit.console_errors == [] and visit.page_errors == []
    drawn = (
        "Array.from(document.querySelectorAll('div.figure')).reduce((n, gd) => n + "
        "(gd.data || []).filter(t => String(t.uid || '').startsWith('noisy-') && "
        "t.visible !== false).length, 0)"
    )
    assert page.is_checked("#show-noisy") and page.evaluate(drawn) > 0
    assert "No row in the figures is valid, so the noisy rows are drawn" in page.inner_text(
        "p.counts"
    )
    page.uncheck("#show-noisy")
    page.wait_for_function("document.body.getAttribute('data-noisy-shown') === 'false'")
    assert page.evaluate(drawn) == 0

    one_valid = cases.copy()
    one_valid.loc[one_valid.index[ok][0], "validity"] = "valid"
    page_path.write_text(build_report(one_valid), encoding="utf-8")
    visit = browser.visit(page_path, width=1366, height=768, wait_for=READY)
    assert not visit.page.is_checked("#show-noisy") and visit.page.evaluate(drawn) == 0
