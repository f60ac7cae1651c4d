"""`cnnbench doctor`: what this machine offers for measuring, and a self-test of the harness's
measurement on one device.

* ``facts.py``: the machine as the harness sees it (software, CUDA, GPUs through NVML, the
  power readings the harness would use, RAPL, CPU frequency governor and SMT).
* ``checks.py``: the self-test's five checks each decided by numbers against a stated rule:
  timing (the harness's median against CUDA events, or torch.utils.benchmark on the CPU),
  energy (the energy counter against the integral of the power trace), memory (the measured
  peak against the analytic activation bytes), compile (a compiled case really compiled) and
  failure recovery (an out-of-memory case leaves the process usable).

* ``selftest.py``: ``run_doctor(device)`` runs them; it returns a ``DoctorReport``, whose
  ``exit_code`` is 0 when no check failed, 1 when one did. Statuses: PASS, WARN, FAIL,
  UNAVAILABLE (with the reason).
"""

from __future__ import annotations

from harness.doctor.report import FAIL, PASS, STATUSES, UNAVAILABLE, WARN, Check, DoctorReport
from harness.doctor.selftest import run_doctor

__all__ = [
    "FAIL",
    "PASS",
    "STATUSES",
    "UNAVAILABLE",
    "WARN",
    "Check",
    "DoctorReport",
    "run_doctor",
]
