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

import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError, InvalidInputError
from harness.core.spec import Case
from harness.plugin.settings import RunSettings, add_options, read_settings
from harness.run.grid import (
    GridSettings,
    build_cases,
    parse_threads,
    suite_models,
    unmatched_patterns,
)
from harness.run.runner import CaseInterrupted, CaseResult, max_threads

BUILTIN_SUITE = Path(__file__).with_name("builtin_suite.py")


@dataclass
class _State(RunSettings):
    """The settings and what the run has done so far."""

    worker: str = "main"
    workers: int = 1
    cuda_index: int | None = None
    run_id: str | None = None
    started: float = field(default_factory=time.time)
    sweep: Any = None
    suite_models: set[str] = field(default_factory=set)
    extra_models: list[str] = field(default_factory=list)
    model_problems: list[tuple[str, str]] = field(default_factory=list)
    tests: set[str] = field(default_factory=set)
    total: int | None = None
    done: int = 0
    wall_s: float = 0.0
    paths: dict[str, Path] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    report_path: Path | None = None
    report_error: str | None = None
    write_error: str | None = None


STATE = pytest.StashKey[_State]()


# --- options ---------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _state_from_config(config: pytest.Config) -> _State:
    settings = read_settings(config)
    return _State(**{f.name: getattr(settings, f.name) for f in fields(RunSettings)})


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
    state = _state_from_config(config)
    config.stash[STATE] = state
    if state.role != "main" and config.getoption("benchmark_only", False):
        # pytest-benchmark turns itself off under xdist and then refuses --benchmark-only; the
        # harness times every case itself, so the option's filter is let go there
        config.option.benchmark_only = False
    config.pluginmanager.register(_Progress(config), "cnnbench-progress")
    if state.role == "controller":
        _configure_controller(config, state)
    elif state.role == "worker":
        _configure_worker(config, state)
    if state.settings.models and state.role != "controller":
        # names no suite lists run through the built-in test (collected after the suites)
        config.args.append(str(BUILTIN_SUITE))


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker per visible GPU on a GPU box, else one per CPU (one thread each,
    or the cores divided by --cnn-threads)."""
    device = str(config.getoption("cnn_device") or config.getini("cnn_device"))
    if device != "cpu" and _cuda_count():
        return _cuda_count()
    threads = parse_threads(config.getoption("cnn_threads") or None, max_threads()) or (1,)
    return max(1, len(_cpus()) // max(threads))


def _configure_controller(config: pytest.Config, state: _State) -> None:
    from harness.results.store import check_writable, new_run_id

    n = int(config.getoption("numprocesses"))
    if state.device.startswith("cuda"):
        gpus = _cuda_count()
        if n > gpus:
            raise pytest.UsageError(
                f"-n {n} asks for more workers than the {gpus} visible GPU(s): each worker needs "
                "a GPU of its own (timing and the board's energy counter are per GPU); use -n "
                f"{gpus} or -n auto"
            )
    else:
        cpus = _cpus()
        if n > len(cpus):
            raise pytest.UsageError(
                f"-n {n} asks for more workers than the {len(cpus)} CPU(s) this process may use: "
                "each worker is pinned to cores of its own; use -n auto or fewer workers"
            )
    state.workers = n
    state.run_id = new_run_id()
    if state.results_dir is not None:
        try:
            check_writable(state.results_dir)
        except InvalidInputError as exc:
            raise pytest.UsageError(str(exc)) from None


# A case's pytest id starts with its model, then the input shape and batch: "resnet50-3x224x224-b8-"
_CASE_MODEL = re.compile(r"\[(?P<model>.+?)-\d+(?:x\d+)+-b\d+-[^\]]*\]$")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """One model's cases on one worker: the out-of-memory memo and model reuse stay valid.

    pytest-xdist's ``loadgroup`` cannot do it under pytest 9 (it renames ``item._nodeid``,
    which pytest 9 no longer reads), so the harness groups by the model in the case's id with
    xdist's own scope scheduler; any other test is a group of its own.
    """
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModelScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            match = _CASE_MODEL.search(nodeid)
            return f"cnnbench-model:{match['model']}" if match else nodeid

    return ModelScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist (controller side): every worker writes into the controller's run."""
    state = node.config.stash[STATE]
    node.workerinput["cnnbench_run_id"] = state.run_id
    node.workerinput["cnnbench_started"] = state.started


