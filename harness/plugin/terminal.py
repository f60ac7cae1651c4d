"""pytest-benchmark's own table, left out where the harness summary says the same with validity.

pytest-benchmark prints a table of every benchmark at the end (about 170 columns: min, max,
mean, stddev, median, IQR, outliers, OPS, rounds, iterations), with no validity column and its
best and worst marked among rows the harness calls noisy. The harness summary, printed after it,
has each case's median, interval and verdict. So when the summary is printed, the table is left
out (``BenchmarkSession.quiet``: its display prints nothing, its regression checks for
``--benchmark-compare-fail`` still run, ``--benchmark-json``/``--benchmark-save`` still write),
unless the user gave one of the options that only shape that table (``TABLE_OPTIONS``); the
summary then says how to get it back.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import pytest

from harness.plugin.state import STATE

TABLE_OPTIONS = ("--benchmark-columns", "--benchmark-sort", "--benchmark-group-by",
                 "--benchmark-name", "--benchmark-histogram", "--benchmark-compare",
                 "--benchmark-verbose")  # fmt: skip
TABLE_LEFT_OUT = (
    "pytest-benchmark's table is left out: the summary above has the same medians with each "
    "row's validity (--benchmark-columns=median,iqr,rounds, or another of its table options, "
    "shows it)"
)


def table_asked(config: pytest.Config) -> bool:
    """Whether the command line, PYTEST_ADDOPTS or the ini's addopts name a table option."""
    args = [str(a) for a in config.invocation_params.args]
    args += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    args += [a for line in config.getini("addopts") for a in shlex.split(line)]
    return any(a.startswith(TABLE_OPTIONS) for a in args)


class BenchmarkTable:
    """Registered per session (``cnnbench-table``): quiets pytest-benchmark's table before it
    prints, when the harness summary will follow."""

    def __init__(self) -> None:
        self.left_out = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        state = config.stash.get(STATE, None)
        session = getattr(config, "_benchmarksession", None)
        if state is None or state.role == "worker" or not state.rows or session is None:
            return
        if getattr(session, "groups", None) and not table_asked(config):
            session.quiet = True
            self.left_out = True
