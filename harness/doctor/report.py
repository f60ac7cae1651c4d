"""The doctor's verdicts: the four statuses, one check's result (``Check``: status, reason, the
rule that decided it and its numbers) and the whole report (``DoctorReport``, its exit code)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, WARN, FAIL, UNAVAILABLE = "PASS", "WARN", "FAIL", "UNAVAILABLE"
STATUSES = (PASS, WARN, FAIL, UNAVAILABLE)


@dataclass
class Check:
    """One check's verdict: ``status``, why (``reason``), the rule that decided it, and the
    numbers it was decided by (units in the key names: _s seconds, _bytes, _j joules)."""

    name: str
    status: str
    reason: str
    rule: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorReport:
    device: str
    machine: dict[str, Any]
    checks: list[Check]
    seconds: float

    @property
    def exit_code(self) -> int:
        """0 when no check failed, 1 when one did."""
        return 1 if any(c.status == FAIL for c in self.checks) else 0

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(c.status == s for c in self.checks) for s in STATUSES}
        return {
            "device": self.device,
            "machine": self.machine,
            "checks": [c.to_dict() for c in self.checks],
            "summary": counts,
            "seconds": round(self.seconds, 1),
            "exit_code": self.exit_code,
        }


def banded(value: float, pass_band: tuple[float, float], warn_band: tuple[float, float]) -> str:
    if pass_band[0] <= value <= pass_band[1]:
        return PASS
    if warn_band[0] <= value <= warn_band[1]:
        return WARN
    return FAIL