def _configure_worker(config: pytest.Config, state: _State) -> None:
    info = config.workerinput  # type: ignore[attr-defined]
    state.worker = str(info["workerid"])
    state.workers = int(info["workercount"])
    state.run_id = info.get("cnnbench_run_id")
    state.started = float(info.get("cnnbench_started", state.started))
    index = int(state.worker.removeprefix("gw") or 0)
    if state.device.startswith("cuda"):
        import torch

        state.cuda_index = index
        torch.cuda.set_device(index)
    else:
        cpus = _cpus()
        share = len(cpus) // state.workers
        mine = cpus[index * share : (index + 1) * share]
        os.sched_setaffinity(0, mine)
        if state.settings.threads is None and state.options.threads is None:
            from dataclasses import replace

            state.options = replace(state.options, threads=len(mine))


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    if state.role != "worker":
        _shield_interrupts()
    if state.role == "controller":
        return
    from harness.results.store import check_writable
    from harness.run.sweep import Sweep

    if state.results_dir is not None:
        try:
            check_writable(state.results_dir)
        except InvalidInputError as exc:
            raise pytest.UsageError(str(exc)) from None
    if state.isolate != "none":
        from harness.run.isolation import start_server

        start_server()  # before pytest captures output; the first child then starts at once
    worker = state.role == "worker"
    state.sweep = Sweep(
        state.options,
        results_dir=state.results_dir,
        run_id=state.run_id,
        isolate=state.isolate,
        max_minutes=state.max_minutes,
        started=state.started,
        writer_name=state.worker,
        join=worker,
        merge=not worker,
        worker=state.worker,
        cuda_index=state.cuda_index,
        roofs=not state.smoke,
    )
    state.run_id = state.sweep.run_id


# --- collection ------------------------------------------------------------------------------


def _named_models(state: _State) -> list[str]:
    """The --cnn-models names no collected suite lists, resolved (torchvision:, timm:,
    package.module:factory, registered); a name that resolves to nothing is kept in
    ``state.model_problems`` for one usage line after collection."""
    from harness.models.resolve import get_entry

    names = []
    for name in state.settings.models or ():
        if any(ch in name for ch in "*?[") or name in state.suite_models:
            continue
        try:
            get_entry(name)
        except HarnessError as exc:
            state.model_problems.append((name, str(exc)))
            continue
        names.append(name)
    return names


