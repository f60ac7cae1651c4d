"""Run one Case end to end (validate, profile, build, warm up, measure) and return its row.

The runner knows nothing about pytest and nothing about sweeps (harness.run.sweep holds the policy
across cases: out-of-memory memo, budget, isolation, writing). Whatever goes wrong inside a case
becomes the row's ``status`` (``oom``, ``error``, ``skipped``) and ``error``: an exception, a
``SystemExit`` from a model's forward, anything. Only Ctrl-C escapes, as ``CaseInterrupted``
carrying the row, so the caller can write it and stop.

A measured row carries its validity (harness.results.validity): when the noise signals of the
timed rounds cross a threshold, the rounds are measured again once after a short pause
(``RunOptions.remeasure``) and the row keeps the better measurement, saying how many times it
was measured again (``remeasured``).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import torch

from harness.core.errors import DataDependentForwardError, HarnessError, InvalidInputError
from harness.core.schema import column_names
from harness.core.spec import Case
from harness.measure import cuda_state
from harness.measure.env import collect_environment
from harness.measure.memory import measure_peak_memory
from harness.measure.noise import NoiseProbe, cpu_affinity, load_average
from harness.measure.power.meters import PowerReading, make_power_monitor
from harness.measure.timing import TimingResult, fixed_threads, measure_latency
from harness.profile import ModelProfile, profile, validate_input
from harness.results.validity import assess
from harness.run.step import ModelCache, PreparedStep, prepare_step

LAYER_COLUMNS = column_names("layers")
PROFILE_SOURCE = "meta device (harness.profile)"


@dataclass(frozen=True)
class RunOptions:
    """How a case is measured. Times in seconds.

    ``ci_target``: the rounds go on until the 95% interval of the median is within this share
    of it (0 or None: just the minimum), up to ``max_time_s`` of rounds. ``remeasure``: how many
    times a noisy measurement is taken again (after ``remeasure_pause_s``). ``memory_check``:
    refuse (``skipped``) a case whose analytic lower bound on memory exceeds what is free.
    """

    warmup_rounds: int = 3
    warmup_time_s: float = 0.2
    min_rounds: int = 5
    min_time_s: float = 0.5
    max_time_s: float | None = 30.0
    ci_target: float | None = 0.01
    remeasure: int = 1
    remeasure_pause_s: float = 1.0
    threads: int | None = None
    power: str = "auto"
    power_sample_hz: float = 100.0
    idle_power_s: float = 0.0
    cudnn_benchmark: bool = True
    layer_times: bool = False
    layer_time_steps: int = 5
    memory_check: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, value: object, rule: str) -> InvalidInputError:
            return InvalidInputError(f"{name} must be {rule}, got {value!r}")

        def whole(name: str, value: object, low: int, high: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise bad(name, value, f"a whole number from {low} to {high:,}")

        def finite(name: str, value: object, low: float, high: float, strict: bool) -> None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and value <= high  # type: ignore[arg-type]
            ok = ok and (value > low if strict else value >= low)  # type: ignore[operator]
            if not ok:
                rule = f"{'more than' if strict else 'at least'} {low:g} and at most {high:g}"
                raise bad(name, value, f"a finite number {rule}")

        whole("warmup rounds", self.warmup_rounds, 0, 1_000_000)
        whole("minimum rounds", self.min_rounds, 1, 1_000_000)
        whole("remeasure", self.remeasure, 0, 10)
        whole("layer time steps", self.layer_time_steps, 1, 1000)
        for name, value in (
            ("warm-up time", self.warmup_time_s),
            ("minimum time", self.min_time_s),
            ("idle power time", self.idle_power_s),
            ("remeasure pause", self.remeasure_pause_s),
        ):
            finite(name, value, 0, 86_400, strict=False)
        if self.max_time_s is not None:
            finite("maximum time", self.max_time_s, 0, 86_400, strict=True)
        if self.ci_target is not None:
            finite("CI target", self.ci_target, 0, 1, strict=False)
        if self.threads is not None:
            whole("threads", self.threads, 1, max_threads())
        if self.power not in ("auto", "off"):
            raise bad("power", self.power, "'auto' or 'off'")
        finite("power sampling rate", self.power_sample_hz, 0, 1000, strict=True)


def max_threads() -> int:
    """The most intra-op threads a case may ask for: 4x the CPUs torch could use (more only
    oversubscribes; 100,000 once exhausted memory creating the pool)."""
    return 4 * (os.cpu_count() or 1)


@dataclass
class CaseResult:
    """One case's row (schema CASES columns) and its side tables.

    ``poisoned``: why this process must run no further case (a sticky CUDA error left the
    context unusable), else None. ``wall_s``: the case's whole time in the runner.
    """

    case: Case
    row: dict[str, Any]
    layers: pd.DataFrame | None = None
    power: pd.DataFrame | None = None
    poisoned: str | None = None
    wall_s: float = field(default=0.0)

    @property
    def status(self) -> str:
        return str(self.row["status"])


class CaseInterrupted(KeyboardInterrupt):
    """Ctrl-C during a case: the sweep stops, but the case's row (``result``) is kept."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__("interrupted")
        self.result = result


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


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """``(status, message)`` of a failed case: ``oom`` for any allocation failure (CUDA, cuBLAS,
    cuDNN, the CPU allocator, MemoryError: harness.measure.cuda_state), ``error`` otherwise."""
    if cuda_state.classify_failure(exc) == "oom":
        line = cuda_state.failure_line(exc).removeprefix("OutOfMemoryError: ")
        return "oom", f"out of memory: {line}"[:2000]
    if isinstance(exc, SystemExit):
        return "error", f"SystemExit({exc.code!r}): the model called sys.exit()"
    if isinstance(exc, HarnessError):
        return "error", str(exc)
    return "error", f"{type(exc).__name__}: {_first_line(exc)}"[:2000]


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


