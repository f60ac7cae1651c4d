"""The self-test: the harness's own measurement checked on one device, each check decided by
numbers against a rule it states.

Each check measures (``measure_*``, which needs the device) and then judges (``judge_*``, a pure
function of the numbers, so the rules are tested without a GPU). Statuses: PASS, WARN (the
numbers are off by more than the harness should be, but not by enough to be wrong), FAIL (the
measurement is wrong), UNAVAILABLE (this machine cannot run the check; the reason says why).
An unexpected error inside a check is a FAIL with the error: the harness could not measure.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from harness.core.errors import first_line
from harness.core.spec import Case
from harness.doctor.report import (
    FAIL,
    PASS,
    UNAVAILABLE,
    WARN,
    Check,
    banded,
)
from harness.measure.cuda_state import classify_failure, release_between_cases

# The cases the self-test runs (zoo models, so that the harness's own step is what is checked).
TIMING_CASE = {"cuda": ("resnet18", (3, 224, 224), 32), "cpu": ("resnet18", (3, 224, 224), 1)}
MEMORY_CASE = {"cuda": ("resnet18", (3, 224, 224), 32), "cpu": ("resnet18", (3, 224, 224), 8)}
# cuBLAS keeps up to 32 MiB of workspace per handle and stream in the allocator; cuDNN's
# per-call workspaces also go through it. The CPU tracker sees tensors only.
WORKSPACE_SLACK_BYTES = {"cuda": 64 << 20, "cpu": 0}


# -- timing ------------------------------------------------------------------------------------

TIMING_PASS = {"cuda": (0.98, 1.05), "cpu": (0.95, 1.05)}
TIMING_WARN = {"cuda": (0.95, 1.25), "cpu": (0.85, 1.15)}


def timing_rule(kind: str) -> str:
    ref = "CUDA-event time" if kind == "cuda" else "torch.utils.benchmark.Timer median"
    (p0, p1), (w0, w1) = TIMING_PASS[kind], TIMING_WARN[kind]
    return (
        f"ratio = harness median / {ref} of the same step, each the median of 3 alternating "
        f"repeats: PASS in [{p0}, {p1}], WARN in [{w0}, {w1}], else FAIL; outside the PASS band "
        "but within the repeats' own spread (max/min - 1 of either side): WARN, undecided"
    )


def judge_timing(
    kind: str, harness_s: float, reference_s: float, spread: float = 0.0, **numbers: Any
) -> Check:
    ratio = harness_s / reference_s
    status = banded(ratio, TIMING_PASS[kind], TIMING_WARN[kind])
    numbers = {"repeat_spread": spread, **numbers}
    if status != PASS and abs(ratio - 1) <= spread:
        status = WARN
        reason = (
            f"undecided: the ratio is {abs(ratio - 1):.1%} off 1, but repeating the same "
            f"measurement varied by {spread:.1%} (a busy machine)"
        )
    elif kind == "cuda" and ratio < TIMING_WARN[kind][0]:
        reason = "the harness measured less than the GPU ran: its rounds are not synchronised"
    elif kind == "cuda" and ratio > TIMING_WARN[kind][1]:
        reason = "the harness adds more than 25% to the GPU time (host overhead or contention)"
    elif status == PASS:
        reason = "the harness's median agrees with the reference"
    else:
        reason = f"the harness's median is {abs(ratio - 1):.1%} off the reference"
    return Check(
        "timing",
        status,
        reason,
        timing_rule(kind),
        {
            "harness_median_s": harness_s,
            "reference_median_s": reference_s,
            "ratio": ratio,
            **numbers,
        },
    )


def cuda_event_times(step: Callable[[], object], device: torch.device, rounds: int) -> list[float]:
    """Seconds of each of ``rounds`` steps between two CUDA events on the current stream."""
    stream = torch.cuda.current_stream(device)
    out = []
    for _ in range(rounds):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        step()
        end.record(stream)
        end.synchronize()
        out.append(start.elapsed_time(end) / 1e3)  # ms -> s
    return out


def _prepared(model: str, shape: tuple[int, ...], batch: int, device: torch.device, **kw: Any):
    from harness.run.step import prepare_step

    return prepare_step(Case(model, shape, batch, device=str(device), **kw), device)


def check_timing(device: torch.device, repeats: int = 3) -> Check:
    """``repeats`` alternations of the harness's measurement and the reference (the medians of
    each side's medians are compared), so a drifting load falls on both."""
    from harness.measure.timing import fixed_threads, measure_latency

    kind = device.type
    model, shape, batch = TIMING_CASE[kind]
    prepared = _prepared(model, shape, batch, device)
    ours, refs, rounds = [], [], 0
    # One CPU thread: the check is of the timing method; intra-op threads on a busy machine add
    # noise that has nothing to do with it.
    threads = 1 if kind == "cpu" else None
    with fixed_threads(threads) as n_threads, prepared.contexts():
        for _ in range(repeats):
            timing = measure_latency(
                prepared.step, device=device, warmup_rounds=3, min_rounds=20, min_time_s=0.5
            )
            ours.append(float(timing.summary()["latency_s_median"]))
            rounds += len(timing.samples_s)
            if kind == "cuda":
                times = cuda_event_times(prepared.step, device, len(timing.samples_s))
                refs.append(statistics.median(times))
            else:
                from torch.utils.benchmark import Timer

                timer = Timer(
                    "step()", globals={"step": prepared.step}, num_threads=torch.get_num_threads()
                )
                refs.append(float(timer.blocked_autorange(min_run_time=0.5).median))
    case = f"{model} {'x'.join(map(str, shape))} batch {batch} float32 inference"
    spread = max(max(ours) / min(ours), max(refs) / min(refs)) - 1
    return judge_timing(
        kind,
        statistics.median(ours),
        statistics.median(refs),
        spread,
        case=case,
        harness_rounds=rounds,
        threads=n_threads,
    )


