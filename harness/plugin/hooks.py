"""pytest plugin (pytest11 entry point ``cnnbench``): the fixtures suites use, the run, results.

Thin glue between pytest and harness.run.sweep: a suite marks a test with
``@pytest.mark.cnnbench(models=[...], ...)`` and takes the ``cnn_case`` and ``cnn_bench``
fixtures; the plugin parametrizes ``cnn_case`` from the marker and the user's options
(harness.run.grid), hands each case to the run's ``Sweep`` (which runs it, isolated in a child
process by default, and writes its row at once), gives the samples to pytest-benchmark, prints a
progress line per case, and at the end merges the run's files, prints the summary and renders
the HTML report (harness.report).

pytest-xdist: ``-n N`` runs N workers, each pinned to its own GPU (or to its own CPU cores with
threads to match), all writing parts of one run (the controller's run id) that the controller
merges; a model's cases stay on one worker (the plugin's scheduler, for xdist's default
``--dist load`` and for ``loadgroup``). The options and their checks are in
harness.plugin.settings. Models named on the command line that no collected suite lists
(``torchvision:NAME``, ``timm:NAME``, ``package.module:factory``, a registered name) run
through a built-in test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pytest

from harness.core.spec import Case
from harness.plugin.collect import (  # noqa: F401 (hooks)
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_generate_tests,
    pytest_xdist_node_collection_finished,
)
from harness.plugin.progress import (
    Progress,
    progress_line,
    pytest_report_teststatus,  # noqa: F401 (a hook)
)
from harness.plugin.session import BUILTIN_SUITE, resolve_run, start_sweep
from harness.plugin.settings import RunSettings, add_options, read_settings
from harness.plugin.shard import configure_shard
from harness.plugin.state import STATE, State
from harness.plugin.stop import StopOnSignal, incomplete_reason
from harness.plugin.terminal import TABLE_LEFT_OUT, BenchmarkTable
from harness.plugin.xdist import (  # noqa: F401 (hooks)
    configure_controller,
    configure_worker,
    place_worker,
    pytest_configure_node,
    pytest_handlecrashitem,
    pytest_runtest_protocol,
    pytest_testnodedown,
    pytest_xdist_auto_num_workers,
    pytest_xdist_make_scheduler,
)

if TYPE_CHECKING:
    from harness.run.outcome import CaseResult

__all__ = ["BUILTIN_SUITE", "STATE", "progress_line"]  # kept importable from here


# --- options ---------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _state_from_config(config: pytest.Config) -> State:
    settings = read_settings(config)
    return State(**{f.name: getattr(settings, f.name) for f in fields(RunSettings)})


# --- session ---------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cnnbench(models, input_shapes, batch_sizes, dtypes, memory_formats, modes, compile, "
        "threads, quick={...}, full={...}): the grid of cases a suite test runs through cnn_bench",
    )
    # A case that fails before its rounds never uses the benchmark fixture: its row says why.
    config.addinivalue_line(
        "filterwarnings", "ignore:Benchmark fixture was not used:pytest.PytestWarning"
    )
    if config.getoption("benchmark_histogram", None):
        try:
            import pygal  # noqa: F401
        except ImportError:
            raise pytest.UsageError(
                "--benchmark-histogram needs pygal, which is not installed: "
                "pip install 'pytest-benchmark[histogram]' (or leave the option out)"
            ) from None
    if not config.pluginmanager.has_plugin("benchmark"):
        config.pluginmanager.register(NoBenchmark(), "cnnbench-no-benchmark")
    state = _state_from_config(config)
    config.stash[STATE] = state
    if state.role != "main" and config.getoption("benchmark_only", False):
        # pytest-benchmark turns itself off under xdist and then refuses --benchmark-only; the
        # harness times every case itself, so the option's filter is let go there
        config.option.benchmark_only = False
    config.pluginmanager.register(Progress(config), "cnnbench-progress")
    config.pluginmanager.register(BenchmarkTable(), "cnnbench-table")
    if state.role == "worker":  # its GPU and CPUs first: nothing has touched CUDA yet
        place_worker(config, state)
    if state.role != "main" or state.device_name.startswith("cuda"):
        # an xdist run places its workers by device, and a CUDA device asked for must work:
        # resolve it now (a device that does not work stops the run in one line, exit 2)
        resolve_run(state, at_configure=True)
    if state.role == "controller":
        configure_controller(config, state)
    elif state.role == "worker":
        configure_worker(config, state)
    if state.shard is not None:  # a shard of a sweep (harness.plugin.shard)
        configure_shard(config, state)
    if state.grid.models and state.role != "controller":
        # names no suite lists run through the built-in test (collected after the suites)
        config.args.append(str(BUILTIN_SUITE))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Ctrl-C and SIGTERM stop the run the same way (harness.plugin.stop)."""
    state = session.config.stash[STATE]
    state.stop_handler = StopOnSignal(state)
    state.stop_handler.install()


