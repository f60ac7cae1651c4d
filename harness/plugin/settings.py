"""The pytest plugin's settings: every ``--cnn-*`` option and ``cnn_*`` ini key, read (command
line first, then the ini file) and checked once into ``RunSettings``: the runner's
``RunOptions``, the grid's ``GridSettings`` and the run's own choices (device, isolation,
budget, report, smoke run, xdist role). A bad value is one ``pytest.UsageError`` line naming the
option. harness.plugin.hooks holds the run's state and the hooks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.core.settings import SettingError
from harness.core.spec import DEVICE_FORMS, parse_shape
from harness.run.grid import GridSettings, parse_batch_sizes, parse_threads, split_list
from harness.run.isolation import ISOLATIONS
from harness.run.options import RunOptions, max_threads, preset, preset_default

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
    (
        "windows",
        "string",
        None,
        "timed windows per case, interleaved with other cases' (default "
        f"{preset_default('windows')}); a row is valid only when they agree",
    ),
    (
        "min-rounds",
        "string",
        None,
        f"minimum measured rounds per case, all windows (default {preset_default('min_rounds')})",
    ),
    (
        "min-time",
        "string",
        None,
        f"minimum measured time per case, all windows, s (default {preset_default('min_time_s')})",
    ),
    (
        "max-time",
        "string",
        None,
        f"cap on a case's measured time, s, or 'none' (default {preset_default('max_time_s')})",
    ),
    (
        "warmup-rounds",
        "string",
        None,
        f"uncounted warm-up rounds (default {preset_default('warmup_rounds')})",
    ),
    (
        "target-ci",
        "string",
        "1%",
        "rounds go on until the median's 95%% interval is within this share of it (0: off)",
    ),
    (
        "remeasure",
        "string",
        "1",
        "passes of extra windows for a case short of valid or of --cnn-target-ci for a reason "
        "more windows can fix (0: never)",
    ),
    (
        "isolate",
        "string",
        "model",
        "crash isolation: model (a child process per model), case, or none (in the test process)",
    ),
    ("max-minutes", "string", None, "time budget: cases that would end past it are skipped"),
    (
        "block-cases",
        "string",
        "8",
        "cases whose windows interleave in one block (1: one case at a time; a block's rows end "
        "together)",
    ),
    (
        "plan",
        "bool",
        "false",
        "print the sweep's case count and estimated duration (from the settings and the fixed "
        "costs per case), then exit without measuring",
    ),
    ("layer-times", "bool", "false", "measure time per layer after the rounds (torch.profiler)"),
    ("power", "string", "auto", "power: auto (NVML on GPU, RAPL on CPU where readable) or off"),
    ("power-hz", "string", "100", "power sampling rate in Hz"),
    ("idle-power", "string", "0", "seconds of idle power measured before each case (0: none)"),
    ("results-dir", "string", "results", "directory for the parquet result files"),
    (
        "shard",
        "string",
        None,
        "run shard I of N of the grid (1/4 ... 4/4): a cost-balanced part, each model's cases "
        "together, written into the results tree as part of the sweep --cnn-sweep names",
    ),
    (
        "sweep",
        "string",
        None,
        "the id every shard of one sweep shares (their run id), e.g. the CI run's; alone: "
        "the whole grid as shard 1/1 of that sweep in the results tree",
    ),
    ("reports-dir", "string", "reports", "directory for the HTML report"),
    (
        "report",
        "string",
        "auto",
        "HTML report at the end: auto (yes, but not for runs narrowed by -k, --lf or -x, nor "
        "--benchmark-disable), true, false; --cnn-report / --cnn-no-report",
    ),
)
BOOL_FLAGS = ("report", "layer-times", "plan")


@dataclass
class RunSettings:
    """What the user asked for, parsed and checked once at configure time, without torch.

    What needs torch (is a GPU usable? then ``auto`` means cuda and the full scale) is resolved
    on first need, by ``resolve``: when a suite asks for cases, or an xdist run places its
    workers. A plain pytest run of the environment (no CNN suite) never imports torch.
    ``overrides``: the RunOptions fields the user set, on top of the scale's preset.
    """

    device_name: str
    scale_name: str
    overrides: dict[str, Any]
    grid: GridSettings
    results_dir: Path | None
    reports_dir: Path
    report: bool
    isolate: str
    max_minutes: float | None
    smoke: bool
    role: str  # "main", "controller" or "worker"
    shard: tuple[int, int] | None = None  # (I, N) of --cnn-shard (harness.cluster)
    sweep_id: str | None = None  # --cnn-sweep: the run id of every shard of the sweep
    plan: bool = False
    block_cases: int = 8  # cases interleaved in one block (harness.run.sweep)
    # resolved on first need (``resolve``)
    device: str = ""
    options: RunOptions | None = None
    settings: GridSettings | None = None

    def resolve(self) -> None:
        """Resolve the device (importing torch), then the scale, the options and the grid;
        a device that does not work here is a SettingError (the plugin says it in one line)."""
        if self.options is not None:
            return
        from harness.measure.devices import resolve_device, unavailable_reason

        resolved = resolve_device(self.device_name)
        problem = unavailable_reason(resolved)
        if problem:
            raise SettingError(
                "device", f"--cnn-device={self.device_name}: {problem}; use --cnn-device=cpu"
            )
        on_gpu = resolved.type == "cuda"
        scale = self.scale_name if self.scale_name != "auto" else ("full" if on_gpu else "quick")
        self.options = preset("smoke" if self.smoke else scale, **self.overrides)
        self.settings = replace(self.grid, scale=scale)
        self.device = "cuda" if on_gpu and self.role != "main" else str(resolved)


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


def _number(config: pytest.Config, name: str, cast: Callable[[str], Any]) -> Any:
    """The option as a number (``none``/``off``: None), or absent (``...``); bounds are
    RunOptions' (harness.core.settings)."""
    raw = _setting(config, name)
    if raw in (None, ""):
        return ...
    text = str(raw).strip().lower()
    if text in ("none", "off"):
        return None
    try:
        return cast(text)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise pytest.UsageError(f"--cnn-{name} must be {kind}, got {raw!r}") from None


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


