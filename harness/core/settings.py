"""The bounds of every measurement setting and their one check.

``check(field, value)`` raises a ``SettingError`` naming the field and the rule; the timing plan
(harness.measure.timing.Rounds), the run's options (harness.run.options.RunOptions), the pytest
plugin's ``--cnn-*`` options and ``cnnbench profile --measure`` all check through it, so a bound
is stated once and every front end says the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.errors import InvalidInputError


class SettingError(InvalidInputError):
    """A setting outside its bounds; ``field`` names it (the plugin turns it into its option)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Bound:
    """``whole``: an int (bool refused); else a finite number. ``low`` is exclusive when
    ``strict``; ``none``: None is allowed (no limit, no target)."""

    words: str
    low: float
    high: float
    whole: bool = False
    strict: bool = False
    none: bool = False


DAY_S = 86_400.0
BOUNDS: dict[str, Bound] = {
    "warmup_rounds": Bound("warm-up rounds", 0, 1_000_000, whole=True),
    "warmup_time_s": Bound("warm-up time (s)", 0, DAY_S),
    "min_rounds": Bound("minimum rounds", 1, 1_000_000, whole=True),
    "min_time_s": Bound("minimum time (s)", 0, DAY_S),
    "max_rounds": Bound("maximum rounds", 1, 1_000_000_000, whole=True, none=True),
    "max_time_s": Bound("maximum time (s)", 0, DAY_S, strict=True, none=True),
    "ci_target": Bound("CI target", 0, 1, none=True),
    "remeasure": Bound("remeasure", 0, 10, whole=True),
    "windows": Bound("windows", 1, 1000, whole=True),
    "power_sample_hz": Bound("power sampling rate (Hz)", 0, 1000, strict=True),
    "idle_power_s": Bound("idle power time (s)", 0, 3600),
    "layer_time_steps": Bound("layer time steps", 1, 1000, whole=True),
}


def check(field: str, value: object) -> None:
    """Raise a SettingError when ``value`` is outside ``field``'s bounds."""
    b = BOUNDS[field]
    if value is None and b.none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (b.whole and not isinstance(value, int))
    ):
        ok = False
    else:
        v = float(value)
        ok = math.isfinite(v) and v <= b.high and (v > b.low if b.strict else v >= b.low)
    if not ok:
        kind = "a whole number" if b.whole else "a finite number"
        low = f"more than {b.low:g}" if b.strict else f"at least {b.low:g}"
        rule = f"{kind} {low} and at most {b.high:,g}" + (" (or none)" if b.none else "")
        raise SettingError(field, f"{b.words} must be {rule}, got {value!r}")


def check_all(**values: object) -> None:
    """``check`` each ``field=value``."""
    for field, value in values.items():
        check(field, value)