# --- running a case --------------------------------------------------------------------------

EXTRA_INFO = (
    "model", "input_shape", "batch_size", "dtype", "memory_format", "mode", "threads", "device",
    "device_name", "params", "macs", "flops", "activation_bytes", "latency_s_median",
    "latency_s_median_ci_low", "latency_s_median_ci_high", "stop_reason", "latency_s_p99",
    "throughput_per_s", "peak_memory_bytes", "memory_source", "energy_j_per_sample",
    "power_source", "validity", "validity_reason", "status", "error",
)  # fmt: skip


@pytest.hookimpl(optionalhook=True)  # pytest-benchmark's hook: absent under -p no:benchmark
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    from harness.measure.env import machine_info as harness_machine_info

    state = config.stash[STATE]
    if state.sweep is not None:
        machine_info["cnnbench"] = harness_machine_info(state.sweep.environment(state.device))


def _feed_benchmark(benchmark: Any, samples: list[float]) -> None:
    """Give pytest-benchmark the samples the harness measured, so its table, --benchmark-json,
    -save and -compare hold exactly the parquet row's samples (pytest-benchmark's own
    ``pedantic`` runs a fixed number of rounds, and the harness stops on the median's
    interval instead). Uses ``BenchmarkFixture._make_stats``, as ``pedantic`` does."""
    benchmark._mode = "cnnbench (rounds timed by the harness)"
    stats = benchmark._make_stats(1)
    for sample in samples:
        stats.update(sample)


def _progress(result: CaseResult) -> dict[str, Any]:
    row = result.row
    return {
        "case": result.case.case_id,
        "status": result.status,
        "median": row.get("latency_s_median"),
        "ci_low": row.get("latency_s_median_ci_low"),
        "ci_high": row.get("latency_s_median_ci_high"),
        "validity": row.get("validity"),
        "reason": row.get("validity_reason"),
        "rounds": row.get("rounds"),
        "wall_s": result.wall_s,
    }


class NoBenchmark:
    """Registered under ``-p no:benchmark``: a ``benchmark`` fixture that is None, so suites
    run (the harness times every case itself) without pytest-benchmark's table and options."""

    @pytest.fixture
    def benchmark(self, request: pytest.FixtureRequest) -> None:
        function = getattr(request.node, "function", None)
        if function is not None and "benchmark" in inspect.signature(function).parameters:
            pytest.fail(
                "this test uses pytest-benchmark's benchmark fixture, but pytest-benchmark is "
                "not loaded (-p no:benchmark)",
                pytrace=False,
            )
        return None


@pytest.fixture
def cnn_bench(request: pytest.FixtureRequest, benchmark: Any) -> Callable[[Case], CaseResult]:
    """Run a Case through the run's sweep; its row is on disk on return.

    An ``ok`` case passes (noisy or not: the row says), ``oom``/``skipped`` skip with the
    reason, ``error``/``crashed`` fail; in every case the row is written first. The samples go
    to pytest-benchmark (None under ``-p no:benchmark``: ``NoBenchmark``).
    """
    state = request.config.stash[STATE]
    test_name = request.node.nodeid.split("[")[0]
    if test_name.startswith("::"):  # a file outside the rootdir (the built-in test)
        test_name = f"{request.node.path.name}{test_name}"

    def run(case: Case) -> CaseResult:
        if not isinstance(case, Case):
            raise TypeError(f"cnn_bench takes a harness Case, got {type(case).__name__}")
        from harness.run.outcome import CaseInterrupted, ResultsNotWritable

        state.tests.add(test_name)
        if state.sweep is None:  # a test that calls cnn_bench without the cnn_case grid
            resolve_run(state)
            start_sweep(request.config, state)
        earlier = state.sweep.measured_by(case)
        if earlier is not None and earlier != test_name:
            pytest.skip(f"{case.case_id}: measured already by {earlier} (one case, one row)")
        try:
            result = state.sweep.run(case, test_name=test_name)
        except ResultsNotWritable as exc:
            request.session.shouldstop = str(exc)
            state.write_error = state.write_error or str(exc)
            result = None
        except CaseInterrupted as stop:
            request.node.user_properties.append(("cnnbench", _progress(stop.result)))
            raise KeyboardInterrupt from None
        if result is None:  # outside the except: one line, no "during handling of" chain
            pytest.fail(str(state.write_error), pytrace=False)
        request.node.user_properties.append(("cnnbench", _progress(result)))
        if benchmark is not None:
            samples = result.row.get("latency_s_samples")
            if result.status == "ok" and samples and benchmark.enabled:
                _feed_benchmark(benchmark, list(samples))
            benchmark.extra_info.update(
                {k: result.row.get(k) for k in EXTRA_INFO if result.row.get(k) is not None}
            )
        if result.status in ("oom", "skipped"):
            pytest.skip(f"{case.case_id}: {result.status}: {result.row.get('error')}")
        if result.status in ("error", "crashed"):
            pytest.fail(
                f"{case.case_id}: {result.status}: {result.row.get('error')}", pytrace=False
            )
        return result

    return run


