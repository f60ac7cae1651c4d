"""The self-contained HTML page: plotly.js embedded once, figures as inert JSON, text escaped.

Safety rules, in one place:
* every string from results reaches HTML through ``text.esc`` (``html.escape`` with quotes) and
  plotly through ``text.ptext`` (``& < >`` escaped, quotes as typed);
* figures (and the table of cases) travel in ``<script type="application/json">`` blocks whose
  text has ``<``, ``>``, ``&`` and the JS line separators written as ``\\uXXXX`` escapes, so no
  string in them can close the script element; the page's one script parses them, calls
  ``Plotly.newPlot`` and fills table cells with ``textContent`` (never HTML);
* nothing is fetched: plotly.js is inlined, MathJax is not used, no CDN, no fonts.

plotly.js: the official "basic" bundle (scatter, bar, pie: the only trace types the report
draws; 1.2 MB instead of 4.8 MB), vendored in ``vendor/`` at the version the installed plotly
package ships; with any other plotly version the package's own full bundle is used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from harness.report.noisy import NOISY_UID, TOGGLE_JS
from harness.report.style import Missing, Plot
from harness.report.text import esc

FIGURES_ELEMENT_ID = "cnnbench-figures"
PLOTLY_CONFIG = {"responsive": True, "displaylogo": False, "scrollZoom": False}

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


@dataclass(frozen=True)
class Html:
    """A fragment of HTML built by this package (its data already escaped): trusted as is."""

    text: str


@dataclass
class Section:
    """One part of the page: a heading (plain text), an introduction, and its parts in order."""

    anchor: str
    title: str
    intro: str = ""
    parts: list[Html | Plot | Missing | go.Figure] = field(default_factory=list)


def script_safe_json(text: str) -> str:
    """JSON text made safe inside a ``<script>`` element (still the same JSON value)."""
    for char, repl in _JSON_ESCAPES.items():
        text = text.replace(char, repl)
    return text


BASIC_BUNDLE = Path(__file__).parent / "vendor" / "plotly-basic.min.js"
TRACE_TYPES = ("scatter", "bar")  # what the report draws; the basic bundle has both
_VERSION = re.compile(r"plotly\.js(?: \([^)]*\))? v(\d+\.\d+\.\d+)")


def bundle_version(js: str) -> str | None:
    """The plotly.js version in a bundle's header comment (``plotly.js v4.1.1``)."""
    m = _VERSION.search(js[:400])
    return m.group(1) if m else None


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle embedded once per page: the vendored basic bundle when it is the
    version the plotly package ships, else the package's full bundle."""
    full = plotly.offline.get_plotlyjs()
    if BASIC_BUNDLE.is_file():
        basic = BASIC_BUNDLE.read_text(encoding="utf-8")
        if bundle_version(basic) is not None and bundle_version(basic) == bundle_version(full):
            return basic
    return full


def figures_payload(figures: list[tuple[str, go.Figure]]) -> str:
    """The JSON the page renders: the shared template once, then each figure's data and layout.

    The template (about 10 kB) is stored once instead of once per figure.
    """
    template = None
    items = []
    for element_id, fig in figures:
        spec = json.loads(pio.to_json(fig, validate=False))
        layout = spec.get("layout", {})
        tmpl = layout.pop("template", None)
        if tmpl is not None and "data" in tmpl:  # defaults of trace types never drawn: dropped
            tmpl["data"] = {k: v for k, v in tmpl["data"].items() if k in TRACE_TYPES}
        if tmpl is not None and template is None:
            template = tmpl
        elif tmpl is not None and tmpl != template:
            layout["template"] = tmpl  # a figure with its own template keeps it
        data = spec.get("data", [])
        for i, trace in enumerate(data):  # plotly.py drops uids: the hidden (noisy) get theirs
            if trace.get("visible") is False:
                trace["uid"] = f"{NOISY_UID}{element_id}-{i}"
        items.append({"id": element_id, "data": data, "layout": layout})
    payload = json.dumps(
        {"template": template, "figures": items}, separators=(",", ":"), allow_nan=False
    )
    return script_safe_json(payload)


def paragraph(text: str, css_class: str = "") -> Html:
    """A paragraph of plain text (escaped here)."""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return Html(f"<p{cls}>{esc(text)}</p>")


