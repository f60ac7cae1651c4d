"""pytest plugin (pytest11 entry point ``cnnbench``): options, the fixtures suites use, results.

Thin glue: a suite marks a test with ``@pytest.mark.cnnbench(models=[...], ...)`` and takes the
``cnn_case`` and ``cnn_bench`` fixtures; the plugin parametrizes ``cnn_case`` from the marker
and the user's options (harness.grid), hands each case to harness.runner through
pytest-benchmark's ``benchmark`` fixture, writes every finished case to parquet at once
(harness.results), and renders the HTML report at the end (harness.report).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.cases import Case
from harness.errors import HarnessError
from harness.grid import (
    GridSettings,
    build_cases,
    parse_batch_sizes,
    split_list,
    suite_models,
    unmatched_patterns,
)
from harness.runner import (
    CaseResult,
    RunOptions,
    resolve_device,
    run_case,
    unavailable_reason,
)

# name, ini type, default, help. Each is `--cnn-NAME` on the command line and `cnn_NAME` in ini.
OPTIONS: tuple[tuple[str, str, str | None, str], ...] = (
    (
        "device",
        "string",
        "auto",
        "device to run on: auto (cuda if available, else cpu), cpu, cuda, cuda:N",
    ),
    (
        "scale",
        "string",
        "auto",
        "grid size: quick (small default), full (whole sweep), auto (quick on CPU, full on GPU)",
    ),
    (
        "models",
        "string",
        None,
        "shell patterns filtering the suite's models, comma separated (resnet*,vgg16)",
    ),
    ("batch-sizes", "string", None, "batch sizes, comma separated (1,8,32); replaces the suite's"),
    ("dtypes", "string", None, "dtypes: float32,float16,bfloat16; replaces the suite's"),
    ("dtype-method", "string", None, "how reduced precision is applied: autocast or cast"),
    ("memory-formats", "string", None, "contiguous,channels_last; replaces the suite's"),
    ("modes", "string", None, "inference,training; replaces the suite's"),
    (
        "compile",
        "string",
        None,
        "torch.compile: off, on or both (default: the suite's, usually off)",
    ),
    ("min-rounds", "string", None, "minimum measured rounds per case (default 5 quick, 20 full)"),
    (
        "min-time",
        "string",
        None,
        "minimum measured time per case in seconds (default 0.2 quick, 1.0 full)",
    ),
    ("max-time", "string", None, "cap on measured time per case in seconds (default 30)"),
    ("warmup-rounds", "string", None, "uncounted warm-up rounds (default 2 quick, 10 full)"),
    (
        "threads",
        "string",
        None,
        "CPU threads for torch (default: torch's default, recorded in every row)",
    ),
    (
        "power",
        "string",
        "auto",
        "power measurement: auto (NVML on GPU, RAPL on CPU where readable) or off",
    ),
    ("power-hz", "string", "100", "power sampling rate in Hz"),
    (
        "idle-power",
        "string",
        "0",
        "seconds of idle power baseline measured before each case (0: none)",
    ),
    ("results-dir", "string", "results", "directory for the parquet result files"),
    ("reports-dir", "string", "reports", "directory for the HTML report"),
    (
        "report",
        "bool",
        "true",
        "write the HTML report at the end of the run (--cnn-no-report to skip)",
    ),
)


@dataclass
class _SessionState:
    options: RunOptions
    settings: GridSettings
    device: str
    results_dir: Path
    reports_dir: Path
    report: bool
    writer: Any = None
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[CaseResult] = field(default_factory=list)
    oom_at: dict[tuple, int] = field(default_factory=dict)
    suite_models: set[str] = field(default_factory=set)
    report_path: Path | None = None
    report_error: str | None = None


STATE = pytest.StashKey[_SessionState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnnbench", "CNN benchmarking (cnnbench)")
    for name, kind, default, help_text in OPTIONS:
        dest = "cnn_" + name.replace("-", "_")
        if kind == "bool":
            group.addoption(
                f"--cnn-{name}", dest=dest, action="store_true", default=None, help=help_text
            )
            group.addoption(
                f"--cnn-no-{name}",
                dest=dest,
                action="store_false",
                default=None,
                help=f"do not {help_text.split(' (--')[0]}",
            )
        else:
            group.addoption(
                f"--cnn-{name}",
                dest=dest,
                default=None,
                metavar=name.upper().replace("-", "_"),
                help=f"{help_text} [ini: {dest}]",
            )
        parser.addini(dest, help_text, type=kind, default=_ini_default(kind, default))


def _ini_default(kind: str, default: str | None) -> Any:
    if kind == "bool":
        return default == "true"
    return default


def _setting(config: pytest.Config, name: str) -> Any:
    """Command line first, then the ini file (whose default is the built-in one)."""
    dest = "cnn_" + name.replace("-", "_")
    value = config.getoption(dest)
    return value if value is not None else config.getini(dest)


def _number(config: pytest.Config, name: str, cast: Callable[[str], Any], default: Any) -> Any:
    raw = _setting(config, name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        raise pytest.UsageError(f"--cnn-{name} must be a number, got {raw!r}") from None


def _state_from_config(config: pytest.Config) -> _SessionState:
    try:
        resolved = resolve_device(_setting(config, "device"))
    except RuntimeError:
        raise pytest.UsageError(
            f"--cnn-device={_setting(config, 'device')!r} is not a device: use auto, cpu, cuda "
            "or cuda:N"
        ) from None
    unavailable = unavailable_reason(resolved)
    if unavailable:
        raise pytest.UsageError(f"--cnn-device={resolved}: {unavailable}")
    device = str(resolved)
    scale = _setting(config, "scale")
    if scale == "auto":
        scale = "full" if device.startswith("cuda") else "quick"
    if scale not in ("quick", "full"):
        raise pytest.UsageError(f"--cnn-scale must be quick, full or auto, got {scale!r}")
    quick = scale == "quick"
    try:
        settings = GridSettings(
            scale=scale,
            models=split_list(_setting(config, "models")),
            batch_sizes=parse_batch_sizes(_setting(config, "batch-sizes")),
            dtypes=split_list(_setting(config, "dtypes")),
            memory_formats=split_list(_setting(config, "memory-formats")),
            modes=split_list(_setting(config, "modes")),
            compile=_setting(config, "compile"),
            dtype_method=_setting(config, "dtype-method"),
        )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    max_time = _number(config, "max-time", float, 30.0)
    try:
        options = RunOptions(
            warmup_rounds=_number(config, "warmup-rounds", int, 2 if quick else 10),
            min_rounds=_number(config, "min-rounds", int, 5 if quick else 20),
            min_time_s=_number(config, "min-time", float, 0.2 if quick else 1.0),
            max_time_s=max_time if max_time > 0 else None,
            threads=_number(config, "threads", int, None),
            power=_setting(config, "power"),
            power_sample_hz=_number(config, "power-hz", float, 100.0),
            idle_power_s=_number(config, "idle-power", float, 0.0),
        )
    except HarnessError as exc:
        raise pytest.UsageError(f"--cnn-* option: {exc}") from None
    return _SessionState(
        options=options,
        settings=settings,
        device=device,
        results_dir=Path(_setting(config, "results-dir")),
        reports_dir=Path(_setting(config, "reports-dir")),
        report=bool(_setting(config, "report")),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cnnbench(models, input_shapes, batch_sizes, dtypes, memory_formats, modes, compile, "
        "quick={...}, full={...}): the grid of cases a suite test runs through cnn_bench",
    )
    config.stash[STATE] = _state_from_config(config)
    # A case that fails before its rounds never uses the benchmark fixture: its row says why.
    config.addinivalue_line(
        "filterwarnings", "ignore:Benchmark fixture was not used:pytest.PytestWarning"
    )


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
        state.suite_models.update(suite_models(marker.kwargs, state.settings.scale))
        cases = build_cases(marker.kwargs, state.settings, state.device)
        problem = None
    except HarnessError as exc:
        problem = str(exc)
    if problem is not None:
        # A suite's own mistake: a one-line collection error for that file, no traceback.
        pytest.fail(f"{metafunc.definition.nodeid}: {problem}", pytrace=False)
    if not cases:
        metafunc.parametrize(
            "cnn_case",
            [
                pytest.param(
                    None, marks=pytest.mark.skip(reason="no case left after the --cnn-* filters")
                )
            ],
            ids=["no-cases"],
        )
        return
    metafunc.parametrize("cnn_case", cases, ids=[c.case_id for c in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A --cnn-models pattern that matches no model of the collected suites is a typo: say so
    instead of skipping every case."""
    state = config.stash[STATE]
    if not state.settings.models or not state.suite_models:
        return
    missing = unmatched_patterns(state.settings.models, state.suite_models)
    if missing:
        import difflib

        close = sorted(
            {
                c
                for p in missing
                for c in difflib.get_close_matches(p, sorted(state.suite_models), n=3, cutoff=0.5)
            }
        )
        hint = f"closest: {', '.join(close)}" if close else "`cnnbench models` lists them"
        raise pytest.UsageError(
            f"--cnn-models: {', '.join(repr(p) for p in missing)} matches no model of the "
            f"collected suites; {hint}"
        )


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    from harness.measure.env import machine_info as harness_machine_info

    state = config.stash[STATE]
    machine_info["cnnbench"] = harness_machine_info(_environment(state, state.device))


