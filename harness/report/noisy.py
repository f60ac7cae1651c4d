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
NOISY_NOTE = (
    "Noisy rows: hidden (tick “show noisy rows” at the top: hollow, faded, no line); axes are "
    "set by the valid rows."
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


def noisy_toggle(n: int) -> str:
    """The nav bar's check box that shows or hides every noisy trace of the page."""
    return (
        '<label class="noisy-toggle"><input type="checkbox" id="show-noisy"> show noisy rows'
        f" ({esc(n)})</label>"
    )


TOGGLE_JS = """
(function () {
  var NOISY_UID = "noisy-";
  var box = document.getElementById("show-noisy");
  if (!box) { return; }
  box.addEventListener("change", function () {
    document.querySelectorAll("div.figure").forEach(function (gd) {
      if (!gd.data) { return; }
      var idx = [];
      gd.data.forEach(function (t, i) {
        if (t.uid && String(t.uid).indexOf(NOISY_UID) === 0) { idx.push(i); }
      });
      if (idx.length) { Plotly.restyle(gd, {visible: box.checked}, idx); }
    });
    document.body.setAttribute("data-noisy-shown", String(box.checked));
  });
})();
"""
