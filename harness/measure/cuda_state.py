"""What one case leaves in the process for the next: cuBLAS workspaces, failures that poison the
CUDA context, and the Dynamo statistics of a compiled case.

Three calls, each independent of the others::

    columns = release_between_cases(device)   # {"cublas_workspace_bytes": n}: before a case
    kind = classify_failure(exc)               # "oom" | "sticky" | None: after a failure
    with dynamo_stats() as stats:              # {"dynamo_graphs": n, "dynamo_graph_breaks": m}
        ...the compiled case: first call, warm-up, rounds...

Sources read for torch 2.13: ``torch._C._cuda_clearCublasWorkspaces`` (used the same way by
torch.testing's CUDA memory-leak check and by inductor's CUDA graph trees), the Dynamo counters in
``torch._dynamo.utils.counters`` (``counters["stats"]["unique_graphs"]`` is incremented once per
graph Dynamo hands to a backend, in ``OutputGraph.compile_and_call_fx_graph``;
``counters["graph_break"]`` counts each graph break by reason, in
``InstructionTranslatorBase.break_graph_if_unsupported``), and the CUDA runtime's error
documentation for which errors leave the context unusable.

This module knows nothing of pytest or of the runner.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator
from typing import Literal

import torch

from harness.core.errors import first_line

FailureKind = Literal["oom", "sticky"]

# -- cuBLAS workspaces -------------------------------------------------------------------------


def release_between_cases(device: torch.device | str) -> dict[str, int | None]:
    """Free what earlier cases left on ``device``; returns ``{"cublas_workspace_bytes": n}``.

    cuBLAS keeps one workspace per (handle, stream), 8 to 32 MiB each, allocated through the
    caching allocator and held until the process ends: ``torch.cuda.empty_cache()`` does not
    free it, so it sits in every later case's ``memory_baseline_bytes``. This drops them
    (``torch._C._cuda_clearCublasWorkspaces``), then empties the allocator's cache and resets
    its peak statistics. ``n`` is the fall of ``torch.cuda.memory_allocated(device)`` across the
    clear: the bytes really released on this device (0 when none were held). It is None off
    CUDA and where this torch has no such function (nothing was released, nothing measured).

    A CUDA error left in the context by an earlier case is raised here (from the synchronise):
    pass it to ``classify_failure``.
    """
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return {"cublas_workspace_bytes": None}
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    gc.collect()  # tensors of the last case still waiting for the collector
    torch.cuda.synchronize(dev)
    released: int | None = None
    if clear is not None:
        before = torch.cuda.memory_allocated(dev)
        clear()
        released = max(0, before - torch.cuda.memory_allocated(dev))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    return {"cublas_workspace_bytes": released}


# -- failures ----------------------------------------------------------------------------------

# Out of memory that torch does not raise as OutOfMemoryError: cuBLAS, cuDNN (v8 names and the
# v9 INTERNAL_ERROR_*_ALLOCATION_FAILED ones), cuFFT/cuSOLVER/cuSPARSE, a cudaMalloc outside the
# caching allocator, the CPU allocator, MPS.
_OOM_PATTERNS = (
    r"CUBLAS_STATUS_ALLOC_FAILED",
    r"CUDNN_STATUS_ALLOC_FAILED",
    r"CUDNN_STATUS_\w*ALLOCATION_FAILED",
    r"CUFFT_ALLOC_FAILED",
    r"CUSOLVER_STATUS_ALLOC_FAILED",
    r"CUSPARSE_STATUS_ALLOC_FAILED",
    r"cudaErrorMemoryAllocation",
    r"CUDA_ERROR_OUT_OF_MEMORY",
    r"CUDA (?:driver )?error: out of memory",
    r"not enough memory",
    r"DefaultCPUAllocator: can't allocate memory",
    r"MPS backend out of memory",
)

# CUDA runtime errors after which "any further CUDA work will return the same error; to continue
# using CUDA, the process must be terminated and relaunched" (CUDA runtime API, cudaError enum),
# by name (torch's messages say "Search for `cudaErrorIllegalAddress'") and by the runtime's own
# description (cudaGetErrorString), which is what torch prints first.
_STICKY_NAMES = (
    "cudaErrorIllegalAddress",
    "cudaErrorLaunchTimeout",
    "cudaErrorHardwareStackError",
    "cudaErrorIllegalInstruction",
    "cudaErrorMisalignedAddress",
    "cudaErrorInvalidAddressSpace",
    "cudaErrorInvalidPc",
    "cudaErrorLaunchFailure",
    "cudaErrorAssert",
    "cudaErrorECCUncorrectable",
    "cudaErrorNvlinkUncorrectable",
    "cudaErrorExternalDevice",
    "cudaErrorContained",
    "CUDA_ERROR_ILLEGAL_ADDRESS",
    "CUDA_ERROR_LAUNCH_FAILED",
    "CUDA_ERROR_ASSERT",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION",
    "CUDA_ERROR_MISALIGNED_ADDRESS",
    "CUDA_ERROR_HARDWARE_STACK_ERROR",
    "CUDA_ERROR_ECC_UNCORRECTABLE",
)
_STICKY_DESCRIPTIONS = (
    "an illegal memory access was encountered",
    "the launch timed out and was terminated",
    "hardware stack error",
    "an illegal instruction was encountered",
    "misaligned address",
    "invalid program counter",
    "unspecified launch failure",
    "device-side assert triggered",
    "uncorrectable ECC error encountered",
    "uncorrectable NVLink error",
)
_OOM_RE = re.compile("|".join(_OOM_PATTERNS), re.IGNORECASE)
_STICKY_RE = re.compile(
    "|".join([*map(re.escape, _STICKY_NAMES), *map(re.escape, _STICKY_DESCRIPTIONS)]),
    re.IGNORECASE,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: ``__cause__``, ``__context__``, and the ``inner_exception`` of
    torch.compile's BackendCompilerFailed (raised ``from None``, so it has no cause)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        inner = getattr(e, "inner_exception", None)
        for nxt in (inner, e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def classify_failure(exc: BaseException) -> FailureKind | None:
    """``"sticky"`` for a CUDA error that leaves the context unusable (this process must run no
    further case), ``"oom"`` for running out of memory in any form (OutOfMemoryError, MemoryError,
    cuBLAS/cuDNN allocation failures, the CPU allocator's), else None.

    The whole chain of ``exc`` is examined (causes, contexts, torch.compile's wrapped error);
    sticky wins over out of memory, since after a sticky error nothing else can be trusted.
    """
    chain = list(_chain(exc))
    if any(_STICKY_RE.search(str(e)) for e in chain):
        return "sticky"
    for e in chain:
        if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or _OOM_RE.search(str(e)):
            return "oom"
    return None


def failure_line(exc: BaseException) -> str:
    """One line that explains ``exc``: the first line of the exception in its chain that decided
    ``classify_failure`` (the out-of-memory or sticky one), else of ``exc`` itself."""
    kind = classify_failure(exc)
    pick = exc
    for e in _chain(exc):
        text = str(e)
        if (kind == "sticky" and _STICKY_RE.search(text)) or (
            kind == "oom"
            and (isinstance(e, (torch.OutOfMemoryError, MemoryError)) or _OOM_RE.search(text))
        ):
            pick = e
            break
    return first_line(pick)


# -- Dynamo ------------------------------------------------------------------------------------


def _dynamo_counts() -> tuple[int, int]:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"]), int(sum(counters["graph_break"].values()))


@contextlib.contextmanager
def dynamo_stats() -> Iterator[dict[str, int | None]]:
    """Count what Dynamo compiled inside the block: yields a dict that holds, once the block has
    ended (normally or not), ``dynamo_graphs`` (graphs handed to the backend: 0 means the
    "compiled" case ran wholly eager) and ``dynamo_graph_breaks`` (places where Dynamo split the
    graph and ran Python eagerly in between).

    Wrap everything a compiled case runs (first call, warm-up, rounds), since Dynamo compiles
    at the first call and again on every recompilation. The counters are process-wide and never
    reset by ``torch.compiler.reset()``; the differences are taken, so cases run one after the
    other in a process are counted apart (not cases run at the same time in threads).
    """
    stats: dict[str, int | None] = {"dynamo_graphs": None, "dynamo_graph_breaks": None}
    graphs0, breaks0 = _dynamo_counts()
    try:
        yield stats
    finally:
        graphs1, breaks1 = _dynamo_counts()
        stats["dynamo_graphs"] = max(0, graphs1 - graphs0)
        stats["dynamo_graph_breaks"] = max(0, breaks1 - breaks0)


# -- TF32 --------------------------------------------------------------------------------------


def tf32_columns(device: torch.device | str, dtype: str) -> dict[str, bool | None]:
    """Whether a case's float32 convolutions and matmuls ran in TF32: on a GPU with TF32 tensor
    cores (compute capability 8.0+) where cuDNN (``torch.backends.cudnn.allow_tf32``, on by
    default) and cuBLAS (``torch.backends.cuda.matmul.allow_tf32``, off by default) allow it.
    False on a CPU (float32 in IEEE); None for other dtypes."""
    dev = torch.device(device)
    if dtype != "float32":
        return {"tf32_conv": None, "tf32_matmul": None}
    if dev.type != "cuda":
        return {"tf32_conv": False, "tf32_matmul": False}
    major, _ = torch.cuda.get_device_capability(dev)
    capable = major >= 8
    cudnn = torch.backends.cudnn
    return {
        "tf32_conv": capable and bool(cudnn.enabled and cudnn.allow_tf32),
        "tf32_matmul": capable and bool(torch.backends.cuda.matmul.allow_tf32),
    }


@contextlib.contextmanager
def float32_as(tf32: bool) -> Iterator[None]:
    """cuDNN and cuBLAS both in TF32 (or both in IEEE float32) inside, as before after."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def ieee_float32() -> contextlib.AbstractContextManager[None]:
    """float32 as IEEE float32 inside (TF32 off for cuDNN and cuBLAS): for comparisons whose
    tolerance is float32's."""
    return float32_as(False)
