"""The report against issue 24's hostile strings and thin rows: a row of one round shows no
interval (not "±0.0%"), megabyte strings are cut in the figures (one made a 185 MB page), and
``%{...}`` in a model name is shown as typed (plotly filled it with trace data)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.report import build_report
from harness.report.page import FIGURES_ELEMENT_ID
from harness.report.text import FIGURE_TEXT_CHARS, HTML_TEXT_CHARS
from tests.report_data import case_row, make_cases, power_trace, vgg16_layers


def _figures(html: str) -> str:
    m = re.search(rf'id="{FIGURES_ELEMENT_ID}">(.*?)</script>', html, re.S)
    assert m is not None
    return json.loads(m.group(1))  # the figures' JSON, decoded


def _hovers(html: str) -> list[str]:
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "hovertext":
                    out.extend(v for v in value if isinstance(v, str))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(_figures(html))
    return out


def test_a_row_of_one_round_shows_no_interval() -> None:
    import pandas as pd

    def row(model: str, samples: list[float], low: float, high: float) -> dict:
        median = sorted(samples)[len(samples) // 2]
        return case_row(
            model=model, batch_size=1, device="cpu", device_name="cpu", host="box",
            rounds=len(samples), latency_s_median=median, latency_s_median_ci_low=low,
            latency_s_median_ci_high=high, throughput_per_s=1 / median,
        )  # fmt: skip

    cases = pd.DataFrame(
        [
            row("one_round", [0.5], 0.5, 0.5),  # an "interval" [median, median]
            row(
                "eight_rounds",
                [0.010, 0.011, 0.0105, 0.0102, 0.0108, 0.0101, 0.0103, 0.0104],
                0.0101,
                0.0105,
            ),
        ]
    )
    hovers = _hovers(build_report(cases))
    one = [h for h in hovers if h.startswith("one_round")]
    eight = [h for h in hovers if h.startswith("eight_rounds")]
    assert one and all("median 500 ms ±? (1 round)," in h for h in one), one
    assert not any("±0.0%" in h for h in one)
    assert all("1 round<br>" in h or h.endswith("1 round") for h in one)  # not "1 rounds"
    # (0.0105 - 0.0101) / 2 / 0.0104 = 1.92%
    assert eight and all("±1.9%" in h and "8 rounds" in h for h in eight), eight


def test_megabyte_strings_are_cut_in_the_figures() -> None:
    big = "m" * (1 << 20)
    cases = make_cases(hostile=False).replace({"model": {"resnet18": big + "-net"}})
    cases["validity_reason"] = "v" * (1 << 20)
    html = build_report(cases, vgg16_layers(timed=True), power_trace(), title="big")
    # two 1 MB strings: every trace, point, hover, note and headline cell repeated them (13 MB
    # here; 185 MB for 10 MB strings on a larger page); the page now holds a few kB of each
    assert len(html) < 2_000_000, len(html)
    figures = json.dumps(_figures(html))
    assert "m" * (FIGURE_TEXT_CHARS + 1) not in figures
    assert "v" * (FIGURE_TEXT_CHARS + 1) not in figures
    assert f"{'m' * FIGURE_TEXT_CHARS}... ({len(big) + 4:,} characters)" in figures
    assert "m" * (HTML_TEXT_CHARS + 1) not in html


PERCENT_NAME = "net %{x} and %{meta[0]} %{y:.2f}"


def test_template_syntax_in_a_name_is_not_left_for_plotly_to_fill() -> None:
    cases = make_cases(hostile=False).replace({"model": {"resnet18": PERCENT_NAME}})
    figures = json.dumps(_figures(build_report(cases)))
    assert "%{x} and" not in figures  # every copy of the name escapes the brace
    assert "net %&#123;x} and %&#123;meta[0]} %&#123;y:.2f}" in figures


@pytest.mark.browser
def test_template_syntax_in_a_name_shows_as_typed_in_a_browser(tmp_path: Path) -> None:
    from tests.browser import RENDERED, Browser, require_browser

    cases = make_cases(hostile=False).replace({"model": {"resnet18": PERCENT_NAME}})
    path = tmp_path / "report.html"
    path.write_text(build_report(cases, vgg16_layers(timed=True), power_trace()))
    browser = Browser(require_browser())
    try:
        page = browser.visit(path, wait_for=RENDERED).page
        texts = page.evaluate(
            "Array.from(document.querySelectorAll('.annotation-text, .legendtext'))"
            ".map(e => e.textContent)"
        )
    finally:
        browser.close()
    named = [t for t in texts if t.startswith("net ")]
    assert named and all(t.startswith(PERCENT_NAME) for t in named), named
