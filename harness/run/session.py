"""One case opened for its windows in the process that runs it: ``open`` (profile, pre-check,
build, first call, warm-up, the plan of its windows), ``window`` (one timed window, any number
of times, interleaved with other cases' windows by harness.run.schedule), ``finish`` (memory,
layer times, energy in its own window, clean-up). ``LocalHost`` keeps the open cases of a
process (the test process without isolation, or a child under harness.run.isolation).

Whatever goes wrong becomes the case's ``status`` (``oom``, ``error``, ``skipped``) and
``error``: an exception, a ``SystemExit`` from a model's forward, anything; only Ctrl-C
escapes. The rows are assembled from the windows by harness.run.schedule (torch-free).
"""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import torch

from harness.core.errors import HarnessError, first_line
from harness.core.spec import Case
from harness.core.windows import window_plan
from harness.measure import cuda_state
from harness.measure.devices import resolve_device, unavailable_reason
from harness.measure.env import collect_environment
from harness.measure.gpu_watch import GpuWatch
from harness.measure.memory import measure_peak_memory
from harness.measure.noise import NoiseProbe, cpu_affinity, load_average
from harness.measure.power.meters import NullPowerMonitor, PowerMonitor, make_power_monitor
from harness.measure.timing import fixed_threads
from harness.measure.windows import calibrate, time_window
from harness.profile import ModelProfile
from harness.run.options import RunOptions
from harness.run.outcome import CaseResult, Finished, Opened, WindowRecord, base_row
from harness.run.precheck import too_big_for
from harness.run.profiles import static_profile
from harness.run.step import ModelCache, PreparedStep, prepare_step

# A window of a step faster than this starts with one or two uncounted calls: another case's
# window ran in between and left the caches cold (a slower step amortises it within its own
# call). One or two, drawn per window (seeded by the case): a fixed count would put the first
# timed call of every window at the same phase of a step that alternates (20 ms / 2 ms: six
# one-round windows of 20 ms agreed, "valid" at 10x the other phase).
WINDOW_WARMUP_BELOW_S = 0.05
# The energy window lasts this much over the monitor's minimum (a still-warming step).
ENERGY_WINDOW_MARGIN = 1.2


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


def release(device: torch.device, compiled: bool) -> str | None:
    """Leave nothing of the case behind for the next one; returns why the CUDA clean-up failed
    (a CUDA error the case left in the context), else None.

    A compiled case resets torch.compile's caches: Dynamo keeps its compiled entries on the
    code object every ``torch.compile(module)`` wrapper shares, so without a reset the cases of
    a sweep pile up there until ``recompile_limit`` (8) is hit, and a frame that once ran under
    a dispatch mode (the CPU memory tracker) is not compiled again: every later "compiled"
    case would silently run eager. The reset also frees the compiled graphs' memory. (A
    compiled case is measured in a block of its own: harness.run.schedule.)
    """
    if compiled:
        torch.compiler.reset()
    gc.collect()  # cheap: what was there before the cases is frozen (gc.freeze)
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