CSS = """
:root { --fg: #1d1d1f; --muted: #5b5b66; --line: #e3e3e8; --accent: #2456c9; }
* { box-sizing: border-box; }
html, body { max-width: 100%; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: var(--fg); margin: 0; background: #fafafc; overflow-wrap: anywhere; }
header { background: #14213d; color: #fff; padding: 14px 24px; }
header h1 { margin: 0 0 4px 0; font-size: 21px; font-weight: 600; }
header p { margin: 0; color: #cfd6e6; font-size: 13px; }
nav { padding: 6px 24px; background: #fff; border-bottom: 1px solid var(--line);
  position: sticky; top: 0; z-index: 10; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 12px; white-space: nowrap;
  display: inline-block; }
main { padding: 4px 24px 36px 24px; max-width: 1500px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 4px 16px 12px 16px; margin: 12px 0; scroll-margin-top: 40px; min-width: 0; }
h2 { font-size: 18px; margin: 10px 0 4px 0; }
p { font-size: 13.5px; line-height: 1.45; color: var(--muted); max-width: 1100px; }
p.claim { color: var(--fg); background: #f3f6fd; border-left: 3px solid var(--accent);
  padding: 8px 12px; }
p.counts { color: var(--fg); font-size: 14px; margin: 6px 0; }
p.missing { color: #a33; }
p.note { font-size: 12px; margin: 2px 0 2px 0; max-width: none; }
ul.notes { font-size: 12px; color: var(--muted); margin: 4px 0; padding-left: 18px; }
.figure { width: 100%; margin: 6px 0 4px 0; }
.figure-notes { margin: 0 0 14px 0; }
.missing-figure { margin: 8px 0 12px 0; }
.missing-figure .fig-title { color: var(--fg); font-weight: 600; margin-bottom: 0; }
.table-wrap { overflow-x: auto; max-height: 640px; overflow-y: auto; margin: 6px 0;
  max-width: 100%; }
.table-wrap.short { max-height: 360px; }
.table-wrap.whole { max-height: none; }
table { border-collapse: collapse; font-size: 12px; white-space: nowrap; }
table.wrap { white-space: normal; width: 100%; table-layout: auto; }
table.wrap td { max-width: none; overflow-wrap: anywhere; }
table.headline td { vertical-align: top; font-size: 12.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; }
td { max-width: 360px; overflow: hidden; text-overflow: ellipsis; }
td.num, th.num { text-align: right; }
thead th { position: sticky; top: 0; background: #f0f1f5; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " \\25B2"; }
table.sortable th[data-dir="desc"]::after { content: " \\25BC"; }
tr:hover td { background: #f7f8fb; }
details summary { cursor: pointer; color: var(--accent); }
details code { white-space: pre-wrap; word-break: break-all; }
.table-tools { font-size: 12.5px; margin: 6px 0; }
.table-tools input { width: 340px; max-width: 60%; font-size: 12.5px; padding: 3px 6px; }
.table-tools .count { color: var(--muted); margin: 0 8px; }
footer { color: var(--muted); font-size: 12px; padding: 0 24px 24px 24px; }
nav label.noisy-toggle { float: right; color: var(--fg); cursor: pointer; }
p.runs { color: var(--fg); font-size: 13px; margin: 6px 0 2px 0; max-width: none; }
table.fastest { margin: 6px 0 10px 0; }
table.fastest caption { text-align: left; font-size: 13px; color: var(--fg); font-weight: 600;
  padding: 2px 0 4px 0; }
span.noisy { color: #a35a00; font-weight: 600; }
span.valid { color: #1b6e2a; font-weight: 600; }
.nowrap { white-space: nowrap; }
"""

