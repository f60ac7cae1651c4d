"""The self-contained HTML page: plotly.js embedded once, figures as inert JSON, text escaped.

Safety rules, in one place:
* every string from results reaches HTML through ``esc`` (``html.escape`` with quotes);
* figures travel in one ``<script type="application/json">`` block whose text has ``<``, ``>``,
  ``&`` and the JS line separators written as ``\\uXXXX`` escapes, so no string in it can close
  the script element; one small script parses it and calls ``Plotly.newPlot``;
* nothing is fetched: plotly.js is inlined, MathJax is not used, no CDN, no fonts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from harness.report.data import esc

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
    parts: list[Html | go.Figure] = field(default_factory=list)


def script_safe_json(text: str) -> str:
    """JSON text made safe inside a ``<script>`` element (still the same JSON value)."""
    for char, repl in _JSON_ESCAPES.items():
        text = text.replace(char, repl)
    return text


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (embedded once per page)."""
    return plotly.offline.get_plotlyjs()


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
        if tmpl is not None and template is None:
            template = tmpl
        elif tmpl is not None and tmpl != template:
            layout["template"] = tmpl  # a figure with its own template keeps it
        items.append({"id": element_id, "data": spec.get("data", []), "layout": layout})
    payload = json.dumps(
        {"template": template, "figures": items}, separators=(",", ":"), allow_nan=False
    )
    return script_safe_json(payload)


def table(
    headers: list[str],
    rows: list[list[tuple[str, str | None, str | None]]],
    *,
    sortable: bool = False,
    css_class: str = "",
) -> Html:
    """An HTML table. ``headers`` are plain text; each cell is (plain text, sort key, title or
    None), all escaped here. Sort key None: the text itself; ``""``: missing, sorts last."""
    cls = " ".join(c for c in ("sortable" if sortable else "", css_class) if c)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for text, key, title in row:
            attrs = ""
            if sortable and key is not None:
                attrs += f' data-sort="{esc(key)}"'
            if title:
                attrs += f' title="{esc(title)}"'
            cells.append(f"<td{attrs}>{esc(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return Html(
        f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def paragraph(text: str, css_class: str = "") -> Html:
    """A paragraph of plain text (escaped here)."""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return Html(f"<p{cls}>{esc(text)}</p>")


def escaped_paragraph(escaped: str, css_class: str = "") -> Html:
    """A paragraph of text that the caller has already escaped with ``esc``."""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return Html(f"<p{cls}>{escaped}</p>")


CSS = """
:root { --fg: #1d1d1f; --muted: #5b5b66; --line: #e3e3e8; --accent: #2456c9; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: var(--fg); margin: 0; background: #fafafc; }
header { background: #14213d; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #cfd6e6; font-size: 13px; }
nav { padding: 8px 28px; background: #fff; border-bottom: 1px solid var(--line);
  position: sticky; top: 0; z-index: 10; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
main { padding: 8px 28px 40px 28px; max-width: 1500px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 6px 18px 14px 18px; margin: 16px 0; scroll-margin-top: 44px; }
h2 { font-size: 18px; margin: 12px 0 6px 0; }
p { font-size: 13.5px; line-height: 1.5; color: var(--muted); max-width: 1100px; }
p.claim { color: var(--fg); background: #f3f6fd; border-left: 3px solid var(--accent);
  padding: 8px 12px; }
p.missing { color: #a33; }
.figure { width: 100%; margin: 6px 0 12px 0; }
.table-wrap { overflow-x: auto; max-height: 640px; overflow-y: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: 12px; white-space: nowrap; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; }
td { max-width: 360px; overflow: hidden; text-overflow: ellipsis; }
thead th { position: sticky; top: 0; background: #f0f1f5; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " \\25B2"; }
table.sortable th[data-dir="desc"]::after { content: " \\25BC"; }
tr:hover td { background: #f7f8fb; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px 28px; }
"""

SORT_JS = """
function key(cell) {
  return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.dir !== "asc";
      table.querySelectorAll("thead th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? "asc" : "desc";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[col]), y = key(b.cells[col]);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
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
    document.body.setAttribute("data-figures-rendered", String(jobs.length));
  }, function (err) { console.error("cnnbench report: a figure failed to render:", err); });
})();
"""


def render_page(title: str, subtitle: str, sections: list[Section], footer: str = "") -> str:
    """The whole HTML document. ``title``, ``subtitle`` and ``footer`` are plain text."""
    figures: list[tuple[str, go.Figure]] = []
    body = []
    for section in sections:
        parts = [f'<section id="{esc(section.anchor)}"><h2>{esc(section.title)}</h2>']
        if section.intro:
            parts.append(paragraph(section.intro).text)
        for part in section.parts:
            if isinstance(part, Html):
                parts.append(part.text)
            else:
                element_id = f"fig-{len(figures) + 1}"
                figures.append((element_id, part))
                parts.append(f'<div class="figure" id="{element_id}"></div>')
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
            f"<nav>{nav}</nav>",
            "<main>",
            *body,
            "</main>",
            f"<footer>{esc(footer)}</footer>",
            f'<script type="application/json" id="{FIGURES_ELEMENT_ID}">'
            f"{figures_payload(figures)}</script>",
            f"<script>{SORT_JS}{render_js}</script>",
            "</body></html>",
            "",
        ]
    )