def _suite_cases(metafunc: pytest.Metafunc, state: _State, marker: Any) -> list[Case]:
    if metafunc.definition.path == BUILTIN_SUITE:  # collected after every suite
        state.extra_models = _named_models(state)
        if not state.extra_models:
            return []
        spec = {**marker.kwargs, "models": state.extra_models}
        settings = GridSettings(**{**state.settings.__dict__, "models": None})
        return build_cases(spec, settings, state.device)
    state.suite_models.update(suite_models(marker.kwargs, state.settings.scale))
    return build_cases(marker.kwargs, state.settings, state.device)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cnn_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("cnnbench")
    if marker is None:
        pytest.fail(
            f"{metafunc.definition.nodeid} uses cnn_case but has no "
            "@pytest.mark.cnnbench(models=[...])",
            pytrace=False,
        )
    state = metafunc.config.stash[STATE]
    try:
        cases = _suite_cases(metafunc, state, marker)
        problem = None
    except HarnessError as exc:
        problem = str(exc)
    if problem is not None:
        # A suite's own mistake: a one-line collection error for that file, no traceback.
        pytest.fail(f"{metafunc.definition.nodeid}: {problem}", pytrace=False)
    if not cases:
        reason = "no case left after the --cnn-* filters"
        metafunc.parametrize(
            "cnn_case",
            [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
            ids=["no-cases"],
        )
        return
    metafunc.parametrize("cnn_case", cases, ids=[c.case_id for c in cases])


def _is_case(item: pytest.Item) -> bool:
    spec = getattr(item, "callspec", None)
    return spec is not None and isinstance(spec.params.get("cnn_case"), Case)


def _budget_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """Under a budget: every model first (its smallest batch, then its largest), then the
    batches in between, so a budget cut leaves every model measured."""
    spans: dict[tuple, list[int]] = {}
    for item in items:
        if _is_case(item):
            c = item.callspec.params["cnn_case"]
            key = (c.model, c.input_shape, c.dtype, c.memory_format, c.mode, c.compile, c.threads)
            spans.setdefault(key, []).append(c.batch_size)

    def rank(pair: tuple[int, pytest.Item]) -> tuple[int, int]:
        i, item = pair
        if not _is_case(item):
            return (0, i)
        c = item.callspec.params["cnn_case"]
        key = (c.model, c.input_shape, c.dtype, c.memory_format, c.mode, c.compile, c.threads)
        sizes = spans[key]
        phase = 0 if c.batch_size == min(sizes) else 1 if c.batch_size == max(sizes) else 2
        return (phase, i)

    return [item for _, item in sorted(enumerate(items), key=rank)]


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A --cnn-models pattern that matches no model is a typo: say so instead of skipping every
    case; drop the built-in test when it has nothing to run; order for a budget; and say how
    big a sweep is before it starts."""
    state = config.stash[STATE]
    items[:] = [i for i in items if not (i.path == BUILTIN_SUITE and not _is_case(i))]
    known = state.suite_models | set(state.extra_models)
    if state.model_problems:
        name, problem = state.model_problems[0]
        import difflib

        if ":" not in name:  # a plain name: a typo of a suite's model, most likely
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else "`cnnbench models` lists them"
            problem = f"{name!r} matches no model of the collected suites; {hint}"
        raise pytest.UsageError(f"--cnn-models: {problem}")
    if state.settings.models and known:
        missing = unmatched_patterns(state.settings.models, known)
        if missing:
            import difflib

            close = sorted(
                {
                    c
                    for p in missing
                    for c in difflib.get_close_matches(p, sorted(known), n=3, cutoff=0.5)
                }
            )
            hint = f"closest: {', '.join(close)}" if close else "`cnnbench models` lists them"
            raise pytest.UsageError(
                f"--cnn-models: {', '.join(repr(p) for p in missing)} matches no model of the "
                f"collected suites; {hint}"
            )
    if state.max_minutes is not None:
        items[:] = _budget_order(items)
    cases = [i for i in items if _is_case(i)]
    state.total = len(cases)
    if state.role == "main":
        _warn_size(config, state, len(cases))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    state = node.config.stash[STATE]
    if state.total is None:
        state.total = sum(1 for i in ids if "[" in i and not i.endswith("[no-cases]"))
        _warn_size(node.config, state, state.total)


def _warn_size(config: pytest.Config, state: _State, n: int) -> None:
    """Before a large sweep on a CPU: the case count, the time the settings imply, a hint."""
    if n <= 100 or state.device.startswith("cuda") or state.smoke:
        return
    o = state.options
    low = o.warmup_time_s + o.min_time_s
    high = (o.max_time_s or 30.0) * (1 + o.remeasure) + o.remeasure * o.remeasure_pause_s + 5
    workers = max(1, state.workers)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    text = (
        f"cnnbench: {n:,} cases on a CPU, {_duration(n * low / workers)} to "
        f"{_duration(n * high / workers)} by the timing settings ({low:.1f}-{high:.0f} s a case"
        f"{f' over {workers} workers' if workers > 1 else ''}); narrow it with --cnn-models, "
        "--cnn-batch-sizes or -k, or set --cnn-max-minutes"
    )
    if tr is not None:
        tr.write_line(text, yellow=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- running a case --------------------------------------------------------------------------

EXTRA_INFO = (
    "model", "input_shape", "batch_size", "dtype", "memory_format", "mode", "threads", "device",
    "device_name", "params", "macs", "flops", "activation_bytes", "latency_s_median",
    "latency_s_median_ci_low", "latency_s_median_ci_high", "stop_reason", "latency_s_p99",
    "throughput_per_s", "peak_memory_bytes", "memory_source", "energy_j_per_sample",
    "power_source", "validity", "validity_reason", "status", "error",
)  # fmt: skip


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
    for duration in samples:
        stats.update(duration)


def _progress(result: CaseResult) -> dict[str, Any]:
    row = result.row
    return {
        "case": result.case.case_id,
        "status": result.status,
        "median": row.get("latency_s_median"),
        "ci_low": row.get("latency_s_median_ci_low"),
        "ci_high": row.get("latency_s_median_ci_high"),
        "validity": row.get("validity"),
        "wall_s": result.wall_s,
    }


@pytest.fixture
def cnn_bench(request: pytest.FixtureRequest, benchmark: Any) -> Callable[[Case], CaseResult]:
    """Run a Case through the run's sweep; its row is on disk on return.

    An ``ok`` case passes (noisy or not: the row says), ``oom``/``skipped`` skip with the
    reason, ``error``/``crashed`` fail; in every case the row is written first.
    """
    state = request.config.stash[STATE]
    test_name = request.node.nodeid.split("[")[0]
    if test_name.startswith("::"):  # a file outside the rootdir (the built-in test)
        test_name = f"{request.node.path.name}{test_name}"

    def run(case: Case) -> CaseResult:
        if not isinstance(case, Case):
            raise TypeError(f"cnn_bench takes a harness Case, got {type(case).__name__}")
        from harness.run.sweep import ResultsNotWritable

        state.tests.add(test_name)
        earlier = state.sweep.measured_by(case)
        if earlier is not None and earlier != test_name:
            pytest.skip(f"{case.case_id}: measured already by {earlier} (one case, one row)")
        try:
            result = state.sweep.run(case, test_name=test_name)
        except ResultsNotWritable as exc:
            request.session.shouldstop = str(exc)
            state.write_error = str(exc)
            pytest.fail(str(exc), pytrace=False)
        except CaseInterrupted as stop:
            request.node.user_properties.append(("cnnbench", _progress(stop.result)))
            raise KeyboardInterrupt from None
        request.node.user_properties.append(("cnnbench", _progress(result)))
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


# --- progress --------------------------------------------------------------------------------


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """cnnbench cases print their own progress line: no dot for them (verbose words stay)."""
    properties = dict(getattr(report, "user_properties", ()))
    if properties.get("cnnbench") is None or config.option.verbose > 0:
        return None
    if report.when == "call" or (report.when == "setup" and report.skipped):
        return report.outcome, "", report.outcome.upper()
    return None


class _Progress:
    """Registered per session: one line per finished case, with the sweep's ETA."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """``[ 12/31] resnet50-...  3.2 ms ±0.4%  valid  ETA 1 min``."""
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
        # Straight to the terminal writer, leaving pytest's idea of the current line alone, so
        # that it does not print the file name again before every case.
        writer = tr._tw
        if writer.width_of_current_line:
            writer.line()
        writer.line(progress_line(info, state.done, state.total, state.wall_s, state.workers))


def progress_line(
    info: dict[str, Any], done: int, total: int | None, wall_s: float, workers: int
) -> str:
    from harness.core import textsafe, units

    total = max(total or done, done)
    median = info.get("median")
    text = f"[{done:>{len(str(total))}}/{total}] {textsafe.terminal(info['case'])}  "
    if info["status"] == "ok" and median:
        spread = ""
        if info.get("ci_low") is not None and info.get("ci_high") is not None:
            spread = f" ±{(info['ci_high'] - info['ci_low']) / 2 / median:.1%}"
        text += f"{units.seconds(median)}{spread}  {info.get('validity') or ''}"
    else:
        text += str(info["status"])
    left = total - done
    if left and done:
        text += f"  ETA {_duration(left * wall_s / done / max(1, workers))}"
    return text


# --- the end ---------------------------------------------------------------------------------


def _first_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C stops the sweep as usual; the ones after it are held off until the run's files are
    saved and the summary printed (they would tear the merge and print a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _shield_interrupts() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _first_interrupt)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Without an interrupt, Ctrl-C behaves as usual again (an inline pytester run must not leave
    its caller shielded). After one, the run is ending because of it: further Ctrl-Cs stay
    ignored to the end of the process (restoring here let the third of three print a traceback
    from pytest's own last hooks)."""
    if signal.getsignal(signal.SIGINT) is _first_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from harness.run.sweep import ResultsNotWritable

    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    complete = exitstatus != pytest.ExitCode.INTERRUPTED and state.write_error is None
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
        state.write_error = str(exc)
    except OSError as exc:
        state.write_error = f"the run's files could not be merged: {exc.strerror or exc}"
    state.rows = _run_rows(state)
    if not state.report or not state.paths or state.write_error:
        return
    try:
        from harness.report import write_report

        out = state.reports_dir / f"{state.run_id}.html"
        state.report_path = write_report(list(state.paths.values()), out)
    except Exception as exc:  # a report failure must never lose or hide the results
        state.report_error = f"{type(exc).__name__}: {exc}"


def _run_rows(state: _State) -> list[dict[str, Any]]:
    """The run's rows for the summary: this process's, or, for the xdist controller, the
    merged file's."""
    if state.sweep is not None:
        return [r.row for r in state.sweep.results]
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
    if state.report_path is not None:
        tr.write_line(f"report: {state.report_path}")
    elif state.report_error:
        tr.write_line(f"report not written: {state.report_error}", red=True)
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        tr.write_line("run interrupted: every finished case is on disk, marked run_complete=false")