def _environment(state: _SessionState, device: str) -> dict[str, Any]:
    if device not in state.environments:
        from harness.measure.env import collect_environment

        state.environments[device] = collect_environment(resolve_device(device))
    return state.environments[device]


def _oom_key(case: Case) -> tuple:
    return (case.model, case.input_shape, case.dtype, case.memory_format, case.mode, case.compile)


def _benchmark_rounds(
    benchmark: Any,
) -> Callable[[Callable[[], object], int], Sequence[float]] | None:
    """Time the rounds through pytest-benchmark, so its stats, --benchmark-json/-save/-compare
    hold the very samples the harness reports."""
    if benchmark is None or not benchmark.enabled:
        return None

    def rounds_runner(step: Callable[[], object], rounds: int) -> Sequence[float]:
        benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=0)
        return list(benchmark.stats.stats.data)

    return rounds_runner


EXTRA_INFO = (
    "model",
    "input_shape",
    "batch_size",
    "dtype",
    "memory_format",
    "mode",
    "device",
    "device_name",
    "params",
    "macs",
    "flops",
    "activation_bytes",
    "latency_s_median",
    "latency_s_p99",
    "throughput_per_s",
    "peak_memory_bytes",
    "memory_source",
    "energy_j_per_sample",
    "power_source",
    "status",
    "error",
)


