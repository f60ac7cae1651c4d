"""Text from result files made inert for the two places it is shown: HTML and plotly labels.

Result files can hold any string (a model registered by a user, a host name, an exception
message), so every string is escaped for the context it goes into:

* ``esc`` for HTML (tables, headings, paragraphs, attribute values): ``html.escape`` with
  quotes, so ``"`` cannot end an attribute;
* ``ptext`` for plotly (trace names, titles, tick labels, hover text, annotations). plotly
  draws these as a small subset of HTML: tags (``<b>``, ``<a href>``...) and the entities
  ``&lt; &gt; &amp;`` and numeric ones. Escaping ``& < >`` is enough to make a string plain
  text there, and quotes are left as typed: plotly does not decode ``&quot;``, so a model named
  ``my "net"`` would otherwise read ``my &quot;net&quot;`` in a legend.

The figure JSON then travels inside a ``<script type="application/json">`` element whose text
has ``<``, ``>`` and ``&`` written as ``\\uXXXX`` escapes (``page.script_safe_json``), so no
string can close that element either.
"""

from __future__ import annotations

import html
from typing import Any

from harness.core.missing import is_missing


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML, attribute values included (missing -> empty; cut
    to ``HTML_TEXT_CHARS``)."""
    return html.escape(capped("" if is_missing(value) else str(value), HTML_TEXT_CHARS), quote=True)


# A string is repeated per trace, point, hover, note and headline cell: a 10 MB model name or
# error made a 185 MB page. A figure label shows this much of it, any other text of the page
# HTML_TEXT_CHARS (the result file holds it whole).
FIGURE_TEXT_CHARS = 200
HTML_TEXT_CHARS = 2000


def capped(text: str, limit: int = FIGURE_TEXT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def ptext(value: Any) -> str:
    """``value`` as plain text inside a plotly label (missing -> empty; cut to
    ``FIGURE_TEXT_CHARS``); quotes stay as typed.

    plotly.js fills ``%{...}`` in titles, legends and hovers with the trace's data (a model
    named ``net %{x}`` showed as ``net ``): the brace is written as the entity ``&#123;``,
    which plotly decodes after filling, so the text shows as typed."""
    text = capped("" if is_missing(value) else str(value))
    return html.escape(text, quote=False).replace("%{", "%&#123;")


def hover(*lines: Any) -> str:
    """Hover text from plain lines: each escaped for plotly, joined by the one tag it needs."""
    return "<br>".join(ptext(line) for line in lines if line is not None and line != "")