class CaseSession:
    """One case in this process, from ``open`` to ``finish``; every failure is a status."""

    def __init__(
        self,
        case: Case,
        options: RunOptions,
        environment: dict[str, Any],
        models: ModelCache | None,
    ) -> None:
        self.case, self.options, self.models = case, options, models
        self.device = resolve_device(case.device)
        self.reason = unavailable_reason(self.device)
        self.row = base_row(case, dict(environment))
        if not self.reason:
            self.row["device"] = str(self.device)  # "cuda" resolved to the worker's "cuda:N"
        self.threads = case.threads if case.threads is not None else options.threads
        self.prepared: PreparedStep | None = None
        self.monitor: PowerMonitor | None = None
        self.estimate_s = 0.0
        self.warmup = 0
        self._phase = random.Random(case.case_id)  # the extra warm-up call of a window
        self.layers: Any = None
        self._dynamo = contextlib.ExitStack()
        self.compiled: dict[str, int | None] = {}
        self.watch: GpuWatch | None = None  # other processes and clocks on the GPU (gpu_watch)
        self.threads_changed: int | None = None  # the count a window's step left in force

    # -- the phases -----------------------------------------------------------------------

    def open(self) -> Opened:
        """Everything before the windows; ``Opened.result`` is set when the case ends here."""
        started = time.perf_counter()
        row = self.row
        default_dtype = torch.get_default_dtype()
        try:
            with fixed_threads(self.threads) as in_force:
                row["cpu_threads"] = in_force
                row["load_avg_1m"] = load_average()
                row["cpu_affinity"] = cpu_affinity()
                prof, self.layers = static_profile(self.case, row)
                if self.reason:
                    return self._ended(started, "skipped", self.reason, release_device=False)
                check = self.options.memory_check
                too_big = too_big_for(self.case, self.device, prof) if check else None
                if too_big:
                    return self._ended(started, "skipped", too_big)
                self._prepare(prof)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a model included: the sweep goes on
            failed = self._classify(exc)
        else:
            failed = None
        finally:  # a factory that changed torch's default dtype: not for the other cases
            if torch.get_default_dtype() != default_dtype:
                torch.set_default_dtype(default_dtype)
        if failed is not None:  # released after the except clause: its traceback held frames
            return self._failed(started, failed)
        o = self.options
        windows, rounds = window_plan(
            self.estimate_s, windows=o.windows, min_rounds=o.min_rounds,
            min_time_s=o.min_time_s, max_time_s=o.max_time_s,
        )  # fmt: skip
        self.warmup = 1 if self.estimate_s < WINDOW_WARMUP_BELOW_S else 0
        return Opened(
            row=dict(row), layers=self.layers, estimate_s=self.estimate_s, windows=windows,
            rounds=rounds, warmup=self.warmup, wall_s=time.perf_counter() - started,
        )  # fmt: skip

    def _prepare(self, prof: ModelProfile | None) -> None:
        row, case, device, o = self.row, self.case, self.device, self.options
        with _cudnn_benchmark(device, o.cudnn_benchmark) as cudnn_state:
            row["cudnn_benchmark"] = cudnn_state
            # On Ampere and newer "float32" may run in TF32: say which precision ran.
            row["float32_matmul_precision"] = torch.get_float32_matmul_precision()
            row.update(cuda_state.tf32_columns(device, case.dtype))
            if device.type == "cuda":
                row["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
                row.update(cuda_state.release_between_cases(device))
            if case.compile:
                self.compiled = self._dynamo.enter_context(cuda_state.dynamo_stats())
            self.prepared = prepared = prepare_step(case, device, self.models)
            params = list(prepared.model.parameters())
            row["param_bytes"] = sum(p.numel() * p.element_size() for p in params)
            if prof is None:  # exact without a trace
                row["params"] = sum(p.numel() for p in params)
                row["trainable_params"] = sum(p.numel() for p in params if p.requires_grad)
            self.monitor = make_power_monitor(device, mode=o.power, sample_hz=o.power_sample_hz)
            if o.idle_power_s > 0:
                row["power_w_idle"] = self.monitor.measure_idle(o.idle_power_s)
            with prepared.contexts():
                cal = calibrate(
                    prepared.step, device=device, warmup_rounds=o.warmup_rounds,
                    warmup_time_s=o.warmup_time_s,
                )  # fmt: skip
        self.estimate_s = cal.estimate_s
        self.watch = GpuWatch.for_device(device)
        self.watch.look()  # other processes on the GPU before the windows (and after: finish)
        row.update(
            latency_s_first=float(cal.first_call_s), warmup_rounds=cal.warmup_rounds,
            timing_method=cal.method, cudnn_benchmark=cal.cudnn_benchmark,
        )  # fmt: skip
        gc.collect()  # once per case: the windows run with the collector paused

    def window(self, index: int, rounds: int) -> WindowRecord | Finished:
        """One timed window; a ``Finished`` with the failure when the step failed (the case is
        then over and released)."""
        started = time.perf_counter()
        prepared = self.prepared
        if prepared is None:
            raise RuntimeError(f"{self.case.case_id}: window before open")
        probe = NoiseProbe()
        watch = self.watch

        @contextlib.contextmanager
        def around() -> Iterator[None]:
            with probe, watch.window() if watch is not None else contextlib.nullcontext():
                yield

        try:
            with (
                fixed_threads(self.threads) as in_force,
                _cudnn_benchmark(self.device, self.options.cudnn_benchmark),
                prepared.contexts(),
            ):
                start, samples = time_window(
                    prepared.step, rounds, device=self.device,
                    warmup=self.warmup + self._phase.randrange(2) if self.warmup else 0,
                    around=around,
                )  # fmt: skip
                if torch.get_num_threads() != in_force:  # the step set its own count
                    self.threads_changed = torch.get_num_threads()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            failed = self._classify(exc)
        else:
            failed = None
        if failed is not None:
            return self._release_failed(failed, started)
        noise = probe.record()
        if watch is not None and watch.active:
            noise["gpu"] = watch.window_columns()
        return WindowRecord(
            index=index, start_s=start, samples_s=[float(s) for s in samples],
            noise=noise, wall_s=time.perf_counter() - started,
        )  # fmt: skip

    def finish(self, value_s: float, samples_per_window: int) -> Finished:
        """After the windows: peak memory, layer times, energy in its own window (only when
        power is measured), then the clean-up. ``value_s``: the row's value (the layer times'
        coverage is against it)."""
        started = time.perf_counter()
        done = Finished(layers=self.layers)
        prepared = self.prepared
        try:
            assert prepared is not None
            with (
                fixed_threads(self.threads),
                _cudnn_benchmark(self.device, self.options.cudnn_benchmark),
                prepared.contexts(),
            ):
                if self.watch is not None:
                    self.watch.look()
                    done.columns.update(self.watch.process_columns())
                memory = measure_peak_memory(
                    prepared.step, self.device, baseline_tensors=prepared.tensors
                )
                done.columns.update(memory.to_columns())
                self._energy(done, samples_per_window)
                if self.options.layer_times:  # after the timed rounds, never inside them
                    self._layer_times(done, value_s)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            failed = self._classify(exc)
        else:
            failed = None
        if failed is not None:
            failed.columns.update(done.columns)
            return self._release_failed(failed, started)
        self._close(done)
        done.columns.update(self.compiled)
        if self.threads_changed is not None:  # the row records what ran, and is invalid
            asked = self.row.get("cpu_threads")
            done.columns["cpu_threads"] = self.threads_changed
            done.invalid = (
                f"the model set torch's intra-op threads to {self.threads_changed}; the case "
                f"asked for {asked}"
            )
        done.wall_s = time.perf_counter() - started
        return done

    # -- energy and layer times -------------------------------------------------------------

    def _energy(self, done: Finished, samples_per_window: int) -> None:
        """Energy in a window of its own, as long as the counter needs (its update period /
        2%: harness.measure.power.meters), and only when power is measured: the timing windows
        stay as short as precision needs (issue 22 item 5). Without a monitor the row says
        why power was not measured."""
        monitor, prepared = self.monitor, self.prepared
        if monitor is None or prepared is None:
            return
        batch = self.case.batch_size
        if isinstance(monitor, NullPowerMonitor) or monitor.min_window_s <= 0:
            monitor.start()
            done.columns.update(monitor.stop().to_columns(max(1, samples_per_window) * batch))
            return
        need_s = ENERGY_WINDOW_MARGIN * monitor.min_window_s
        rounds = max(1, int(need_s / max(self.estimate_s, 1e-9)) + 1)
        monitor.start()
        try:
            time_window(prepared.step, rounds, device=self.device)
        finally:
            reading = monitor.stop()
        done.columns.update(reading.to_columns(rounds * batch))
        done.columns["energy_rounds"] = rounds
        done.power = reading.trace_frame()
        if self.row.get("power_w_idle") is not None:
            done.columns["power_w_idle"] = self.row["power_w_idle"]

    def _layer_times(self, done: Finished, median_s: float) -> None:
        """Measured time per layer (harness.measure.layer_times) joined to the static layer
        table; a failure there leaves the case ``ok`` and says why in ``layer_time_source``."""
        if self.layers is None:
            done.columns["layer_time_source"] = "not measured: the model has no static layer table"
            return
        from harness.measure.layer_times import measure_layer_times

        assert self.prepared is not None
        try:
            measured = measure_layer_times(
                self.prepared, self.case, self.device, steps=self.options.layer_time_steps,
                static=self.layers, step_median_s=median_s,
            )  # fmt: skip
        except Exception as exc:
            done.columns["layer_time_source"] = f"not measured: {first_line(exc)}"[:500]
            return
        done.layers = measured.layers
        done.columns.update(measured.columns)

    # -- endings --------------------------------------------------------------------------

    def _close(self, done: Finished) -> None:
        """Release the case (Dynamo's statistics closed, the model's memory let go); a clean-up
        failure becomes the case's error and poisons the process."""
        self._dynamo.close()
        self.prepared = None
        if self.monitor is not None and hasattr(self.monitor, "close"):
            with contextlib.suppress(Exception):
                self.monitor.close()
        self.monitor = None
        problem = release(self.device, self.case.compile) if not self.reason else None
        if problem is not None:
            note = f"cleaning up after the case failed: {problem}"
            done.poisoned = done.poisoned or problem
            if done.status == "ok":
                done.status, done.error = "error", note
            else:
                done.error = f"{done.error}; {note}" if done.error else note

    def _classify(self, exc: BaseException) -> Finished:
        """The failure as an ending (called inside the except clause; nothing released yet:
        the exception's traceback still holds the failed step's frames)."""
        status, message = classify_failure(exc)
        done = Finished(status=status, error=message, layers=self.layers)
        if cuda_state.classify_failure(exc) == "sticky":  # the context is lost: no more cases
            done.poisoned = cuda_state.failure_line(exc)
        return done

    def _release_failed(self, done: Finished, started: float) -> Finished:
        """Release a failed case, after its exception is gone."""
        if done.status != "oom" and self.models is not None:
            self.models.clear()  # a model that failed mid-step may hold a broken state
        self._close(done)
        done.wall_s = time.perf_counter() - started
        return done

    def _failed(self, started: float, failed: Finished) -> Opened:
        done = self._release_failed(failed, started)
        self.row.update(status=done.status, error=done.error)
        return self._result(started, done.poisoned)

    def _ended(
        self, started: float, status: str, error: str, *, release_device: bool = True
    ) -> Opened:
        self.row.update(status=status, error=error)
        done = Finished(status=status, error=error)
        if release_device:
            self._close(done)
            if done.error != error:
                self.row["error"] = done.error
        return self._result(started, done.poisoned)

    def _result(self, started: float, poisoned: str | None) -> Opened:
        self.row["timestamp_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        result = CaseResult(self.case, self.row, layers=self.layers, poisoned=poisoned)
        result.wall_s = time.perf_counter() - started
        return Opened(row=self.row, layers=self.layers, result=result, wall_s=result.wall_s)


class LocalHost:
    """The open cases of this process, by case id (several are open at once while their
    windows interleave); the same calls a child process answers (harness.run.isolation)."""

    def __init__(self, environment: Any, models: ModelCache | None = None) -> None:
        self._environment = environment  # device name -> the rows' environment columns
        self.models = models  # None: every case builds its own model
        self.sessions: dict[str, CaseSession] = {}

    def open(self, case: Case, options: RunOptions) -> Opened:
        session = CaseSession(case, options, self._environment(case.device), self.models)
        opened = session.open()
        if opened.result is None:
            self.sessions[case.case_id] = session
        return opened

    def window(self, case: Case, index: int, rounds: int) -> WindowRecord | Finished:
        session = self.sessions[case.case_id]
        out = session.window(index, rounds)
        if isinstance(out, Finished):
            del self.sessions[case.case_id]
        return out

    def finish(self, case: Case, value_s: float, samples_per_window: int) -> Finished:
        session = self.sessions.pop(case.case_id)
        return session.finish(value_s, samples_per_window)

    def abandon(self, case: Case) -> None:
        """Drop an open case without finishing it (Ctrl-C, a block given up)."""
        session = self.sessions.pop(case.case_id, None)
        if session is not None:
            with contextlib.suppress(Exception):
                session._close(Finished())

    def handle(self, message: tuple) -> Any:
        """A message from the parent (harness.run.isolation): ``(call, *arguments)``."""
        call, *args = message
        return getattr(self, call)(*args)


def default_environment(device_name: str) -> dict[str, Any]:
    """The environment columns of a device (the host's when the device does not work here)."""
    device = resolve_device(device_name)
    return collect_environment(torch.device("cpu") if unavailable_reason(device) else device)