def _available_memory(device: torch.device) -> tuple[int | None, str]:
    """Bytes a case could still allocate on ``device``, and where the figure comes from."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError) as exc:  # no answer: the check is skipped
            return None, f"unknown ({type(exc).__name__}: {_first_line(exc)})"
        return int(free), "free device memory (cudaMemGetInfo)"
    available: int | None = None
    source = "MemAvailable in /proc/meminfo"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        source = "unknown"
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as fh:
                used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            left = max(0, soft - used)
            if available is None or left < available:
                available, source = left, "the address-space limit (ulimit -v) less what is mapped"
    except (ImportError, OSError, ValueError):
        pass
    return available, source


def _memory_lower_bound(case: Case, prof: ModelProfile) -> tuple[int, str]:
    """A lower bound on the bytes a case needs, and its parts in words.

    Weights (float32 unless cast), the input, the largest single layer output (at least one
    must exist at once); in training also the gradients and SGD's momentum buffer (one copy of
    the trainable weights each). The real peak is higher; a case above this bound cannot fit.
    """
    weight_size = case.torch_dtype.itemsize if case.dtype_method == "cast" else 4
    weights = prof.params * weight_size
    input_bytes = math.prod(case.full_input_shape) * (
        case.torch_dtype.itemsize if case.dtype_method == "cast" else 4
    )
    largest = max((layer.activation_bytes for layer in prof.layers), default=0)
    parts = [f"weights {weights:,}", f"input {input_bytes:,}", f"largest layer output {largest:,}"]
    total = weights + input_bytes + largest
    if case.mode == "training":
        extra = 2 * prof.trainable_params * weight_size
        total += extra
        parts.append(f"gradients + momentum {extra:,}")
    return total, " + ".join(parts)


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
    return {**environment, **case.to_dict(), "case_id": case.case_id, "isolation": "none"}


def _static_profile(case: Case, row: dict[str, Any], result: CaseResult) -> ModelProfile | None:
    """The meta-device profile into the row and the layer table; None (with the reason in
    ``profile_source``) for a model whose forward reads tensor values."""
    try:
        validate_input(case.model, case.input_shape, case.batch_size, case.torch_dtype)
        prof = profile(case.model, case.input_shape, case.batch_size, case.torch_dtype)
    except DataDependentForwardError as exc:
        row["profile_source"] = f"not profiled: {exc}"
        return None
    row.update(prof.totals())
    row["profile_source"] = PROFILE_SOURCE
    if case.mode == "training":
        _check_trainable_batch_norm(prof.layers, case)
    layers = prof.to_frame().assign(
        model=case.model,
        input_shape=row["input_shape"],
        batch_size=case.batch_size,
        dtype=case.dtype,
        layer_kind="leaf",
    )  # its derived cumulative shares are not stored
    result.layers = layers[[c for c in LAYER_COLUMNS if c in layers.columns]]
    # MACs of an op no counter handles are not in `macs`: the row says which ones.
    row["unhandled_ops"] = ", ".join(
        f"{op} x{calls}" for op, calls in sorted(prof.unhandled_ops.items())
    )
    return prof


def _fits(case: Case, device: torch.device, prof: ModelProfile | None) -> str | None:
    """Why the case cannot fit in the memory left (None when it may)."""
    if prof is None:
        return None
    need, parts = _memory_lower_bound(case, prof)
    available, source = _available_memory(device)
    if available is None or need <= available:
        return None
    return (
        f"needs at least {need:,} bytes ({parts}) but {source} is {available:,} bytes: "
        "not run, so the machine is not pushed into swapping or the OOM killer"
    )


def run_case(
    case: Case,
    options: RunOptions | None = None,
    *,
    environment: dict[str, Any] | None = None,
    models: ModelCache | None = None,
) -> CaseResult:
    """Measure ``case`` and return its row; failures become the row's status, never a raise.

    ``environment`` is ``collect_environment(...)``'s dict (collected here when None; a sweep
    collects it once). ``models`` reuses a model built by an earlier case of the same key.
    Ctrl-C raises ``CaseInterrupted`` with the row so far.
    """
    options = options or RunOptions()
    started = time.perf_counter()
    device = resolve_device(case.device)
    reason = unavailable_reason(device)
    if environment is None:  # the host's facts still describe a case that cannot run here
        environment = collect_environment(torch.device("cpu") if reason else device)
    result = CaseResult(case, base_row(case, dict(environment)))
    row = result.row
    if not reason:
        row["device"] = str(device)  # "cuda" resolved to the worker's own "cuda:N"
    prepared: PreparedStep | None = None
    interrupted = False
    try:
        threads = case.threads if case.threads is not None else options.threads
        with fixed_threads(threads) as in_force:
            row["cpu_threads"] = in_force
            row["load_avg_1m"] = load_average()
            row["cpu_affinity"] = cpu_affinity()
            # Static part: validation and the profile need no device and no real memory.
            prof = _static_profile(case, row, result)
            if reason:
                row.update(status="skipped", error=reason)
                return result
            too_big = _fits(case, device, prof) if options.memory_check else None
            if too_big:
                row.update(status="skipped", error=too_big)
                return result
            with _cudnn_benchmark(device, options.cudnn_benchmark) as cudnn_state:
                row["cudnn_benchmark"] = cudnn_state
                # On Ampere and newer "float32" may run in TF32: say which precision ran.
                row["float32_matmul_precision"] = torch.get_float32_matmul_precision()
                if device.type == "cuda":
                    row["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
                    row.update(cuda_state.release_between_cases(device))
                prepared = prepare_step(case, device, models)
                row["param_bytes"] = sum(
                    p.numel() * p.element_size() for p in prepared.model.parameters()
                )
                if prof is None:  # exact without a trace
                    row["params"] = sum(p.numel() for p in prepared.model.parameters())
                    row["trainable_params"] = sum(
                        p.numel() for p in prepared.model.parameters() if p.requires_grad
                    )
                _measure(prepared, case, device, options, result)
            row["status"] = "ok"
            row["validity"], row["validity_reason"] = assess(row)
    except KeyboardInterrupt:
        interrupted = True
        row.update(status="error", error="interrupted (Ctrl-C) while the case ran")
    except BaseException as exc:  # SystemExit from a model included: the sweep goes on
        status, message = classify_failure(exc)
        row.update(status=status, error=message)
        if cuda_state.classify_failure(exc) == "sticky":  # the context is lost: no more cases
            result.poisoned = cuda_state.failure_line(exc)
        if status != "oom" and models is not None:
            models.clear()  # a model that failed mid-step may hold a broken state
    finally:
        prepared = None
        # A clean-up failure must not lose the row (nor crash the sweep): it becomes its error.
        problem = _release(device, case.compile) if not reason else None
        if problem is not None:
            note = f"cleaning up after the case failed: {problem}"
            result.poisoned = result.poisoned or problem
            if row.get("status") == "ok":
                row.update(status="error", error=note, validity=None, validity_reason=None)
            else:
                row["error"] = f"{row['error']}; {note}" if row.get("error") else note
        row["timestamp_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        result.wall_s = time.perf_counter() - started
    if interrupted:
        raise CaseInterrupted(result)
    return result


def _layer_times(
    prepared: PreparedStep,
    case: Case,
    device: torch.device,
    options: RunOptions,
    median_s: float,
    result: CaseResult,
) -> None:
    """Measured time per layer (harness.measure.layer_times) joined to the static layer table;
    a failure there leaves the case ``ok`` and says why in ``layer_time_source``."""
    if result.layers is None:
        result.row["layer_time_source"] = "not measured: the model has no static layer table"
        return
    from harness.measure.layer_times import measure_layer_times

    try:
        measured = measure_layer_times(
            prepared,
            case,
            device,
            steps=options.layer_time_steps,
            static=result.layers,
            step_median_s=median_s,
        )
    except Exception as exc:
        result.row["layer_time_source"] = f"not measured: {type(exc).__name__}: {_first_line(exc)}"[
            :500
        ]
        return
    result.layers = measured.layers
    result.row.update(measured.columns)


@dataclass
class _Attempt:
    """One timed measurement of a case: the timing, the noise signals, the power reading."""

    timing: TimingResult
    columns: dict[str, Any]
    reading: PowerReading | None
    validity: str | None
    reason: str | None

    @property
    def spread(self) -> float:
        """The median's interval half-width as a share of it (for picking the better try)."""
        c = self.columns
        return (
            (c["latency_s_median_ci_high"] - c["latency_s_median_ci_low"])
            / 2
            / max(c["latency_s_median"], 1e-12)
        )