# RunOptions fields set by options: option -> (field, how the text is read)
NUMBER_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "warmup-rounds": ("warmup_rounds", int),
    "windows": ("windows", int),
    "min-rounds": ("min_rounds", int),
    "min-time": ("min_time_s", float),
    "max-time": ("max_time_s", float),
    "remeasure": ("remeasure", int),
    "power-hz": ("power_sample_hz", float),
    "idle-power": ("idle_power_s", float),
}
OPTION_OF_FIELD = {field: f"--cnn-{name}" for name, (field, _) in NUMBER_OPTIONS.items()} | {
    "ci_target": "--cnn-target-ci",
    "power": "--cnn-power",
    "threads": "--cnn-threads",
}
DEVICE_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _overrides(config: pytest.Config) -> dict[str, Any]:
    """The RunOptions fields the user set, checked against both presets now (no torch)."""
    given: dict[str, Any] = {}
    for name, (field, cast) in NUMBER_OPTIONS.items():
        value = _number(config, name, cast)
        if value is not ...:
            given[field] = value
    given["ci_target"] = _share(config, "target-ci")
    given["power"] = str(_setting(config, "power")).strip().lower()
    given["layer_times"] = bool(_bool(config, "layer-times"))
    for scale in ("quick", "full"):
        try:
            preset(scale, **given)
        except SettingError as exc:
            option = OPTION_OF_FIELD.get(exc.field, exc.field)
            raise pytest.UsageError(f"{option}: {exc}") from None
    return given


def read_settings(config: pytest.Config) -> RunSettings:
    """The run's settings from the command line and ini file; a bad value is a UsageError."""
    device = str(_setting(config, "device")).strip().lower()
    if not DEVICE_NAME.match(device):
        raise pytest.UsageError(
            f"--cnn-device={_setting(config, 'device')!r}: {device!r} is not a device: use "
            f"{DEVICE_FORMS}"
        )
    scale = str(_setting(config, "scale")).strip().lower()
    if scale not in ("quick", "full", "auto"):
        raise pytest.UsageError(f"--cnn-scale must be quick, full or auto, got {scale!r}")
    try:
        shape = _setting(config, "input-shape")
        grid = GridSettings(
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
    overrides = {} if smoke else _overrides(config)  # a smoke run: each case once (its preset)
    max_minutes = _number(config, "max-minutes", float)
    if max_minutes is ... or max_minutes is None:
        max_minutes = None
    elif not (math.isfinite(max_minutes) and 0.01 <= max_minutes <= 1e6):
        raise pytest.UsageError(
            f"--cnn-max-minutes must be from 0.01 to 1e+06, got {max_minutes!r}"
        )
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
    shard, sweep = _shard(config, write)
    return RunSettings(
        device_name=device,
        scale_name=scale,
        overrides=overrides,
        grid=grid,
        results_dir=Path(_setting(config, "results-dir")) if write else None,
        reports_dir=Path(_setting(config, "reports-dir")),
        report=bool(report),
        isolate=isolate,
        max_minutes=max_minutes,
        smoke=smoke,
        role=_role(config),
        shard=shard,
        sweep_id=sweep,
        plan=bool(_bool(config, "plan")),
        block_cases=block_cases(config),
    )


def _shard(config: pytest.Config, write: bool) -> tuple[tuple[int, int] | None, str | None]:
    """--cnn-shard=I/N and --cnn-sweep=ID, checked (no torch); a sweep alone is shard 1/1."""
    raw_shard, raw_sweep = _setting(config, "shard"), _setting(config, "sweep")
    if raw_shard in (None, "") and raw_sweep in (None, ""):
        return None, None
    from harness.cluster.shard import parse_shard  # (pandas and pyarrow come with the tree)
    from harness.results.tree import check_id

    try:
        shard = parse_shard(raw_shard) if raw_shard not in (None, "") else None
        sweep = check_id(str(raw_sweep), "--cnn-sweep") if raw_sweep not in (None, "") else None
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    if shard is not None and sweep is None and write:
        raise pytest.UsageError(
            f"--cnn-shard={shard[0]}/{shard[1]} writes one part of a sweep: pass the id all its "
            "shards share as --cnn-sweep=ID (e.g. the CI run's id); cnnbench submit sets both"
        )
    if sweep is not None and shard is None:
        shard = (1, 1)
    return shard, sweep


def block_cases(config: pytest.Config) -> int:
    """--cnn-block-cases, a whole number from 1 to 64."""
    raw = _setting(config, "block-cases")
    try:
        n = int(str(raw).strip())
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise pytest.UsageError(
            f"--cnn-block-cases must be a whole number from 1 to 64, got {raw!r}"
        )
    return n
