"""The pytest plugin's settings: every ``--cnn-*`` option and ``cnn_*`` ini key, read (command
line first, then the ini file) and checked once into ``RunSettings``: the runner's
``RunOptions``, the grid's ``GridSettings`` and the run's own choices (device, isolation,
budget, report, smoke run, xdist role). A bad value is one ``pytest.UsageError`` line naming the
option. harness.plugin.hooks holds the run's state and the hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.core.spec import parse_shape
from harness.run.grid import GridSettings, parse_batch_sizes, parse_threads, split_list
from harness.run.isolation import ISOLATIONS
from harness.run.runner import RunOptions, max_threads

# name, ini type, default, help. Each is `--cnn-NAME` on the command line and `cnn_NAME` in ini.
OPTIONS: tuple[tuple[str, str, str | None, str], ...] = (
    ("device", "string", "auto", "device: auto (cuda if available, else cpu), cpu, cuda, cuda:N"),
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
        "models, comma separated: shell patterns filter the suites' models (resnet*,vgg16); a "
        "name no suite lists (torchvision:resnet50, timm:NAME, pkg.mod:factory) runs on its own",
    ),
    ("batch-sizes", "string", None, "batch sizes, comma separated (1,8,32); replaces the suite's"),
    ("input-shape", "string", None, "input without the batch (3x256x256); replaces every model's"),
    ("dtypes", "string", None, "dtypes: float32,float16,bfloat16; replaces the suite's"),
    ("dtype-method", "string", None, "how reduced precision is applied: autocast or cast"),
    ("memory-formats", "string", None, "contiguous,channels_last; replaces the suite's"),
    ("modes", "string", None, "inference,training; replaces the suite's"),
    ("compile", "string", None, "torch.compile: off, on or both (default: the suite's)"),
    ("threads", "string", None, "CPU thread counts, comma separated (1,2,4): a grid dimension"),
    ("min-rounds", "string", None, "minimum measured rounds per case (default 6 quick, 20 full)"),
    ("min-time", "string", None, "minimum measured time per case, s (default 0.2 quick, 1 full)"),
    (
        "max-time",
        "string",
        None,
        "cap on a case's measured time, s, or 'none' (default 1.5 quick, 30 full)",
    ),
    ("warmup-rounds", "string", None, "uncounted warm-up rounds (default 2 quick, 10 full)"),
    (
        "target-ci",
        "string",
        "1%",
        "rounds go on until the median's 95%% interval is within this share of it (0: off)",
    ),
    ("remeasure", "string", "1", "times a noisy case is measured again after a pause (0: never)"),
    (
        "isolate",
        "string",
        "model",
        "crash isolation: model (a child process per model), case, or none (in the test process)",
    ),
    ("max-minutes", "string", None, "time budget: cases that would end past it are skipped"),
    ("layer-times", "bool", "false", "measure time per layer after the rounds (torch.profiler)"),
    ("power", "string", "auto", "power: auto (NVML on GPU, RAPL on CPU where readable) or off"),
    ("power-hz", "string", "100", "power sampling rate in Hz"),
    ("idle-power", "string", "0", "seconds of idle power measured before each case (0: none)"),
    ("results-dir", "string", "results", "directory for the parquet result files"),
    ("reports-dir", "string", "reports", "directory for the HTML report"),
    (
        "report",
        "string",
        "auto",
        "HTML report at the end: auto (yes, but not for runs narrowed by -k, --lf or -x, nor "
        "--benchmark-disable), true, false; --cnn-report / --cnn-no-report",
    ),
)
BOOL_FLAGS = ("report", "layer-times")


@dataclass
class RunSettings:
    """What the user asked for, parsed and checked once at configure time."""

    options: RunOptions
    settings: GridSettings
    device: str
    results_dir: Path | None
    reports_dir: Path
    report: bool
    isolate: str
    max_minutes: float | None
    smoke: bool
    role: str  # "main", "controller" or "worker"


def add_options(parser: pytest.Parser) -> None:
    """Every option as ``--cnn-NAME`` (booleans also ``--cnn-no-NAME``) and ini key ``cnn_NAME``."""
    group = parser.getgroup("cnnbench", "CNN benchmarking (cnnbench)")
    for name, _type, default, help_text in OPTIONS:
        dest = "cnn_" + name.replace("-", "_")
        if name in BOOL_FLAGS:
            group.addoption(
                f"--cnn-{name}", dest=dest, action="store_true", default=None, help=help_text
            )
            group.addoption(
                f"--cnn-no-{name}",
                dest=dest,
                action="store_false",
                default=None,
                help="the opposite",
            )
        else:
            group.addoption(
                f"--cnn-{name}",
                dest=dest,
                default=None,
                metavar=name.upper().replace("-", "_"),
                help=f"{help_text} [ini: {dest}]",
            )
        parser.addini(dest, help_text, type="string", default=default)


def _setting(config: pytest.Config, name: str) -> Any:
    """Command line first, then the ini file (whose default is the built-in one)."""
    dest = "cnn_" + name.replace("-", "_")
    value = config.getoption(dest)
    return value if value is not None else config.getini(dest)


def _given(config: pytest.Config, name: str) -> bool:
    return config.getoption("cnn_" + name.replace("-", "_")) is not None


def _bool(config: pytest.Config, name: str) -> bool | None:
    """True / False, or None for ``auto``."""
    raw = _setting(config, name)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("auto", ""):
        return None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise pytest.UsageError(
        f"cnn_{name.replace('-', '_')} must be true, false or auto, got {raw!r}"
    )


def _number(
    config: pytest.Config,
    name: str,
    cast: Callable[[str], Any],
    default: Any,
    *,
    low: float,
    high: float,
    none_ok: bool = False,
) -> Any:
    """A finite number from ``low`` to ``high`` (or ``none``/``off`` where ``none_ok``)."""
    raw = _setting(config, name)
    if raw in (None, ""):
        return default
    text = str(raw).strip().lower()
    if none_ok and text in ("none", "off"):
        return None
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not low <= value <= high:
        kind = "a whole number" if cast is int else "a number"
        extra = " or 'none'" if none_ok else ""
        raise pytest.UsageError(
            f"--cnn-{name} must be {kind} from {low:g} to {high:g}{extra}, got {raw!r}"
        )
    return value


def _share(config: pytest.Config, name: str) -> float | None:
    """``1%`` or ``0.01`` -> 0.01; ``0`` -> None."""
    raw = str(_setting(config, name)).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or not 0 <= value < 1:
        raise pytest.UsageError(f"--cnn-{name} must be a share such as 1% or 0.01, got {raw!r}")
    return value or None


def _role(config: pytest.Config) -> str:
    if hasattr(config, "workerinput"):
        return "worker"
    if (config.getoption("numprocesses", None) or 0) and config.getoption("dist", "no") != "no":
        return "controller"
    return "main"


def read_settings(config: pytest.Config) -> RunSettings:
    """The run's settings from the command line and ini file; a bad value is a UsageError."""
    from harness.run.runner import resolve_device, unavailable_reason

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
    on_gpu = resolved.type == "cuda"
    scale = _setting(config, "scale")
    if scale == "auto":
        scale = "full" if on_gpu else "quick"
    if scale not in ("quick", "full"):
        raise pytest.UsageError(f"--cnn-scale must be quick, full or auto, got {scale!r}")
    quick = scale == "quick"
    role = _role(config)
    try:
        shape = _setting(config, "input-shape")
        settings = GridSettings(
            scale=scale,
            models=split_list(_setting(config, "models")),
            batch_sizes=parse_batch_sizes(_setting(config, "batch-sizes")),
            dtypes=split_list(_setting(config, "dtypes")),
            memory_formats=split_list(_setting(config, "memory-formats")),
            modes=split_list(_setting(config, "modes")),
            compile=_setting(config, "compile"),
            dtype_method=_setting(config, "dtype-method"),
            threads=parse_threads(_setting(config, "threads"), max_threads()),
            input_shape=parse_shape(shape) if shape else None,
        )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    isolate = str(_setting(config, "isolate")).strip().lower()
    if isolate not in ISOLATIONS:
        raise pytest.UsageError(
            f"--cnn-isolate must be one of {', '.join(ISOLATIONS)}, got {isolate!r}"
        )
    smoke = bool(config.getoption("benchmark_disable", False))
    try:
        if smoke:  # pytest-benchmark's convention: each case once, as a smoke test
            options = RunOptions(
                warmup_rounds=0, warmup_time_s=0, min_rounds=1, min_time_s=0,
                max_time_s=None, ci_target=None, remeasure=0, power="off",
            )  # fmt: skip
        else:
            options = RunOptions(
                warmup_rounds=_number(
                    config, "warmup-rounds", int, 2 if quick else 10, low=0, high=1e6
                ),
                min_rounds=_number(config, "min-rounds", int, 6 if quick else 20, low=1, high=1e6),
                min_time_s=_number(
                    config, "min-time", float, 0.2 if quick else 1.0, low=0, high=86_400
                ),
                max_time_s=_number(
                    config,
                    "max-time",
                    float,
                    1.5 if quick else 30.0,
                    low=1e-3,
                    high=86_400,
                    none_ok=True,
                ),
                ci_target=_share(config, "target-ci"),
                remeasure=_number(config, "remeasure", int, 1, low=0, high=10),
                power=_setting(config, "power"),
                power_sample_hz=_number(config, "power-hz", float, 100.0, low=0.1, high=1000),
                idle_power_s=_number(config, "idle-power", float, 0.0, low=0, high=3600),
                layer_times=bool(_bool(config, "layer-times")),
                remeasure_pause_s=0.5 if quick else 1.0,
            )
    except HarnessError as exc:
        raise pytest.UsageError(f"--cnn-* option: {exc}") from None
    max_minutes = _number(config, "max-minutes", float, None, low=0.01, high=1e6)
    # A smoke run writes nothing unless asked (pytest-benchmark users expect a quick check).
    write = not smoke or _given(config, "results-dir")
    report = _bool(config, "report")
    if report is None:
        narrowed = bool(
            config.getoption("keyword", "")
            or config.getoption("lf", False)
            or (config.getoption("maxfail", 0) or 0) > 0
        )
        report = write and not smoke and not narrowed
    return RunSettings(
        options=options,
        settings=settings,
        device="cuda" if on_gpu and role != "main" else str(resolved),
        results_dir=Path(_setting(config, "results-dir")) if write else None,
        reports_dir=Path(_setting(config, "reports-dir")),
        report=bool(report),
        isolate=isolate,
        max_minutes=max_minutes,
        smoke=smoke,
        role=role,
    )