# --- the end ---------------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Ctrl-C and SIGTERM behave as before the run again, unless one of them stopped it
    (harness.plugin.stop.StopOnSignal.restore)."""
    state = config.stash.get(STATE, None)
    if state is not None and state.stop_handler is not None:
        state.stop_handler.restore()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from harness.run.outcome import ResultsNotWritable

    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    state.incomplete = incomplete_reason(session, exitstatus, state)
    complete = state.incomplete is None
    if state.role == "worker":
        if state.sweep is not None:
            state.sweep.finish(complete)  # stops the child; the controller merges
        return
    try:
        if state.role == "controller":
            from harness.results.store import merge_parts

            if state.results_dir is not None and state.run_id is not None:
                state.paths = merge_parts(state.results_dir, state.run_id, complete=complete)
        elif state.sweep is not None:
            state.paths = state.sweep.finish(complete)
    except ResultsNotWritable as exc:
        state.write_error = state.write_error or str(exc)
    except OSError as exc:
        state.write_error = state.write_error or (
            f"the run's files could not be merged: {exc.strerror or exc}"
        )
    state.rows = _run_rows(state)
    if state.write_error and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # rows were lost: never green
    if not state.report or not state.paths or state.write_error:
        return
    try:
        from harness.report import write_report

        out = state.reports_dir / f"{state.run_id}.html"
        state.report_path = write_report(list(state.paths.values()), out)
    except Exception as exc:  # a report failure must never lose or hide the results
        state.report_error = f"{type(exc).__name__}: {exc}"


def _run_rows(state: State) -> list[dict[str, Any]]:
    """The run's rows for the summary: this process's, or, for the xdist controller, the
    merged file's."""
    if state.sweep is not None:
        return list(state.sweep.rows)
    if not state.paths.get("cases"):
        return []
    from harness.core.missing import is_missing
    from harness.results import load_results

    frame = load_results(state.paths["cases"])
    return [
        {k: (None if not isinstance(v, list) and is_missing(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After pytest-benchmark's table: the summary, each case that did not end ok or valid, the
    noisy ones, then the paths of the files, last."""
    state = config.stash.get(STATE, None)
    if state is None or state.role == "worker" or not state.rows:
        return
    from harness.plugin.summary import summary_table

    tr = terminalreporter
    tr.section("cnnbench summary")
    tr.write_line(
        summary_table(state.rows, show_test=len({r.get("test_name") for r in state.rows}) > 1)
    )
    if state.write_error:
        tr.write_line(f"results not fully written: {state.write_error}", red=True)
    for table, path in state.paths.items():
        tr.write_line(f"results ({table}): {path}")
    if state.results_dir is None:
        tr.write_line(
            "no results written (a smoke run: --benchmark-disable); "
            "pass --cnn-results-dir to keep them"
        )
    table = config.pluginmanager.get_plugin("cnnbench-table")
    if table is not None and table.left_out:
        tr.write_line(TABLE_LEFT_OUT)
    if state.report_path is not None:
        tr.write_line(f"report: {state.report_path}")
    elif state.report_error:
        tr.write_line(f"report not written: {state.report_error}", red=True)
    if not config.pluginmanager.has_plugin("benchmark"):
        tr.write_line(
            "pytest-benchmark is not loaded (-p no:benchmark): cases ran and were written; "
            "its table and --benchmark-* options need it"
        )
    if state.incomplete is not None and state.write_error is None and state.paths:
        if state.stopped_by == "SIGTERM":
            head = "run interrupted by SIGTERM"
        elif state.stopped_by or exitstatus == pytest.ExitCode.INTERRUPTED:
            head = "run interrupted"
        else:
            head = f"run incomplete ({state.incomplete})"
        tr.write_line(f"{head}: every finished case is on disk, marked run_complete=false")