# -- energy ------------------------------------------------------------------------------------

ENERGY_PASS, ENERGY_WARN = (0.95, 1.05), (0.85, 1.15)
ENERGY_RULE = (
    "ratio = energy counter / integral of the power trace over the same window: "
    f"PASS in {list(ENERGY_PASS)}, WARN in {list(ENERGY_WARN)}, else FAIL"
)


def judge_energy(
    counter_j: float, trace_j: float, *, energy_scope: str | None, trace_kind: str, **numbers: Any
) -> Check:
    ratio = counter_j / trace_j
    status = banded(ratio, ENERGY_PASS, ENERGY_WARN)
    notes = []
    if energy_scope == "module":
        notes.append("the counter covers the whole module (GPU + CPU + memory), the trace the GPU")
        status = WARN if status == PASS else status
    if trace_kind == "power_usage":
        notes.append("the trace is nvmlDeviceGetPowerUsage, a 1 s average that lags the work")
    if status == PASS:
        reason = "the energy counter and the power trace agree"
    else:
        reason = f"the energy counter and the power trace differ by {abs(ratio - 1):.1%}"
    if notes:
        reason += " (" + "; ".join(notes) + ")"
    return Check(
        "energy",
        status,
        reason,
        ENERGY_RULE,
        {
            "counter_j": counter_j,
            "trace_j": trace_j,
            "ratio": ratio,
            "energy_scope": energy_scope,
            **numbers,
        },
    )


def check_energy(device: torch.device) -> Check:
    from harness.measure.power.meters import make_power_monitor
    from harness.measure.power.monitor import NullPowerMonitor
    from harness.measure.power.reading import hold_integral

    monitor = make_power_monitor(device)
    try:
        if isinstance(monitor, NullPowerMonitor):
            return Check("energy", UNAVAILABLE, monitor.reason, ENERGY_RULE)
        if monitor.source.startswith("rapl:"):
            return Check(
                "energy",
                UNAVAILABLE,
                "RAPL's power trace is computed from the same package counters as its energy: "
                "there is no independent reading to check the counter against",
                ENERGY_RULE,
                {"source": monitor.source},
            )
        if "trace_integral" in monitor.source:
            return Check(
                "energy",
                UNAVAILABLE,
                "this GPU has no energy counter (before Volta): energy is the trace's integral",
                ENERGY_RULE,
                {"source": monitor.source},
            )
        model, shape, batch = TIMING_CASE["cuda"]
        prepared = _prepared(model, shape, batch, device)
        window_s = 1.2 * monitor.min_window_s
        with prepared.contexts():
            for _ in range(3):
                prepared.step()
            torch.cuda.synchronize(device)
            monitor.start()
            end = time.perf_counter() + window_s
            steps = 0
            while time.perf_counter() < end:
                prepared.step()
                torch.cuda.synchronize(device)
                steps += 1
            reading = monitor.stop()
        if reading.energy_j is None or not reading.trace or reading.window_s is None:
            return Check(
                "energy",
                FAIL,
                f"no energy or no trace over a {window_s:.1f} s window: {reading.reason}",
                ENERGY_RULE,
                {"source": reading.source},
            )
        times = [t for t, _ in reading.trace]
        watts = [p for _, p in reading.trace]
        trace_j = hold_integral(times, watts, reading.window_s)  # type: ignore[arg-type]
        return judge_energy(
            reading.energy_j,
            trace_j,
            energy_scope=reading.energy_scope,
            trace_kind="instant_field" if "instant_field" in reading.source else "power_usage",
            window_s=reading.window_s,
            trace_readings=len(reading.trace),
            steps=steps,
            power_w_mean=reading.power_w_mean,
            source=reading.source,
        )
    finally:
        close = getattr(monitor, "close", None)
        if close is not None:
            close()


