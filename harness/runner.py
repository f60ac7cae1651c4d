"""Run one Case end to end (build, validate, profile, warm up, measure) and return its row.

The runner knows nothing about pytest: the plugin hands it a Case and, optionally, a
``rounds_runner`` that times the rounds through pytest-benchmark. Whatever goes wrong inside a
case becomes the row's ``status`` (``oom``, ``error``, ``skipped``) and ``error``; only
KeyboardInterrupt escapes, so a sweep always goes on.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import torch

from harness.cases import Case
from harness.errors import HarnessError, InvalidInputError
from harness.measure.env import collect_environment
from harness.measure.memory import measure_peak_memory
from harness.measure.power import PowerReading, make_power_monitor
from harness.measure.timing import fixed_threads, measure_latency
from harness.profile import profile, validate_input
from harness.results.schema import column_names
from harness.step import PreparedStep, prepare_step

LAYER_COLUMNS = column_names("layers")

RoundsRunner = Callable[[Callable[[], object], int], Sequence[float]]


@dataclass(frozen=True)
class RunOptions:
    """How a case is measured. Times in seconds."""

    warmup_rounds: int = 3
    warmup_time_s: float = 0.2
    min_rounds: int = 5
    min_time_s: float = 0.5
    max_time_s: float | None = 30.0
    threads: int | None = None
    power: str = "auto"
    power_sample_hz: float = 100.0
    idle_power_s: float = 0.0
    cudnn_benchmark: bool = True
    layer_times: bool = False
    layer_time_steps: int = 5

    def __post_init__(self) -> None:
        def bad(name: str, value: object, rule: str) -> InvalidInputError:
            return InvalidInputError(f"{name} must be {rule}, got {value!r}")

        if self.warmup_rounds < 0:
            raise bad("warmup rounds", self.warmup_rounds, "0 or more")
        if self.min_rounds < 1:
            raise bad("minimum rounds", self.min_rounds, "at least 1")
        for name, value in (
            ("warm-up time", self.warmup_time_s),
            ("minimum time", self.min_time_s),
            ("idle power time", self.idle_power_s),
        ):
            if value < 0:
                raise bad(name, value, "0 s or more")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise bad("maximum time", self.max_time_s, "more than 0 s (or None: no cap)")
        if self.threads is not None and self.threads < 1:
            raise bad("threads", self.threads, "at least 1 (or None: torch's default)")
        if self.power not in ("auto", "off"):
            raise bad("power", self.power, "'auto' or 'off'")
        if not 0 < self.power_sample_hz <= 1000:
            raise bad("power sampling rate", self.power_sample_hz, "in (0, 1000] Hz")


@dataclass
class CaseResult:
    """One case's row (schema CASES columns) and its side tables."""

    case: Case
    row: dict[str, Any]
    layers: pd.DataFrame | None = None
    power: pd.DataFrame | None = None

    @property
    def status(self) -> str:
        return str(self.row["status"])


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device(
            "cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0
        )
    return device


