"""The plugin's terminal output (issue 25): the progress counter counts the cases that run (not
the ones -k deselected), and pytest-benchmark's 170-column table is left out where the harness
summary says the same with validity, unless one of its table options is given."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--cnn-min-time=0.01", "--cnn-min-rounds=3", "--cnn-max-time=0.3", "--cnn-remeasure=0",
        "--cnn-warmup-rounds=1", "--cnn-power=off", "--cnn-isolate=none", "--cnn-no-report",
        "-p", "no:cacheprovider", "-p", "no:randomly"]  # fmt: skip
SUITE = """
import pytest

@pytest.mark.cnnbench(models=["tests.models_for_tests:tiny_cnn"], batch_sizes=[1, 2, 4])
def test_tiny(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_the_counter_counts_what_runs_and_the_summary_replaces_the_table(
    suite: pytest.Pytester,
) -> None:
    out = suite.runpytest_subprocess(
        "--benchmark-only", f"--cnn-results-dir={suite.path / 'results'}", "-k", "b1 or b2",
        *FAST,
    )  # fmt: skip
    text = out.stdout.str()
    assert out.ret == 0, text
    counters = re.findall(r"^\[ ?(\d+)/(\d+)\]", text, re.M)
    assert counters == [("1", "2"), ("2", "2")]  # 1 of 3 cases deselected: not counted
    assert "1 deselected" in text
    assert "Name (time in" not in text  # pytest-benchmark's table
    assert "cnnbench summary" in text and "pytest-benchmark's table is left out" in text
    # a table option given: the user asked for the table
    out = suite.runpytest_subprocess(
        "--benchmark-only", f"--cnn-results-dir={suite.path / 'results'}", "-k", "b1",
        "--benchmark-columns=median,rounds", *FAST,
    )  # fmt: skip
    text = out.stdout.str()
    assert out.ret == 0, text
    assert "Name (time in" in text and "left out" not in text
