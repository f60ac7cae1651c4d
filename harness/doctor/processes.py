"""The doctor's look at the GPU under test for other processes (harness.measure.gpu_watch): a
case measured while another process holds a context on the GPU is marked noisy, so the doctor
says beforehand whom the GPU is shared with."""

from __future__ import annotations

import torch

from harness.doctor.report import PASS, UNAVAILABLE, WARN, Check
from harness.measure.gpu_watch import GpuWatch

PROCESSES_RULE = (
    "NVML's lists of the processes holding a context on the GPU (compute and graphics), this "
    "one left out: PASS with none, WARN with any (every case measured meanwhile is marked "
    "noisy: CUDA time-slices the GPU between processes), UNAVAILABLE where NVML cannot list them"
)


def judge_processes(count: int | None, memory: int | None, why: str | None) -> Check:
    numbers = {"other_processes": count, "their_memory_bytes": memory}
    if count is None:
        return Check("gpu_processes", UNAVAILABLE, why or "NVML gave no list", PROCESSES_RULE)
    if count == 0:
        return Check("gpu_processes", PASS, "no other process on the GPU", PROCESSES_RULE, numbers)
    held = f", holding {memory / 2**30:.1f} GiB" if memory is not None else ""
    return Check(
        "gpu_processes",
        WARN,
        f"{count} other process(es) on the GPU{held}: cases measured now are marked noisy",
        PROCESSES_RULE,
        numbers,
    )


def check_gpu_processes(device: torch.device) -> Check:
    watch = GpuWatch.for_device(device)
    watch.look()
    found = watch.process_columns()
    return judge_processes(
        found.get("gpu_foreign_processes"), found.get("gpu_foreign_memory_bytes"), watch.source
    )
