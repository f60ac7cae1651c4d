"""What a case is expected to cost in wall time, so that shards can be balanced before anything
runs. An estimate by a stated formula, not a measurement: it only has to rank and add up.

    case_s = CASE_OVERHEAD_S                    profile on meta, memory step, writing the row
           + warm-up: max(warmup_rounds * step_s, warmup_time_s)
           + rounds:  min(max(rounds * step_s, min_time_s), max_time_s)
           + COMPILE_S for a torch.compile case
    step_s = passes * (leaf_layers * LAUNCH_S[device] + 2 * macs * batch / RATE[device, dtype])
    passes = 1 for inference, 3 for training (forward, backward for inputs and for weights)
    rounds = min_rounds, at least TARGET_ROUNDS when the run aims at a confidence interval
    build_s = BUILD_S for every new model-cache key (model, input, dtype, layout, mode, compile)

``macs`` and ``leaf_layers`` come from the model's static profile on the meta device at batch
1 (harness.profile; about 0.1 s a model, once per model and input in a process); a model that
cannot be profiled there counts as ``DEFAULT_WORK``. The rates are round figures of a current
data-centre GPU and a server CPU core: only their ratios matter for balancing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from harness.core.errors import HarnessError
from harness.core.spec import Case

CASE_OVERHEAD_S = 0.5
BUILD_S = 1.0
COMPILE_S = 30.0
TARGET_ROUNDS = 50  # about what a 1% interval of the median needs on a steady device
LAUNCH_S = {"cuda": 8e-6, "cpu": 2e-6}  # eager dispatch per leaf layer and pass
# FLOP/s per device type and dtype (CPU: per thread, times the case's threads or 1)
RATE = {
    ("cuda", "float32"): 20e12,
    ("cuda", "float16"): 80e12,
    ("cuda", "bfloat16"): 80e12,
    ("cuda", "float64"): 0.5e12,
    ("cpu", "float32"): 30e9,
    ("cpu", "float16"): 5e9,
    ("cpu", "bfloat16"): 15e9,
    ("cpu", "float64"): 15e9,
}


@dataclass(frozen=True)
class Work:
    """A model's static size at one input: multiply-accumulates per sample and leaf layers."""

    macs_per_sample: float
    leaf_layers: int


DEFAULT_WORK = Work(macs_per_sample=2e9, leaf_layers=100)


@dataclass(frozen=True)
class Timing:
    """The timing settings a case's rounds follow (harness.run.runner.RunOptions' fields)."""

    warmup_rounds: int = 10
    warmup_time_s: float = 0.2
    min_rounds: int = 20
    min_time_s: float = 1.0
    max_time_s: float | None = 30.0
    ci_target: float | None = 0.01

    @classmethod
    def of(cls, options: Any) -> Timing:
        """From a RunOptions (or anything with the same fields)."""
        return cls(**{f: getattr(options, f) for f in cls.__dataclass_fields__})


@functools.cache
def model_work(model: str, input_shape: tuple[int, ...]) -> Work:
    """The model's MACs per sample and leaf layers at ``input_shape`` (meta device, batch 1)."""
    from harness.profile import profile

    try:
        p = profile(model, input_shape, batch_size=1)
    except (HarnessError, RuntimeError, TypeError, ValueError):
        return DEFAULT_WORK  # not profilable on meta (data-dependent forward, missing package)
    return Work(float(p.macs), max(1, len(p.layers)))


def device_type(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


class CostModel:
    """``cost(case)``: the case's expected seconds under ``timing``; ``build_s``: what a new
    model-cache key adds. ``work`` gives a model's Work (default: its meta profile)."""

    build_s = BUILD_S

    def __init__(self, timing: Timing | None = None, work: Any = None) -> None:
        self.timing = timing or Timing()
        self.work = work or model_work

    def step_s(self, case: Case) -> float:
        kind = device_type(case.device)
        work = self.work(case.model, case.input_shape)
        passes = 3 if case.mode == "training" else 1
        rate = RATE.get((kind, case.dtype), RATE[(kind, "float32")])
        if kind == "cpu":
            rate *= case.threads or 1
        flops = passes * 2 * work.macs_per_sample * case.batch_size
        return work.leaf_layers * LAUNCH_S[kind] * passes + flops / rate

    def __call__(self, case: Case) -> float:
        t = self.timing
        step = self.step_s(case)
        rounds = max(t.min_rounds, TARGET_ROUNDS if t.ci_target else 0)
        timed = max(rounds * step, t.min_time_s)
        if t.max_time_s is not None:
            timed = min(timed, max(t.max_time_s, step))
        warmup = max(t.warmup_rounds * step, t.warmup_time_s)
        return CASE_OVERHEAD_S + warmup + timed + (COMPILE_S if case.compile else 0.0)
