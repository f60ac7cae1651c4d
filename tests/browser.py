"""Headless Chromium for the report tests: load a page from file:// and record what happened.

Uses Debian's chromium (``/usr/bin/chromium``, installed by ``.ci/run``) through playwright's
Python package; ``playwright install`` is never needed. Without a browser the tests skip with
the reason, except under CI (the ``CI`` environment variable), where they fail: CI must test in
a real browser.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Records dialogs and calls to alert/confirm/prompt before any page script runs.
INIT_SCRIPT = """
window.__alerts = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = function (msg) { window.__alerts.push(name + ":" + String(msg)); };
}
"""


def chromium_path() -> str | None:
    """The Chromium executable: $CNNBENCH_CHROMIUM, /usr/bin/chromium, or chromium on PATH."""
    for candidate in (os.environ.get("CNNBENCH_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """The Chromium path and a usable playwright, else skip (fail under CI) with the reason."""
    reason = None
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install playwright; no browser download)"
    if path is None:
        reason = "no Chromium found (apt-get install chromium, or set CNNBENCH_CHROMIUM)"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the report tests in a real browser: {reason}")
        pytest.skip(reason)
    return str(path)


@dataclass
class PageVisit:
    """What one page load did: console errors, page errors, requests and dialogs."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page: Any = None


class Browser:
    """One Chromium for a test module; ``visit`` opens a fresh page per file."""

    def __init__(self, executable: str) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        self._pages: list[Any] = []

    def visit(
        self,
        path: Path,
        *,
        width: int = 1400,
        height: int = 900,
        wait_for: str | None = None,
        timeout_ms: float = 30_000,
    ) -> PageVisit:
        """Load ``path`` and wait for ``wait_for`` (a JS expression) to become true."""
        url = path.resolve().as_uri()
        visit = PageVisit(url)
        context = self._browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.add_init_script(INIT_SCRIPT)
        page.on(
            "console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e: visit.page_errors.append(str(e)))
        page.on("request", lambda r: visit.requests.append(r.url))

        def on_dialog(d: Any) -> None:
            visit.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)
        page.goto(url, wait_until="load", timeout=timeout_ms)
        if wait_for:
            page.wait_for_function(wait_for, timeout=timeout_ms)
        visit.page = page
        self._pages.append(context)
        return visit

    def close(self) -> None:
        for context in self._pages:
            context.close()
        self._browser.close()
        self._pw.stop()


def screenshot(
    report: Path,
    out: Path,
    *,
    width: int = 1366,
    height: int = 768,
    full_page: bool = False,
    section: str | None = None,
    browser: Browser | None = None,
) -> Path:
    """A PNG of a rendered report: the first screen (``width`` x ``height``), the whole page,
    or one section (an element id: headline, latency, cost, memory, energy, layers, roofline,
    speedup, power, cases, runs) from its top to its bottom."""
    path = chromium_path()
    if path is None and browser is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")
    b = browser or Browser(str(path))
    try:
        v = b.visit(report, width=width, height=height, wait_for=RENDERED)
        if section:
            # the sticky navigation bar would cover the section's top in an element shot
            v.page.add_style_tag(content="nav { position: static !important; }")
            v.page.locator(f"#{section}").screenshot(path=str(out))
        else:
            v.page.screenshot(path=str(out), full_page=full_page)
        if v.console_errors or v.page_errors:
            raise SystemExit(f"the page reported errors: {v.console_errors + v.page_errors}")
    finally:
        if browser is None:
            b.close()
    return out


RENDERED = "document.body.hasAttribute('data-figures-rendered')"


if __name__ == "__main__":  # python -m tests.browser REPORT.html OUT.png [--full | --section ID]
    import argparse

    ap = argparse.ArgumentParser(description="Screenshot a cnnbench report in headless Chromium")
    ap.add_argument("report", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--full", action="store_true", help="the whole page, not the viewport")
    ap.add_argument("--section", default=None, help="only this section (headline, layers...)")
    ap.add_argument("--width", type=int, default=1366)
    ap.add_argument("--height", type=int, default=768)
    a = ap.parse_args()
    print(
        screenshot(
            a.report, a.out, width=a.width, height=a.height, full_page=a.full, section=a.section
        )
    )