def _worth_again(attempt: _Attempt) -> bool:
    """Whether measuring again may give a valid row: not when the time cap alone left too few
    rounds for an interval (the same cap would again)."""
    if attempt.validity != "noisy":
        return False
    capped = attempt.timing.stop_reason == "time_cap"
    only_short = (
        capped and (attempt.reason or "").startswith("only ") and ";" not in (attempt.reason or "")
    )
    return not only_short


def _measure(
    prepared: PreparedStep,
    case: Case,
    device: torch.device,
    options: RunOptions,
    result: CaseResult,
) -> None:
    row = result.row
    monitor = make_power_monitor(device, mode=options.power, sample_hz=options.power_sample_hz)
    idle_w = monitor.measure_idle(options.idle_power_s) if options.idle_power_s > 0 else None
    # The rounds are planned from the fastest warm-up call; 20% over the energy window and a
    # warm-up of at least 0.1 s keep a still-warming step from leaving the window short.
    min_time_s = max(options.min_time_s, 1.2 * monitor.min_window_s)
    warmup_time_s = max(options.warmup_time_s, 0.1 if monitor.min_window_s > 0 else 0.0)
    max_time_s = options.max_time_s
    if max_time_s is not None:
        max_time_s = max(max_time_s, min_time_s)

    def attempt() -> _Attempt:
        readings: list[PowerReading] = []
        probe = NoiseProbe()

        @contextlib.contextmanager
        def window() -> Iterator[None]:
            with probe:
                monitor.start()
                try:
                    yield
                finally:
                    readings.append(monitor.stop())

        timing = measure_latency(
            prepared.step,
            device=device,
            warmup_rounds=options.warmup_rounds,
            warmup_time_s=warmup_time_s,
            min_rounds=options.min_rounds,
            min_time_s=min_time_s,
            max_time_s=max_time_s,
            ci_target=options.ci_target,
            window=window,
        )
        columns = {**timing.to_columns(), **probe.columns()}
        columns["throughput_per_s"] = case.batch_size / columns["latency_s_median"]
        reading = readings[-1] if readings else None
        if reading is not None:
            columns.update(reading.to_columns(int(columns["rounds"]) * case.batch_size))
        validity, why = assess({**row, **columns, "status": "ok"})
        return _Attempt(timing, columns, reading, validity, why)

    dynamo = cuda_state.dynamo_stats() if case.compile else contextlib.nullcontext({})
    with prepared.contexts(), dynamo as compiled:
        tries = [attempt()]
        while _worth_again(tries[-1]) and len(tries) <= options.remeasure:
            time.sleep(options.remeasure_pause_s)  # let a passing burst of load go by
            tries.append(attempt())
        valid = [t for t in tries if t.validity == "valid"]
        kept = valid[-1] if valid else min(tries, key=lambda t: t.spread)
        memory = measure_peak_memory(prepared.step, device, baseline_tensors=prepared.tensors)
        if options.layer_times:  # after the timed rounds, never inside them
            _layer_times(prepared, case, device, options, kept.columns["latency_s_median"], result)
    row.update(kept.columns)
    row.update(compiled)  # unique graphs and graph breaks: a silently eager "compiled" case shows
    row["latency_s_first"] = tries[0].columns["latency_s_first"]  # the cold call is the first's
    row["remeasured"] = len(tries) - 1
    row.update(memory.to_columns())
    if kept.reading is not None:
        result.power = kept.reading.trace_frame()
    if idle_w is not None:
        row["power_w_idle"] = idle_w
