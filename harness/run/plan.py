"""A plan before a long run: how many cases, and how long they take by the settings and the fixed
cost of a case outside its windows (``--cnn-plan`` prints it and exits; a large sweep prints it
before it starts, on a CPU or a GPU alike).

A case costs: its fixed part (profile, build, first call, warm-up, memory step, clean-up:
``FIXED_S``), its timed windows (at least ``min_time_s``, at most ``max_time_s``; on average
``min_time_s`` and ``EXTRA_SHARE`` more for extra windows), and, when power is measured, its
energy window (``ENERGY_WINDOW_MARGIN`` x the counter's update period / 2%). The fixed part
per device type is a stated assumption, not a measurement (what only a GPU can confirm is
listed in docs/GPU.md); benchmarks/bench_plan.py prints the plan of the full GPU grid from it.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.run.options import RunOptions

# Seconds a case costs outside its timed windows (profile on meta, build or reuse, first call,
# warm-up, the memory step, clean-up): assumed, not measured. On this project's 2-core VM
# benchmarks/bench_scaleout.py measures ResNet-50 and VGG-16 at 1.5 s and 1.9 s a case (host
# mostly in its slow state), and benchmarks/bench_trust.py's default runs spend 1.7-1.9 s a
# case outside the timed rounds (pytest, speed probes and isolation included): the CPU figure
# is low for large models. A GPU case: the first call with cuDNN's autotuning of that shape,
# ~0.5 s over the grid's batch sizes; the build reused across one dtype and format's batches.
FIXED_S = {"cpu": 0.6, "cuda": 0.8}
# Extra windows, on average a share of the planned time (cases short of valid or of target).
EXTRA_SHARE = 0.3
ENERGY_WINDOW_MARGIN = 1.2  # harness.run.session's energy window over the counter's minimum
ENERGY_QUANTISATION_TARGET = 0.02  # harness.measure.power.meters': 2% at most
# NVML's energy counter moves every 20 to 100 ms (measured once per GPU at the start of a run).
COUNTER_STEP_RANGE_S = (0.02, 0.1)


@dataclass(frozen=True)
class Plan:
    """The estimate of a sweep: ``cases``, seconds per case (typical, low, high) and the whole
    run's over ``workers`` (each worker its own GPU or cores)."""

    cases: int
    device_type: str
    workers: int
    fixed_s: float
    timed_s: tuple[float, float, float]  # low, typical, high
    energy_s: float
    energy_note: str

    def per_case_s(self, which: int = 1) -> float:
        return self.fixed_s + self.timed_s[which] + self.energy_s

    def total_s(self, which: int = 1) -> float:
        return self.cases * self.per_case_s(which) / max(1, self.workers)


def energy_window_s(counter_step_s: float | None) -> float:
    """The energy window a case adds for a counter moving every ``counter_step_s``."""
    if counter_step_s is None:
        return 0.0
    return ENERGY_WINDOW_MARGIN * counter_step_s / ENERGY_QUANTISATION_TARGET


def make_plan(
    cases: int,
    options: RunOptions,
    device_type: str,
    *,
    workers: int = 1,
    counter_step_s: float | None = None,
    fixed_s: float | None = None,
) -> Plan:
    """The plan of ``cases`` measured with ``options`` on a ``device_type`` (cpu, cuda) device.

    ``counter_step_s``: the energy counter's update period when power is measured (None: no
    energy window; a GPU with power on and no measured period: the slow end, 0.1 s, is said
    to be assumed)."""
    kind = "cuda" if device_type.startswith("cuda") else "cpu"
    fixed = FIXED_S[kind] if fixed_s is None else fixed_s
    low = options.min_time_s
    typical = options.min_time_s * (1 + EXTRA_SHARE if options.remeasure else 1.0)
    high = options.max_time_s if options.max_time_s is not None else typical * 10
    note = "no energy window (power off or not measured on this device)"
    energy = 0.0
    if options.power != "off" and kind == "cuda":
        step = counter_step_s if counter_step_s is not None else COUNTER_STEP_RANGE_S[1]
        energy = energy_window_s(step)
        how = "measured" if counter_step_s is not None else "not yet measured: the slow end"
        note = f"energy window {energy:.1f} s a case (NVML counter step {step * 1e3:.0f} ms, {how})"
    return Plan(cases, kind, max(1, workers), fixed, (low, min(typical, high), high), energy, note)


def describe(plan: Plan) -> str:
    """The plan in one paragraph, for the terminal."""
    from harness.core.units import seconds

    def span(s: float) -> str:
        if s < 90:
            return f"{s:.0f} s"
        return f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"

    over = f" over {plan.workers} workers" if plan.workers > 1 else ""
    return (
        f"cnnbench plan: {plan.cases:,} cases on {plan.device_type}{over}: about "
        f"{span(plan.total_s(1))} ({span(plan.total_s(0))} to {span(plan.total_s(2))} by the "
        f"timing settings); a case: {seconds(plan.fixed_s)} fixed + "
        f"{seconds(plan.timed_s[1])} timed ({seconds(plan.timed_s[0])}-"
        f"{seconds(plan.timed_s[2])}) + {plan.energy_note}"
    )
