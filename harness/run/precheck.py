"""What is checked before a case is built for real: that it can fit in the memory left (an
analytic lower bound against what the device or the host has free), and that batch norm in
training gets more than one value per channel. A case that fails either is refused with both
numbers (``skipped``) or a one-line error, before anything is allocated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch

from harness.core.errors import InvalidInputError, first_line
from harness.core.spec import Case
from harness.profile import ModelProfile


def check_trainable_batch_norm(layers: Sequence[Any], case: Case) -> None:
    """Batch norm in training needs more than one value per channel: fail before running."""
    for layer in layers:
        shape = tuple(layer.output_shape)
        if layer.type.startswith("BatchNorm") and len(shape) >= 2:
            per_channel = shape[0] * int(torch.Size(shape[2:]).numel())
            if per_channel < 2:
                raise InvalidInputError(
                    f"{case.model} cannot train at batch {case.batch_size} with input "
                    f"{'x'.join(map(str, case.input_shape))}: layer {layer.name} ({layer.type}) "
                    f"gets {'x'.join(map(str, shape))}, one value per channel, and batch norm "
                    "needs more than one in training; use a larger batch or input"
                )


def available_memory(device: torch.device) -> tuple[int | None, str]:
    """Bytes a case could still allocate on ``device``, and where the figure comes from."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError) as exc:  # no answer: the check is skipped
            return None, f"unknown ({first_line(exc)})"
        return int(free), "free device memory (cudaMemGetInfo)"
    available: int | None = None
    source = "MemAvailable in /proc/meminfo"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        source = "unknown"
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as fh:
                used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            left = max(0, soft - used)
            if available is None or left < available:
                available, source = left, "the address-space limit (ulimit -v) less what is mapped"
    except (ImportError, OSError, ValueError):
        pass
    return available, source


def memory_lower_bound(case: Case, prof: ModelProfile) -> tuple[int, str]:
    """A lower bound on the bytes a case needs, and its parts in words.

    Weights (float32 unless cast), the input, the largest single layer output (at least one
    must exist at once); in training also the gradients and SGD's momentum buffer (one copy of
    the trainable weights each). The real peak is higher; a case above this bound cannot fit.
    """
    weight_size = case.itemsize if case.cast else 4
    weights = prof.params * weight_size
    input_bytes = math.prod(case.full_input_shape) * (case.itemsize if case.cast else 4)
    largest = max((layer.activation_bytes for layer in prof.layers), default=0)
    parts = [f"weights {weights:,}", f"input {input_bytes:,}", f"largest layer output {largest:,}"]
    total = weights + input_bytes + largest
    if case.mode == "training":
        extra = 2 * prof.trainable_params * weight_size
        total += extra
        parts.append(f"gradients + momentum {extra:,}")
    return total, " + ".join(parts)


def too_big_for(case: Case, device: torch.device, prof: ModelProfile | None) -> str | None:
    """Why the case cannot fit in the memory left (None when it may)."""
    if prof is None:
        return None
    need, parts = memory_lower_bound(case, prof)
    available, source = available_memory(device)
    if available is None or need <= available:
        return None
    return (
        f"needs at least {need:,} bytes ({parts}) but {source} is {available:,} bytes: "
        "not run, so the machine is not pushed into swapping or the OOM killer"
    )
