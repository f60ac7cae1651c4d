"""One line per finished case on the terminal, with the sweep's ETA over every worker:
``[ 12/31] resnet50-...  3.2 ms ±0.4%  valid  ETA 1 min``."""

from __future__ import annotations

from typing import Any

import pytest

from harness.core import textsafe, units
from harness.core.stats import half_width_rel
from harness.plugin.state import STATE


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """cnnbench cases print their own progress line: no dot for them (verbose words stay)."""
    properties = dict(getattr(report, "user_properties", ()))
    if properties.get("cnnbench") is None or config.option.verbose > 0:
        return None
    if report.when == "call" or (report.when == "setup" and report.skipped):
        return report.outcome, "", report.outcome.upper()
    return None


class Progress:
    """Registered per session: one line per finished case, with the sweep's ETA."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        info = dict(getattr(report, "user_properties", ())).get("cnnbench")
        if info is None or not (
            report.when == "call" or (report.when == "setup" and report.skipped)
        ):
            return
        state = self.config.stash[STATE]
        if state.role == "worker":
            return
        state.done += 1
        state.wall_s += float(info.get("wall_s") or 0.0)
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        # pytest's TerminalReporter has no public call that writes a whole line without making
        # it "the current line" (it would print the file name again before every case), so the
        # line goes straight to its writer (``_tw``, stable since pytest 3).
        writer = tr._tw
        if writer.width_of_current_line:
            writer.line()
        writer.line(progress_line(info, state.done, state.total, state.wall_s, state.workers))


def progress_line(
    info: dict[str, Any], done: int, total: int | None, wall_s: float, workers: int
) -> str:
    total = max(total or done, done)
    median = info.get("median")
    text = f"[{done:>{len(str(total))}}/{total}] {textsafe.terminal(info['case'])}  "
    if info["status"] == "ok" and median:
        half = half_width_rel(info.get("ci_low"), info.get("ci_high"), median)
        rounds = info.get("rounds")
        spread = (
            f" ±{half:.1%}"
            if half is not None
            else ("" if rounds is None else f" ±? ({rounds} round{'s' if rounds != 1 else ''})")
        )
        text += f"{units.seconds(median)}{spread}  {info.get('validity') or ''}"
        why = info.get("reason")
        if info.get("validity") not in (None, "valid") and why:  # what made it noisy, first
            text += f" ({textsafe.terminal(str(why).split('; ')[0])})"
    else:
        text += str(info["status"])
    left = total - done
    if left and done:
        text += f"  ETA {duration(left * wall_s / done / max(1, workers))}"
    return text


def duration(seconds: float) -> str:
    """A duration for a person: ``42 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
