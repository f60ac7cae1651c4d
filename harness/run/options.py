"""How a case is measured (``RunOptions``), checked once, and the presets per scale.

One place for the defaults: ``PRESETS`` holds the quick grid's (a CPU's small default), the full
sweep's (a GPU's) and the smoke run's (``--benchmark-disable``: each case once); the pytest
plugin builds its options from a preset plus what the user set, its ``--help`` prints the
presets' values, ``cnnbench profile --measure`` uses the quick preset. The bounds of every
number are harness.core.settings' ``BOUNDS``, checked in ``RunOptions.__post_init__``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from harness.core.settings import SettingError, check

POWER_MODES = ("auto", "off")


@dataclass(frozen=True)
class RunOptions:
    """How a case is measured. Times in seconds.

    A case is timed in ``windows`` windows of equal length, interleaved with other cases'
    (harness.run.schedule), together at least ``min_rounds`` rounds and ``min_time_s`` seconds
    and at most ``max_time_s`` (None: no cap). ``ci_target``: extra windows are measured, in
    up to ``remeasure`` passes of half as many windows, while the row's interval is wider than
    this share of its value or the row is short of valid for a reason more windows can fix
    (0 or None: no target). ``memory_check``: refuse (``skipped``) a case whose analytic lower
    bound on memory exceeds what is free. ``threads``: torch's intra-op threads for cases that
    do not set their own (None: torch's).
    """

    warmup_rounds: int = 3
    warmup_time_s: float = 0.2
    windows: int = 5
    min_rounds: int = 10
    min_time_s: float = 0.5
    max_time_s: float | None = 30.0
    ci_target: float | None = 0.01
    remeasure: int = 1
    threads: int | None = None
    power: str = "auto"
    power_sample_hz: float = 100.0
    idle_power_s: float = 0.0
    cudnn_benchmark: bool = True
    layer_times: bool = False
    layer_time_steps: int = 5
    memory_check: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in _CHECKED:
                check(f.name, getattr(self, f.name))
        if self.threads is not None and (
            isinstance(self.threads, bool)
            or not isinstance(self.threads, int)
            or not 1 <= self.threads <= max_threads()
        ):
            raise SettingError(
                "threads",
                f"threads must be a whole number from 1 to {max_threads():,}, got {self.threads!r}",
            )
        if self.power not in POWER_MODES:
            raise SettingError("power", f"power must be 'auto' or 'off', got {self.power!r}")

    def rounds(self) -> dict[str, Any]:
        """The timing settings (harness.measure.windows' ``window_plan`` and the warm-up)."""
        return {
            "warmup_rounds": self.warmup_rounds,
            "warmup_time_s": self.warmup_time_s,
            "windows": self.windows,
            "min_rounds": self.min_rounds,
            "min_time_s": self.min_time_s,
            "max_time_s": self.max_time_s,
            "ci_target": self.ci_target,
        }


_CHECKED = {
    "warmup_rounds", "warmup_time_s", "windows", "min_rounds", "min_time_s", "max_time_s",
    "ci_target", "remeasure", "power_sample_hz", "idle_power_s", "layer_time_steps",
}  # fmt: skip


def max_threads() -> int:
    """The most intra-op threads a case may ask for: 4x the CPUs torch could use (more only
    oversubscribes; 100,000 once exhausted memory creating the pool)."""
    return 4 * (os.cpu_count() or 1)


# The defaults per scale: ``quick`` is a CPU's small default grid, ``full`` a GPU's sweep,
# ``smoke`` pytest-benchmark's --benchmark-disable (each case once, nothing judged).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "warmup_rounds": 2,
        "warmup_time_s": 0.1,
        "windows": 5,
        "min_rounds": 10,
        "min_time_s": 0.5,
        "max_time_s": 1.5,
    },
    "full": {
        "warmup_rounds": 10,
        "warmup_time_s": 0.2,
        "windows": 5,
        "min_rounds": 20,
        "min_time_s": 0.5,
        "max_time_s": 10.0,
    },
    "smoke": {
        "warmup_rounds": 0,
        "warmup_time_s": 0.0,
        "windows": 1,
        "min_rounds": 1,
        "min_time_s": 0.0,
        "max_time_s": None,
        "ci_target": None,
        "remeasure": 0,
        "power": "off",
    },
}


def preset(scale: str, **given: Any) -> RunOptions:
    """``RunOptions`` of a scale's preset with ``given`` on top (a SettingError names the
    field a value breaks)."""
    if scale not in PRESETS:
        raise SettingError("scale", f"scale must be one of {', '.join(PRESETS)}, got {scale!r}")
    return replace(RunOptions(), **{**PRESETS[scale], **given})


def preset_default(field: str) -> str:
    """``"6 quick, 20 full"``: a field's default in the quick and full presets, for help texts."""
    base = RunOptions()
    values = [PRESETS[s].get(field, getattr(base, field)) for s in ("quick", "full")]
    shown = ["none" if v is None else f"{v:g}" for v in values]
    return f"{shown[0]} quick, {shown[1]} full"