# -- memory ------------------------------------------------------------------------------------


def memory_rule(kind: str) -> str:
    slack = WORKSPACE_SLACK_BYTES[kind] >> 20
    extra = f" + {slack} MiB of library workspaces" if slack else ""
    return (
        "measured = peak - baseline of one inference step; PASS when the largest single layer "
        f"output <= measured <= the sum of every layer's output{extra}; below: FAIL (the peak "
        "missed memory that must have been allocated); above: WARN"
    )


def judge_memory(
    kind: str, measured: int, largest_output: int, all_outputs: int, **n: Any
) -> Check:
    upper = all_outputs + WORKSPACE_SLACK_BYTES[kind]
    numbers = {
        "measured_bytes": measured,
        "largest_layer_output_bytes": largest_output,
        "all_layer_outputs_bytes": all_outputs,
        "ratio_to_all_outputs": measured / all_outputs if all_outputs else None,
        **n,
    }
    if measured < largest_output:
        status, reason = FAIL, "the measured peak is below the largest layer output"
    elif measured > upper:
        status, reason = WARN, "the measured peak exceeds every layer output held at once"
    else:
        status, reason = PASS, "the measured peak lies between the analytic bounds"
    return Check("memory", status, reason, memory_rule(kind), numbers)


def check_memory(device: torch.device) -> Check:
    from harness.measure.memory import measure_peak_memory
    from harness.profile import profile

    kind = device.type
    model, shape, batch = MEMORY_CASE[kind]
    prof = profile(model, shape, batch)
    largest = max(layer.activation_bytes for layer in prof.layers)
    prepared = _prepared(model, shape, batch, device)
    if kind == "cuda":
        release_between_cases(device)
    with prepared.contexts():
        prepared.step()  # warm: cuDNN's algorithm choice is not part of the step's peak
        result = measure_peak_memory(prepared.step, device, baseline_tensors=prepared.tensors)
    assert result.peak_memory_bytes is not None and result.memory_baseline_bytes is not None
    return judge_memory(
        kind,
        result.peak_memory_bytes - result.memory_baseline_bytes,
        largest,
        int(prof.activation_bytes),
        source=result.memory_source,
        case=f"{model} {'x'.join(map(str, shape))} batch {batch} float32 inference",
    )


# -- failure recovery --------------------------------------------------------------------------

RECOVERY_RULE = (
    "an allocation larger than the device is tried: PASS when it fails, is classified "
    "out of memory, the allocator afterwards holds no more than before (+1 MiB) and a small "
    "matmul still runs and matches the CPU; else FAIL"
)


def judge_recovery(
    kind: str | None, before: int | None, after: int | None, still_works: bool, **numbers: Any
) -> Check:
    numbers = {
        "classified_as": kind,
        "allocated_before_bytes": before,
        "allocated_after_bytes": after,
        **numbers,
    }
    problems = []
    if kind != "oom":
        problems.append(f"the failure was classified {kind!r}, not 'oom'")
    if before is not None and after is not None and after > before + (1 << 20):
        problems.append(f"{after - before} bytes more allocated than before the failure")
    if not still_works:
        problems.append("the next computation failed or gave a wrong result")
    if problems:
        return Check("failure_recovery", FAIL, "; ".join(problems), RECOVERY_RULE, numbers)
    return Check(
        "failure_recovery",
        PASS,
        "out of memory recognised; the process is usable",
        RECOVERY_RULE,
        numbers,
    )


def _small_matmul_ok(device: torch.device) -> bool:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=g)
    expected = a @ a.T
    got = (a.to(device) @ a.to(device).T).cpu()
    return bool(torch.allclose(got, expected, rtol=1e-2, atol=1e-2))


def check_failure_recovery(device: torch.device) -> Check:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        release_between_cases(device)
        before = torch.cuda.memory_allocated(device)
        too_much = int(torch.cuda.get_device_properties(device).total_memory * 2)
    else:
        before = None
        too_much = 1 << 45  # 32 TiB
    kind = None
    try:
        blob = torch.empty(too_much, dtype=torch.uint8, device=device)
        del blob
        return Check(
            "failure_recovery",
            UNAVAILABLE,
            f"allocating {too_much} bytes succeeded: the failure could not be provoked",
            RECOVERY_RULE,
        )
    except Exception as exc:  # the failure this check provokes
        kind = classify_failure(exc)
        error = first_line(exc, limit=200)
    released = release_between_cases(device)
    after = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    try:
        works = _small_matmul_ok(device)
    except Exception:
        works = False
    return judge_recovery(kind, before, after, works, error=error, **released)


# -- the whole self-test -----------------------------------------------------------------------
