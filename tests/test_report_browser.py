"""The report in a real headless Chromium: it renders every figure offline, without console
errors or network requests, runs nothing that result strings smuggle in, and shows them as
text. Two page loads in all (a report with hostile names, a report with nothing optional)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report import build_report
from harness.report.page import FIGURES_ELEMENT_ID
from tests.browser import RENDERED, Browser, PageVisit, require_browser
from tests.report_data import (
    HOSTILE_HOST,
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    NVML_MISSING,
    make_cases,
    power_trace,
    vgg16_layers,
)

pytestmark = pytest.mark.browser


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


@pytest.fixture(scope="module")
def hostile(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> tuple[PageVisit, int]:
    html = build_report(make_cases(), vgg16_layers(), power_trace(), title="hostile")
    path = tmp_path_factory.mktemp("report") / "hostile.html"
    path.write_text(html, encoding="utf-8")
    return browser.visit(path, wait_for=RENDERED), figure_count(html)


def test_page_loads_offline_without_errors(hostile: tuple[PageVisit, int]) -> None:
    visit, _ = hostile
    assert visit.console_errors == []
    assert visit.page_errors == []
    assert visit.requests == [visit.url]  # the file itself and nothing else


def test_every_figure_is_drawn(hostile: tuple[PageVisit, int]) -> None:
    visit, expected = hostile
    page = visit.page
    assert expected == 11
    assert page.get_attribute("body", "data-figures-rendered") == str(expected)
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('div.figure'))"
        ".filter(d => d.classList.contains('js-plotly-plot') && d.querySelector('svg.main-svg'))"
        ".length"
    )
    assert drawn == expected
    # every data figure has its plot area with at least one trace drawn
    assert (
        page.locator(
            ".js-plotly-plot .scatterlayer .trace, .js-plotly-plot .barlayer .trace"
        ).count()
        > expected
    )


def test_hostile_names_run_nothing_and_show_as_text(hostile: tuple[PageVisit, int]) -> None:
    visit, _ = hostile
    page = visit.page
    assert visit.dialogs == []
    assert page.evaluate("window.__alerts") == []
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 3
    body = page.inner_text("body")
    for text in (HOSTILE_IMG, HOSTILE_SCRIPT, HOSTILE_HOST):
        assert text in body  # the table shows them verbatim
    legend = page.evaluate(
        "Array.from(document.querySelectorAll('.legendtext')).map(e => e.textContent)"
    )
    assert any(HOSTILE_IMG in t for t in legend)
    assert any(HOSTILE_SCRIPT in t for t in legend)
    titles = page.evaluate(
        "Array.from(document.querySelectorAll('.gtitle')).map(e => e.textContent)"
    )
    assert f"{HOSTILE_IMG}: latency and throughput against batch size" in titles


def test_table_sorts_by_clicking_a_heading(hostile: tuple[PageVisit, int]) -> None:
    page = hostile[0].page
    table = page.locator("table.cases")
    table.locator("thead th", has_text="median").first.click()
    col = page.evaluate(
        "Array.from(document.querySelectorAll('table.cases thead th'))"
        ".findIndex(th => th.textContent.startsWith('median'))"
    )
    keys = page.evaluate(
        f"Array.from(document.querySelectorAll('table.cases tbody tr'))"
        f".map(r => r.cells[{col}].dataset.sort)"
    )
    present = [float(k) for k in keys if k != ""]
    assert present == sorted(present)
    assert keys[len(present) :] == [""] * (len(keys) - len(present))  # missing sort last
    assert len(present) < len(keys)


def test_screenshot(hostile: tuple[PageVisit, int], tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    hostile[0].page.screenshot(path=str(out), full_page=True)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1400 and height > 3000  # the whole page, every section
    assert len(data) > 100_000


def test_a_report_with_nothing_optional_says_what_is_missing(
    browser: Browser, tmp_path: Path
) -> None:
    cases = make_cases(hostile=False, two_devices=False)
    cases = cases.assign(energy_j_per_sample=None, power_w_mean=None, power_source=NVML_MISSING)
    html = build_report(cases)
    path = tmp_path / "plain.html"
    path.write_text(html, encoding="utf-8")
    visit = browser.visit(path, wait_for=RENDERED)
    assert visit.console_errors == [] and visit.page_errors == []
    assert visit.requests == [visit.url]
    page = visit.page
    assert page.get_attribute("body", "data-figures-rendered") == str(figure_count(html))
    notes = page.evaluate(
        "Array.from(document.querySelectorAll('.annotation-text')).map(e => e.textContent)"
    )
    assert any(f"power not measured: {NVML_MISSING}" in n for n in notes)
    body = page.inner_text("body")
    assert "No layer table in these results" in body
    assert "One device only" in body