@pytest.fixture
def cnn_bench(request: pytest.FixtureRequest, benchmark: Any) -> Callable[[Case], CaseResult]:
    """Run a Case through the harness and pytest-benchmark; its row is on disk on return.

    An ``ok`` case passes, ``oom``/``skipped`` skip with the reason, ``error`` fails; in every
    case the row is written first, so the sweep's record is complete.
    """
    state = request.config.stash[STATE]

    def run(case: Case) -> CaseResult:
        if not isinstance(case, Case):
            raise TypeError(f"cnn_bench takes a harness Case, got {type(case).__name__}")
        env = _environment(state, case.device)
        smaller = state.oom_at.get(_oom_key(case))
        if smaller is not None and case.batch_size > smaller:
            from harness.runner import base_row

            result = CaseResult(case, base_row(case, env))
            result.row.update(status="skipped", error=f"batch {smaller} already ran out of memory")
        else:
            result = run_case(
                case, state.options, environment=env, rounds_runner=_benchmark_rounds(benchmark)
            )
        if result.status == "oom":
            state.oom_at[_oom_key(case)] = min(case.batch_size, smaller or case.batch_size)
        _record(state, result)
        benchmark.extra_info.update(
            {k: result.row.get(k) for k in EXTRA_INFO if result.row.get(k) is not None}
        )
        if result.status in ("oom", "skipped"):
            pytest.skip(f"{case.case_id}: {result.status}: {result.row.get('error')}")
        if result.status == "error":
            pytest.fail(f"{case.case_id}: {result.row.get('error')}", pytrace=False)
        return result

    return run


def _record(state: _SessionState, result: CaseResult) -> None:
    from harness.results.store import ResultWriter

    if state.writer is None:
        state.writer = ResultWriter(state.results_dir)
    tables = {"layers": result.layers}
    if result.power is not None:
        tables["power"] = result.power
    state.writer.add_case(result.row, **tables)
    state.results.append(result)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None or state.writer is None:
        return
    state.writer.finish(complete=exitstatus != pytest.ExitCode.INTERRUPTED)
    if not state.report:
        return
    try:
        from harness.report import write_report

        out = state.reports_dir / f"{state.writer.run_id}.html"
        state.report_path = write_report(list(state.writer.paths.values()), out)
    except Exception as exc:  # a report failure must never lose or hide the results
        state.report_error = f"{type(exc).__name__}: {exc}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.results:
        return
    from harness.summary import summary_table

    tr = terminalreporter
    tr.section("cnnbench summary")
    tr.write_line(summary_table([r.row for r in state.results]))
    if state.writer is not None:
        for table, path in state.writer.paths.items():
            tr.write_line(f"results ({table}): {path}")
    if state.report_path is not None:
        tr.write_line(f"report: {state.report_path}")
    elif state.report_error:
        tr.write_line(f"report not written: {state.report_error}", red=True)
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        tr.write_line("run interrupted: every finished case is on disk, marked run_complete=false")
