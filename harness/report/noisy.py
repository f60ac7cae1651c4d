"""Noisy rows in the figures: drawn apart, hidden until asked for, never joined by a line.

A noisy row's timing is not a number the user gets again, so a figure must not invite reading
it as one: every timing figure draws its trusted rows (valid, or unassessed from an older file)
as the curves, and each curve's noisy rows as a separate trace of hollow, faded markers without
a line (``noisy_style``), hidden until the page's "show noisy rows" box is ticked: only noisy
traces start hidden (``visible: false``), the page gives each a ``uid`` starting with
``NOISY_UID`` (plotly.py drops uids when it writes a figure) and its script shows those. Axis
ranges come from the trusted rows (a noisy p90 of 476 ms cannot stretch a panel of 2 ms
points); a panel with no trusted row takes its range from the noisy ones and says so. Peak
memory does not depend on timing noise and is drawn for every measured row.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report.text import esc

NOISY_UID = "noisy-"
TRUSTED = ("valid", "unassessed")
NOISY_HIDDEN = (
    "Noisy rows are hidden in the timing figures (tick “show noisy rows” in the bar at the top "
    "to draw them, hollow and faded, never joined by a line); the table lists every row."
)
NOISY_SHOWN = (
    "No row in the figures is valid, so the noisy rows are drawn (hollow and faded, never "
    "joined by a line: not numbers to compare); untick “show noisy rows” at the top to hide "
    "them; the table lists every row."
)
NOISY_NOTE = (
    "Noisy rows: hollow, faded, never joined by a line, drawn only while “show noisy rows” at "
    "the top is ticked; axes are set by the valid rows (by the noisy ones in a panel without "
    "a valid row)."
)


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trusted rows, noisy rows) of ``df``: valid or unassessed, and noisy."""
    return df[df["quality"].isin(TRUSTED)], df[df["quality"] == "noisy"]


def axis_values(trusted: list[float | None], noisy: list[float | None]) -> list[float | None]:
    """The values an axis spans: the trusted ones, or the noisy ones where there is none."""
    return trusted if any(v is not None for v in trusted) else noisy


def noisy_style(trace: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments that make a scatter trace a hidden noisy one: markers only, hollow,
    faded, no legend entry of its own, hidden (the page's toggle shows it)."""
    marker = dict(trace.pop("marker", {}) or {})
    symbol = marker.get("symbol", "circle")
    if isinstance(symbol, str) and not symbol.endswith("-open"):
        marker["symbol"] = symbol + "-open"
    marker["opacity"] = 0.55
    return {
        **trace,
        "mode": "markers",
        "marker": marker,
        "showlegend": False,
        "visible": False,
    }


def noisy_toggle(n: int, shown: bool = False) -> str:
    """The nav bar's check box that shows or hides every noisy trace of the page; ``shown``:
    ticked from the start (a page without a valid row in its figures would be empty)."""
    checked = " checked" if shown else ""
    return (
        f'<label class="noisy-toggle"><input type="checkbox" id="show-noisy"{checked}> show '
        f"noisy rows ({esc(n)})</label>"
    )


TOGGLE_JS = """
(function () {
  var NOISY_UID = "noisy-";
  var box = document.getElementById("show-noisy");
  if (!box) { return; }
  function update() {
    document.querySelectorAll("div.figure").forEach(function (gd) {
      if (!gd.data) { return; }
      var idx = [];
      gd.data.forEach(function (t, i) {
        if (t.uid && String(t.uid).indexOf(NOISY_UID) === 0) { idx.push(i); }
      });
      if (idx.length) { Plotly.restyle(gd, {visible: box.checked}, idx); }
    });
    document.body.setAttribute("data-noisy-shown", String(box.checked));
  }
  box.addEventListener("change", update);
  // ticked from the start: shown once the figures exist (RENDER_JS calls this first)
  window.cnnbenchAfterRender = function () { if (box.checked) { update(); } };
})();
"""
