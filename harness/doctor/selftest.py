"""``run_doctor``: the machine's facts and the self-test's checks (harness.doctor.checks) on one
device, each run so that an unexpected error is a FAIL with the error, never a traceback."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch

from harness.core.errors import InvalidInputError, first_line
from harness.doctor.checks import (
    check_energy,
    check_failure_recovery,
    check_memory,
    check_timing,
)
from harness.doctor.compile import check_compile
from harness.doctor.processes import check_gpu_processes
from harness.doctor.report import FAIL, UNAVAILABLE, Check, DoctorReport
from harness.measure.devices import cuda_unavailable_reason, resolve_device, unavailable_reason

CUDA_RULE = (
    "a CUDA device was asked for (--device cuda or cuda:N): FAIL when CUDA does not work "
    "(no driver, a driver too old for this torch, no GPU, a torch without CUDA); --device auto "
    "checks the CPU where CUDA does not work"
)
CHECKS: tuple[tuple[str, Callable[[torch.device], Check]], ...] = (
    ("timing", check_timing),
    ("energy", check_energy),
    ("memory", check_memory),
    ("compile", check_compile),
    ("failure_recovery", check_failure_recovery),
)


def _run(name: str, check: Callable[[torch.device], Check], device: torch.device) -> Check:
    try:
        return check(device)
    except Exception as exc:
        return Check(name, FAIL, f"the check could not measure: {first_line(exc, limit=300)}")


@contextlib.contextmanager
def _timed() -> Iterator[Callable[[], float]]:
    t0 = time.perf_counter()
    yield lambda: time.perf_counter() - t0


def resolve(device: str) -> torch.device:
    """The device to check (harness.measure.devices.resolve_device); a bad name, a device type
    other than cpu or cuda, or a CUDA index that does not exist on a machine with CUDA is an
    InvalidInputError (a CUDA device on a machine without CUDA is not: its checks say why)."""
    dev = resolve_device(device)
    if dev.type not in ("cpu", "cuda"):
        raise InvalidInputError(f"the doctor checks cpu and cuda devices, not {dev.type!r}")
    if dev.type == "cuda" and cuda_unavailable_reason() is None:
        reason = unavailable_reason(dev)
        if reason is not None:
            raise InvalidInputError(reason)
    return dev


def run_doctor(
    device: str = "auto", *, progress: Callable[[str], None] | None = None
) -> DoctorReport:
    """The machine's facts and the self-test on ``device`` (``auto``, ``cpu``, ``cuda:N``)."""
    from harness.doctor.facts import machine_facts

    dev = resolve(device)
    say = progress or (lambda _msg: None)
    with _timed() as elapsed:
        say("machine facts")
        machine = machine_facts(dev)
        checks: list[Check] = []
        no_cuda = cuda_unavailable_reason()
        if dev.type == "cuda" and no_cuda is not None:
            checks.append(Check("cuda", FAIL, f"CUDA does not work here: {no_cuda}", CUDA_RULE))
        for name, check in CHECKS:
            if dev.type == "cuda" and no_cuda is not None:
                checks.append(Check(name, UNAVAILABLE, f"{dev} cannot run: {no_cuda}"))
                continue
            say(name)
            checks.append(_run(name, check, dev))
        if dev.type == "cuda" and no_cuda is None:
            say("gpu_processes")
            checks.append(_run("gpu_processes", check_gpu_processes, dev))
        if dev.type == "cpu":
            checks.append(
                Check(
                    "gpu",
                    UNAVAILABLE,
                    (no_cuda or "a CPU was chosen")
                    + "; the GPU self-test (CUDA-event timing, NVML energy, allocator peak, "
                    "a compiled case, out-of-memory recovery) runs with --device cuda:N",
                )
            )
        return DoctorReport(str(dev), machine, checks, elapsed())
