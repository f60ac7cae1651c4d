"""The house's plumbing, checked: the import contracts (import-linter, as `lint-imports` runs
them), no import cycle between any two modules of the harness, and the plugin's import cost for
every pytest run of the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts: layers, torch-free readers, no cycles
    between siblings. A broken contract prints the import chain that breaks it."""
    proc = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
         "lint_imports_command()"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's algorithm over the module graph (imports inside functions included)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            found.append(component)

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_of_the_harness_is_in_an_import_cycle() -> None:
    """No two modules import each other, directly or through others (the registry, models,
    cases and zoo once did; so did the power monitor, its sampler and the power module). The
    package root is left out: it only re-exports names lazily, under TYPE_CHECKING."""
    graph = grimp.build_graph("harness", exclude_type_checking_imports=True)
    graph.remove_module("harness")
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check above can fail: a graph with a cycle through three modules is found."""
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == [["p.a", "p.b", "p.c"]]


@pytest.mark.slow
def test_a_pytest_run_without_cnn_suites_imports_neither_torch_nor_pandas(tmp_path: Path) -> None:
    """The plugin is loaded in every pytest run of the environment (its entry point): on a test
    directory with no CNN suite, a whole run (collection, the test, the session's end) must not
    pay for importing torch (seconds) or pandas (a second), and must leave no results/ folder
    behind. Checked when pytest unconfigures, after every hook of the plugin ran."""
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import sys

            import pytest

            @pytest.hookimpl(trylast=True)
            def pytest_unconfigure(config):
                print("TORCH_IMPORTED=" + str("torch" in sys.modules))
                print("PANDAS_IMPORTED=" + str("pandas" in sys.modules))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    for args in (["--co", "-q"], ["-q"]):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "TORCH_IMPORTED=False" in proc.stdout, (args, proc.stdout)
        assert "PANDAS_IMPORTED=False" in proc.stdout, (args, proc.stdout)
    assert not (tmp_path / "results").exists()
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=120,
    ).stdout  # fmt: skip
    assert "--cnn-models" in help_text  # the plugin was loaded: its options are there


MODULE_LINES_MAX = 450
FUNCTION_LINES_MAX = 80
# Functions allowed past FUNCTION_LINES_MAX, each with the reason it is one function. A new long
# function needs a line here (and a reason a reviewer accepts), or a split.
LONG_FUNCTIONS = {
    "harness/report/speedup.py:speedup_figure": "one plotly figure built trace by trace; its "
    "hover text and notes read the same per-model loop",
    "harness/report/roofline.py:roofline_figure": "one plotly figure: roofs, points and their "
    "labels share the axis ranges computed at the top",
    "harness/report/cost.py:cost_figure": "one plotly figure: the Pareto front and the points "
    "share one selection of rows",
    "harness/report/layers.py:layer_figure": "one plotly figure with three aligned panels",
    "harness/report/layers.py:layer_roofline": "one plotly figure over one profile's layers",
    "harness/report/memory.py:memory_figure": "one plotly figure: measured and analytic curves "
    "per facet",
    "harness/report/build.py:render": "the page's sections in their order, each one call",
    "harness/measure/timing.py:measure_latency": "one timed protocol (first call, warm-up, "
    "planned rounds, growth to the interval target) whose steps share the timer, the "
    "synchronise and the garbage collector's state",
    "harness/core/signals.py:noise_signals": "a flat list of independent checks, one per signal, "
    "each a few lines; splitting them would scatter the thresholds' wording",
    "harness/compare/pair.py:compare_pair": "one pass over a pair's cases that fills five tables "
    "at once (the memory budget of a 50,000-case comparison: benchmarks/bench_compare_scale.py)",
}


def _python_files() -> list[Path]:
    return sorted(p for p in (ROOT / "harness").rglob("*.py") if "vendor" not in p.parts)


def test_no_module_is_over_the_size_that_signals_two_concepts() -> None:
    """One concept per module: a module over ~450 lines has, in this house, always held two."""
    big = {
        str(p.relative_to(ROOT)): n
        for p in _python_files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LINES_MAX
    }
    assert big == {}


def test_every_long_function_states_why_it_is_one_function() -> None:
    """No function over ~80 lines without a reason stated (LONG_FUNCTIONS); a listed function
    that got short again is taken off the list."""
    import ast

    long = {}
    for p in _python_files():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > FUNCTION_LINES_MAX:
                    long[f"{p.relative_to(ROOT)}:{node.name}"] = n
    unexplained = sorted(set(long) - set(LONG_FUNCTIONS))
    stale = sorted(set(LONG_FUNCTIONS) - set(long))
    assert unexplained == [], {k: long[k] for k in unexplained}
    assert stale == []