def unavailable_reason(device: torch.device) -> str | None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return (
                "CUDA is not available on this machine (no GPU or no driver); use --cnn-device=cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"{device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible"
    elif device.type != "cpu":
        return f"device type {device.type!r} is not supported by the harness yet"
    return None


def _load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): a busy machine's flag."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _check_trainable_batch_norm(layers: Sequence[Any], case: Case) -> None:
    """Batch norm in training needs more than one value per channel: fail before running."""
    for layer in layers:
        shape = tuple(layer.output_shape)
        if layer.type.startswith("BatchNorm") and len(shape) >= 2:
            per_channel = shape[0] * int(torch.Size(shape[2:]).numel())
            if per_channel < 2:
                raise InvalidInputError(
                    f"{case.model} cannot train at batch {case.batch_size} with input "
                    f"{'x'.join(map(str, case.input_shape))}: layer {layer.name} ({layer.type}) "
                    f"gets {'x'.join(map(str, shape))}, one value per channel, and batch norm "
                    "needs more than one in training; use a larger batch or input"
                )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _out_of_memory(exc: BaseException | None) -> BaseException | None:
    """The OutOfMemoryError behind ``exc``: itself, its ``__cause__``, or the one torch.compile
    wrapped (Dynamo raises BackendCompilerFailed ``from None``, keeping it as
    ``inner_exception``), so that a case compiled out of memory is ``oom``, not ``error``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, torch.OutOfMemoryError):
            return exc
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None)
        exc = inner if isinstance(inner, BaseException) else exc.__cause__
    return None


def _release(device: torch.device, compiled: bool) -> str | None:
    """Leave nothing of the case behind for the next one; returns why the CUDA clean-up failed
    (a CUDA error the case left in the context), else None.

    A compiled case resets torch.compile's caches: Dynamo keeps its compiled entries on the
    code object every ``torch.compile(module)`` wrapper shares, so without a reset the cases of
    a sweep pile up there until ``recompile_limit`` (8) is hit, and a frame that once ran under
    a dispatch mode (the CPU memory tracker) is not compiled again: every later "compiled"
    case would silently run eager. The reset also frees the compiled graphs' memory.
    """
    if compiled:
        torch.compiler.reset()
    gc.collect()
    if device.type == "cuda" and torch.cuda.is_available():
        try:
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        except RuntimeError as exc:  # e.g. an illegal memory access: sticky, the context is lost
            return f"{type(exc).__name__}: {_first_line(exc)}"
    return None


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device, enabled: bool) -> Iterator[bool | None]:
    if device.type != "cuda":
        yield None
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield enabled
    finally:
        torch.backends.cudnn.benchmark = before


def base_row(case: Case, environment: dict[str, Any]) -> dict[str, Any]:
    """The identifying and environment columns every row of a case has, whatever happens."""
    row = {**environment, **case.to_dict(), "case_id": case.case_id}
    return row


def run_case(
    case: Case,
    options: RunOptions | None = None,
    *,
    environment: dict[str, Any] | None = None,
    rounds_runner: RoundsRunner | None = None,
) -> CaseResult:
    """Measure ``case`` and return its row; failures become the row's status, never a raise.

    ``environment`` is ``collect_environment(...)``'s dict (collected here when None; a sweep
    collects it once). ``rounds_runner`` times the rounds (default: the harness's own loop).
    """
    options = options or RunOptions()
    device = resolve_device(case.device)
    reason = unavailable_reason(device)
    if environment is None:  # the host's facts still describe a case that cannot run here
        environment = collect_environment(torch.device("cpu") if reason else device)
    env = dict(environment)
    result = CaseResult(case, base_row(case, env))
    row = result.row
    prepared: PreparedStep | None = None
    try:
        with fixed_threads(options.threads) as threads:
            row["cpu_threads"] = threads
            row["load_avg_1m"] = _load_average()
            # Static part: validation and the profile need no device and no real memory.
            validate_input(case.model, case.input_shape, case.batch_size, case.torch_dtype)
            prof = profile(case.model, case.input_shape, case.batch_size, case.torch_dtype)
            row.update(prof.totals())
            if case.mode == "training":
                _check_trainable_batch_norm(prof.layers, case)
            layers = prof.to_frame().assign(
                model=case.model,
                input_shape=row["input_shape"],
                batch_size=case.batch_size,
                dtype=case.dtype,
            )  # its derived cumulative shares are not stored
            result.layers = layers[[c for c in LAYER_COLUMNS if c in layers.columns]]
            # MACs of an op no counter handles are not in `macs`: the row says which ones.
            row["unhandled_ops"] = ", ".join(
                f"{op} x{calls}" for op, calls in sorted(prof.unhandled_ops.items())
            )

            if reason:
                row.update(status="skipped", error=reason)
                return result

            with _cudnn_benchmark(device, options.cudnn_benchmark) as cudnn_state:
                row["cudnn_benchmark"] = cudnn_state
                # On Ampere and newer "float32" may run in TF32: say which precision ran.
                row["float32_matmul_precision"] = torch.get_float32_matmul_precision()
                if device.type == "cuda":
                    row["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
                prepared = prepare_step(case, device)
                row["param_bytes"] = sum(
                    p.numel() * p.element_size() for p in prepared.model.parameters()
                )
                _measure(prepared, case, device, options, rounds_runner, result)
            row["status"] = "ok"
    except torch.OutOfMemoryError as exc:
        row.update(status="oom", error=f"out of memory: {_first_line(exc)}")
    except HarnessError as exc:
        row.update(status="error", error=str(exc))
    except Exception as exc:
        oom = _out_of_memory(exc)
        if oom is not None:
            row.update(status="oom", error=f"out of memory: {_first_line(oom)}")
        else:
            row.update(status="error", error=f"{type(exc).__name__}: {_first_line(exc)}"[:2000])
    finally:
        prepared = None
        # A clean-up failure must not lose the row (nor crash the sweep): it becomes its error.
        problem = _release(device, case.compile)
        if problem is not None:
            note = f"cleaning up after the case failed: {problem}"
            if row.get("status") == "ok":
                row.update(status="error", error=note)
            else:
                row["error"] = f"{row['error']}; {note}" if row.get("error") else note
        row["timestamp_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return result


def _layer_times(
    prepared: PreparedStep,
    case: Case,
    device: torch.device,
    options: RunOptions,
    summary: dict[str, Any],
    result: CaseResult,
) -> None:
    """Measured time per layer (harness.measure.layer_times) joined to the static layer table;
    a failure there leaves the case ``ok`` and says why in ``layer_time_source``."""
    from harness.measure.layer_times import measure_layer_times

    try:
        measured = measure_layer_times(
            prepared,
            case,
            device,
            steps=options.layer_time_steps,
            static=result.layers,
            step_median_s=float(summary["latency_s_median"]),
        )
    except Exception as exc:
        result.row["layer_time_source"] = (
            f"not measured: {type(exc).__name__}: {_first_line(exc)}"[:500]
        )
        return
    result.layers = measured.layers
    result.row.update(measured.columns)


def _measure(
    prepared: PreparedStep,
    case: Case,
    device: torch.device,
    options: RunOptions,
    rounds_runner: RoundsRunner | None,
    result: CaseResult,
) -> None:
    row = result.row
    monitor = make_power_monitor(device, mode=options.power, sample_hz=options.power_sample_hz)
    idle_w = monitor.measure_idle(options.idle_power_s) if options.idle_power_s > 0 else None
    readings: list[PowerReading] = []
    inner = rounds_runner

    def powered_rounds(step: Callable[[], object], rounds: int) -> Sequence[float]:
        monitor.start()
        try:
            if inner is None:
                from harness.measure.timing import run_rounds

                return run_rounds(step, rounds)
            return inner(step, rounds)
        finally:
            readings.append(monitor.stop())

    # The rounds are planned from the fastest warm-up call; 20% over the energy window and a
    # warm-up of at least 0.1 s keep a still-warming step from leaving the window short.
    min_time_s = max(options.min_time_s, 1.2 * monitor.min_window_s)
    warmup_time_s = max(options.warmup_time_s, 0.1 if monitor.min_window_s > 0 else 0.0)
    max_time_s = options.max_time_s
    if max_time_s is not None:
        max_time_s = max(max_time_s, min_time_s)
    with prepared.contexts():
        timing = measure_latency(
            prepared.step,
            device=device,
            warmup_rounds=options.warmup_rounds,
            warmup_time_s=warmup_time_s,
            min_rounds=options.min_rounds,
            min_time_s=min_time_s,
            max_time_s=max_time_s,
            rounds_runner=powered_rounds,
        )
        memory = measure_peak_memory(prepared.step, device, baseline_tensors=prepared.tensors)
        if options.layer_times:  # after the timed rounds, never inside them
            _layer_times(prepared, case, device, options, timing.summary(), result)
    columns = timing.to_columns()
    row.update(columns)
    row["throughput_per_s"] = case.batch_size / columns["latency_s_median"]
    row.update(memory.to_columns())
    if readings:
        reading = readings[-1]
        row.update(reading.to_columns(int(columns["rounds"]) * case.batch_size))
        result.power = reading.trace_frame()
    if idle_w is not None:
        row["power_w_idle"] = idle_w
