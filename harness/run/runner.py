"""Run one Case end to end (validate, profile, build, warm up, measure) and return its row.

The runner knows nothing about pytest and nothing about sweeps (harness.run.sweep holds the policy
across cases: out-of-memory memo, budget, isolation, writing). Whatever goes wrong inside a case
becomes the row's ``status`` (``oom``, ``error``, ``skipped``) and ``error``: an exception, a
``SystemExit`` from a model's forward, anything. Only Ctrl-C escapes, as ``CaseInterrupted``
carrying the row, so the caller can write it and stop.

A measured row carries its validity (harness.core.signals): when the noise signals of the
timed rounds cross a threshold, the rounds are measured again once after a short pause
(``RunOptions.remeasure``) and the row keeps the better measurement, saying how many times it
was measured again (``remeasured``).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from harness.core.errors import DataDependentForwardError, HarnessError, first_line
from harness.core.schema import column_names
from harness.core.signals import Verdict, assess, verdict
from harness.core.spec import Case
from harness.core.stats import half_width_rel
from harness.measure import cuda_state
from harness.measure.devices import resolve_device, unavailable_reason
from harness.measure.env import collect_environment
from harness.measure.gpu_watch import GpuWatch
from harness.measure.memory import measure_peak_memory
from harness.measure.noise import NoiseProbe, cpu_affinity, load_average
from harness.measure.power.meters import PowerReading, make_power_monitor
from harness.measure.timing import TimingResult, fixed_threads, measure_latency
from harness.profile import ModelProfile, profile
from harness.run.options import RunOptions, max_threads  # noqa: F401 (re-exported)
from harness.run.outcome import CaseInterrupted, CaseResult, base_row
from harness.run.precheck import check_trainable_batch_norm, too_big_for
from harness.run.step import ModelCache, PreparedStep, prepare_step

LAYER_COLUMNS = column_names("layers")
PROFILE_SOURCE = "meta device (harness.profile)"


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
    return "error", first_line(exc, limit=2000)


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
            return first_line(exc)
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


def _static_profile(case: Case, row: dict[str, Any], result: CaseResult) -> ModelProfile | None:
    """The meta-device profile into the row and the layer table; None (with the reason in
    ``profile_source``) for a model whose forward reads tensor values."""
    try:
        # one meta trace: profile() validates the input as it goes
        prof = profile(case.model, case.input_shape, case.batch_size, case.torch_dtype)
    except DataDependentForwardError as exc:
        row["profile_source"] = f"not profiled: {exc}"
        return None
    row.update(prof.totals())
    row["profile_source"] = PROFILE_SOURCE
    if case.mode == "training":
        check_trainable_batch_norm(prof.layers, case)
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
    default_dtype = torch.get_default_dtype()
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
            too_big = too_big_for(case, device, prof) if options.memory_check else None
            if too_big:
                row.update(status="skipped", error=too_big)
                return result
            with _cudnn_benchmark(device, options.cudnn_benchmark) as cudnn_state:
                row["cudnn_benchmark"] = cudnn_state
                # On Ampere and newer "float32" may run in TF32: say which precision ran.
                row["float32_matmul_precision"] = torch.get_float32_matmul_precision()
                row.update(cuda_state.tf32_columns(device, case.dtype))
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
            _threads_that_ran(row, in_force)
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
        if torch.get_default_dtype() != default_dtype:  # a factory changed it: not for the next
            torch.set_default_dtype(default_dtype)
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


def _threads_that_ran(row: dict[str, Any], asked: int) -> None:
    """The intra-op threads the timed step ran with: a model that calls
    ``torch.set_num_threads`` (in its factory or forward) ran with its own count, so the row
    records that count and is invalid (it did not measure the case it names)."""
    ran = torch.get_num_threads()
    if ran != asked:
        row["cpu_threads"] = ran
        row["validity"] = "invalid"
        why = f"the model set torch's intra-op threads to {ran}; the case asked for {asked}"
        row["validity_reason"] = (
            f"{why}; {row['validity_reason']}" if row.get("validity_reason") else why
        )


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
        result.row["layer_time_source"] = f"not measured: {first_line(exc)}"[:500]
        return
    result.layers = measured.layers
    result.row.update(measured.columns)


@dataclass
class _Attempt:
    """One timed measurement of a case: the timing, the noise signals, the power reading."""

    timing: TimingResult
    columns: dict[str, Any]
    reading: PowerReading | None
    verdict: Verdict

    @property
    def spread(self) -> float:
        """The median's interval half-width as a share of it (for picking the better try)."""
        c = self.columns
        half = half_width_rel(
            c["latency_s_median_ci_low"], c["latency_s_median_ci_high"], c["latency_s_median"]
        )
        return float("inf") if half is None else half


def _worth_again(attempt: _Attempt) -> bool:
    """Whether measuring again may give a valid row: not when the time cap alone left too few
    rounds for an interval (the same cap would again)."""
    if attempt.verdict.validity != "noisy":
        return False
    capped = attempt.timing.stop_reason == "time_cap"
    return not (capped and attempt.verdict.kinds() == {"too_few_rounds"})


def _measure(
    prepared: PreparedStep,
    case: Case,
    device: torch.device,
    options: RunOptions,
    result: CaseResult,
) -> None:
    row = result.row
    watch = GpuWatch.for_device(device)  # other processes, clock-event time (gpu_watch)
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
        watch.look()

        @contextlib.contextmanager
        def window() -> Iterator[None]:
            with probe, watch.window():
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
        watch.look()  # other processes on the GPU after the rounds (and before them: above)
        columns = {**timing.to_columns(), **probe.columns(), **watch.window_columns()}
        columns.update(watch.process_columns())
        columns["throughput_per_s"] = case.batch_size / columns["latency_s_median"]
        reading = readings[-1] if readings else None
        if reading is not None:
            columns.update(reading.to_columns(int(columns["rounds"]) * case.batch_size))
        return _Attempt(timing, columns, reading, verdict({**row, **columns, "status": "ok"}))

    dynamo = cuda_state.dynamo_stats() if case.compile else contextlib.nullcontext({})
    with prepared.contexts(), dynamo as compiled:
        tries = [attempt()]
        while _worth_again(tries[-1]) and len(tries) <= options.remeasure:
            time.sleep(options.remeasure_pause_s)  # let a passing burst of load go by
            tries.append(attempt())
        valid = [t for t in tries if t.verdict.validity == "valid"]
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
