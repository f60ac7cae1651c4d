"""Self-contained HTML reports of benchmark results (plotly.js embedded once, text escaped).

``build_report(cases, layers, power)`` returns the HTML text from result DataFrames;
``write_report(paths, out)`` reads result files through ``load_results`` and writes the page.
Figure functions live in ``figures``, ``layers`` and ``roofline``; the page in ``page``.
"""

from __future__ import annotations

from harness.report.build import DEFAULT_TITLE, build_report, write_report

__all__ = ["DEFAULT_TITLE", "build_report", "write_report"]