TABLE_JS = """
document.querySelectorAll("div.cases-table").forEach(function (box) {
  var spec = JSON.parse(document.getElementById(box.dataset.source).textContent);
  var cols = spec.columns, n = spec.rows, PAGE = 100, DASH = "\\u2014";
  var table = box.querySelector("table"), tbody = table.tBodies[0];
  var count = box.querySelector(".count"), prev = box.querySelector(".prev");
  var next = box.querySelector(".next"), filter = box.querySelector(".filter");
  var order = [], view, page = 0, sortCol = -1, asc = true, terms = [], rowText = null;
  for (var i = 0; i < n; i++) { order.push(i); }
  var head = document.createElement("tr");
  function text(c, i) { var k = c.c[i]; return k < 0 ? DASH : c.d[k]; }
  cols.forEach(function (c, j) {
    var th = document.createElement("th");
    th.textContent = c.h;
    if (c.n) { th.className = "num"; }
    th.addEventListener("click", function () {
      asc = sortCol === j ? !asc : true;
      sortCol = j;
      head.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? "asc" : "desc";
      apply();
    });
    head.appendChild(th);
  });
  table.tHead.appendChild(head);
  function apply() {
    var rows = order;
    if (terms.length) {
      if (!rowText) {
        rowText = order.map(function (i) {
          return cols.map(function (c) { return text(c, i); }).join(" ").toLowerCase();
        });
      }
      rows = order.filter(function (i) {
        return terms.every(function (t) { return rowText[i].indexOf(t) >= 0; });
      });
    }
    if (sortCol >= 0) {
      var codes = cols[sortCol].c;
      rows = rows.slice().sort(function (a, b) {
        var x = codes[a], y = codes[b];
        if (x < 0 || y < 0) { return ((x < 0) - (y < 0)) || a - b; }
        return (asc ? x - y : y - x) || a - b;
      });
    }
    view = rows; page = 0; draw();
  }
  function draw() {
    var start = page * PAGE, end = Math.min(view.length, start + PAGE);
    var frag = document.createDocumentFragment();
    for (var r = start; r < end; r++) {
      var i = view[r], tr = document.createElement("tr");
      for (var j = 0; j < cols.length; j++) {
        var c = cols[j], td = document.createElement("td"), k = c.c[i];
        td.textContent = k < 0 ? DASH : c.d[k];
        if (c.n) { td.className = "num"; }
        if (c.t && c.t.c[i] >= 0) { td.title = c.t.d[c.t.c[i]]; }
        tr.appendChild(td);
      }
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    count.textContent = view.length ? "rows " + (start + 1) + "-" + end + " of " + view.length +
      (view.length < n ? " (filtered from " + n + ")" : "") : "no row matches";
    prev.disabled = page === 0;
    next.disabled = end >= view.length;
  }
  prev.addEventListener("click", function () { page = Math.max(0, page - 1); draw(); });
  next.addEventListener("click", function () { page += 1; draw(); });
  var timer = null;
  filter.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      terms = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
      apply();
    }, 150);
  });
  apply();
  box.setAttribute("data-ready", String(Math.round(performance.now())));
});
"""

RENDER_JS = """
(function () {
  var spec = JSON.parse(document.getElementById("%(element)s").textContent);
  var config = %(config)s;
  var jobs = spec.figures.map(function (f) {
    var layout = f.layout;
    if (spec.template && !layout.template) { layout.template = spec.template; }
    return Plotly.newPlot(f.id, f.data, layout, config);
  });
  Promise.all(jobs).then(function () {
    if (window.cnnbenchAfterRender) { window.cnnbenchAfterRender(); }
    document.body.setAttribute("data-figures-rendered", String(jobs.length));
    document.body.setAttribute("data-rendered-ms", String(Math.round(performance.now())));
  }, function (err) { console.error("cnnbench report: a figure failed to render:", err); });
})();
"""


def _figure_html(element_id: str, plot: Plot) -> str:
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in plot.notes)
    div = f'<div class="figure" id="{element_id}"></div>'
    return div + (f'<div class="figure-notes">{notes}</div>' if notes else "")


def _missing_html(missing: Missing) -> str:
    lines = "<br>".join(esc(line) for line in missing.lines) or "nothing to show"
    return (
        f'<div class="missing-figure"><p class="fig-title">{esc(missing.title)}</p>'
        f'<p class="missing">{lines}</p></div>'
    )


def render_page(
    title: str, subtitle: str, sections: list[Section], footer: str = "", nav_extra: str = ""
) -> str:
    """The whole HTML document. ``title``, ``subtitle`` and ``footer`` are plain text;
    ``nav_extra`` is HTML built by this package (the noisy rows' check box)."""
    figures: list[tuple[str, go.Figure]] = []
    body = []
    for section in sections:
        parts = [f'<section id="{esc(section.anchor)}"><h2>{esc(section.title)}</h2>']
        if section.intro:
            parts.append(paragraph(section.intro).text)
        for part in section.parts:
            if isinstance(part, Html):
                parts.append(part.text)
            elif isinstance(part, Missing):
                parts.append(_missing_html(part))
            else:
                plot = part if isinstance(part, Plot) else Plot(part)
                element_id = f"fig-{len(figures) + 1}"
                figures.append((element_id, plot.figure))
                parts.append(_figure_html(element_id, plot))
        parts.append("</section>")
        body.append("".join(parts))
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    render_js = RENDER_JS % {"element": FIGURES_ELEMENT_ID, "config": json.dumps(PLOTLY_CONFIG)}
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{CSS}</style>",
            f"<script>{plotly_js()}</script>",
            "</head><body>",
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>",
            f"<nav>{nav}{nav_extra}</nav>",
            "<main>",
            *body,
            "</main>",
            f"<footer>{esc(footer)}</footer>",
            f'<script type="application/json" id="{FIGURES_ELEMENT_ID}">'
            f"{figures_payload(figures)}</script>",
            f"<script>{TABLE_JS}{render_js}{TOGGLE_JS}</script>",
            "</body></html>",
            "",
        ]
    )
