"""harness.measure.cuda_state: failures classified from the messages torch and the CUDA libraries
really print (and a real CPU allocator failure), cuBLAS workspaces released with torch.cuda
replaced by recorders, and Dynamo's graph and graph-break counts from real torch.compile runs.
"""

from __future__ import annotations

import pytest
import torch

from harness.core.schema import column_names
from harness.measure import cuda_state
from harness.measure.cuda_state import classify_failure, dynamo_stats, failure_line

# Messages as torch formats them: TORCH_CUDABLAS_CHECK ("CUDA error: <status> when calling
# `...`"), AT_CUDNN_CHECK ("cuDNN error: <cudnnGetErrorString>"), C10_CUDA_CHECK ("CUDA error:
# <cudaGetErrorString>\nSearch for `<cudaError name>' in ..."); the descriptions are the CUDA
# runtime's own (cudaGetErrorString).
SEARCH = (
    "Search for `{}' in https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html"
)
OOM_MESSAGES = [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",  # cuDNN 9's name
    # the CPU allocator on Windows, and on Linux
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
    "you tried to allocate 911360 bytes.",
    "CUDA error: out of memory\n" + SEARCH.format("cudaErrorMemoryAllocation"),
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 35184372088832 bytes. Error code 12 (Cannot allocate memory)",
]
STICKY_MESSAGES = [
    "CUDA error: an illegal memory access was encountered\n"
    + SEARCH.format("cudaErrorIllegalAddress"),
    "CUDA error: device-side assert triggered\n" + SEARCH.format("cudaErrorAssert"),
    "CUDA error: unspecified launch failure",
    "CUDA error: misaligned address",
    "CUDA error: an illegal instruction was encountered",
    "CUDA error: the launch timed out and was terminated",
    "CUDA error: uncorrectable ECC error encountered",
    "Triton Error [CUDA]: CUDA_ERROR_ILLEGAL_ADDRESS",
]


@pytest.mark.parametrize("message", OOM_MESSAGES)
def test_allocation_failures_that_are_not_out_of_memory_errors_are_oom(message: str) -> None:
    assert classify_failure(RuntimeError(message)) == "oom"


def test_a_real_cpu_allocator_failure_is_oom() -> None:
    with pytest.raises(RuntimeError) as info:  # 32 TiB: more than this machine has
        torch.empty(2**45, dtype=torch.uint8)
    assert not isinstance(info.value, torch.OutOfMemoryError)  # a plain RuntimeError...
    assert classify_failure(info.value) == "oom"  # ...that is out of memory all the same


def test_out_of_memory_errors_and_memory_error_are_oom() -> None:
    assert classify_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to ...")) == "oom"
    assert classify_failure(MemoryError()) == "oom"


def test_oom_wrapped_by_torch_compile_or_raised_from_is_found() -> None:
    class BackendCompilerFailed(RuntimeError):  # Dynamo's: raised `from None`, keeps the inner
        def __init__(self, inner: BaseException) -> None:
            super().__init__("backend='inductor' raised: ...")
            self.inner_exception = inner

    inner = RuntimeError(OOM_MESSAGES[0])
    wrapped = BackendCompilerFailed(inner)
    wrapped.__suppress_context__ = True
    assert classify_failure(wrapped) == "oom"
    assert failure_line(wrapped) == f"RuntimeError: {OOM_MESSAGES[0]}"
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        except torch.OutOfMemoryError as err:
            raise ValueError("the step failed") from err
    except ValueError as outer:
        assert classify_failure(outer) == "oom"
        assert failure_line(outer).startswith("OutOfMemoryError: CUDA out of memory.")


@pytest.mark.parametrize("message", STICKY_MESSAGES)
def test_errors_that_poison_the_cuda_context_are_sticky(message: str) -> None:
    assert classify_failure(torch.AcceleratorError(message)) == "sticky"
    assert classify_failure(RuntimeError(message)) == "sticky"


def test_sticky_wins_over_out_of_memory_in_one_chain() -> None:
    try:
        try:
            raise RuntimeError(STICKY_MESSAGES[0])
        except RuntimeError:
            raise torch.OutOfMemoryError("CUDA out of memory while cleaning up") from None
    except torch.OutOfMemoryError as err:
        assert classify_failure(err) == "sticky"  # the context still holds the first one
        assert failure_line(err) == (
            "RuntimeError: CUDA error: an illegal memory access was encountered"
        )


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("Expected input batch_size (4) to match target batch_size (8)"),
        RuntimeError("CUDA error: invalid argument"),
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"),
        KeyError("resnet"),
    ],
)
def test_other_failures_are_neither(exc: BaseException) -> None:
    assert classify_failure(exc) is None
    assert failure_line(exc).startswith(f"{type(exc).__name__}: ")


# -- cuBLAS workspaces -------------------------------------------------------------------------


def test_off_cuda_nothing_is_released_or_measured() -> None:
    assert cuda_state.release_between_cases("cpu") == {"cublas_workspace_bytes": None}
    assert set(cuda_state.release_between_cases("cpu")) <= set(column_names("cases"))


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> dict:
    """torch.cuda replaced by recorders: 100 MiB allocated, 32 MiB of it cuBLAS workspaces."""
    state: dict = {"allocated": 100 << 20, "workspaces": 32 << 20, "events": []}
    events = state["events"]

    def allocated(device: object = None) -> int:
        events.append("allocated")
        return state["allocated"]

    def clear() -> None:
        events.append("clear")
        state["allocated"] -= state["workspaces"]
        state["workspaces"] = 0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", allocated)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty_cache"))
    monkeypatch.setattr(
        torch.cuda, "reset_peak_memory_stats", lambda device=None: events.append("reset_peak")
    )
    monkeypatch.setattr(torch._C, "_cuda_clearCublasWorkspaces", clear, raising=False)
    return state


def test_workspaces_are_released_and_their_bytes_recorded(fake_cuda: dict) -> None:
    assert cuda_state.release_between_cases("cuda:0") == {"cublas_workspace_bytes": 32 << 20}
    assert fake_cuda["events"] == [
        "sync",
        "allocated",
        "clear",
        "allocated",
        "empty_cache",
        "reset_peak",
    ]
    # nothing left: the next release measures 0 bytes, not None
    assert cuda_state.release_between_cases("cuda:0") == {"cublas_workspace_bytes": 0}


def test_a_torch_without_the_clear_function_measures_nothing(
    fake_cuda: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(torch._C, "_cuda_clearCublasWorkspaces")
    assert cuda_state.release_between_cases("cuda:0") == {"cublas_workspace_bytes": None}
    assert "clear" not in fake_cuda["events"] and "empty_cache" in fake_cuda["events"]


def test_a_sticky_error_surfaces_from_the_release(monkeypatch: pytest.MonkeyPatch) -> None:
    def sync(device: object = None) -> None:
        raise torch.AcceleratorError(STICKY_MESSAGES[0])

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", sync)
    with pytest.raises(torch.AcceleratorError) as info:
        cuda_state.release_between_cases("cuda:0")
    assert classify_failure(info.value) == "sticky"


# -- Dynamo ------------------------------------------------------------------------------------


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_a_whole_graph_is_one_graph_and_no_break() -> None:
    torch.compiler.reset()
    compiled = torch.compile(_model(), backend="eager")
    with dynamo_stats() as stats:
        compiled(torch.randn(4, 8))
        compiled(torch.randn(4, 8))  # same shapes: no recompilation
    torch.compiler.reset()
    assert stats == {"dynamo_graphs": 1, "dynamo_graph_breaks": 0}
    assert set(stats) <= set(column_names("cases"))


def test_one_graph_break_splits_the_function_into_two_graphs() -> None:
    model = _model()

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = model(x)
        torch._dynamo.graph_break()  # what an unsupported Python construct does
        return y.relu()

    torch.compiler.reset()
    with dynamo_stats() as stats:
        torch.compile(forward, backend="eager")(torch.randn(4, 8))
    torch.compiler.reset()
    # torch._dynamo.explain's rule: graphs = breaks + 1
    assert stats == {"dynamo_graphs": 2, "dynamo_graph_breaks": 1}


def test_an_eager_run_compiles_nothing_and_a_failing_block_is_still_counted() -> None:
    with dynamo_stats() as stats:
        _model()(torch.randn(4, 8))
    assert stats == {"dynamo_graphs": 0, "dynamo_graph_breaks": 0}

    torch.compiler.reset()
    compiled = torch.compile(_model(), backend="eager")
    with pytest.raises(ValueError), dynamo_stats() as stats:
        compiled(torch.randn(4, 8))
        raise ValueError("the case failed after compiling")
    torch.compiler.reset()
    assert stats == {"dynamo_graphs": 1, "dynamo_graph_breaks": 0}


# -- TF32 (issue 22 items 8 and 10) ------------------------------------------------------------


def test_float32_rows_say_whether_tf32_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.measure.cuda_state import tf32_columns

    assert tf32_columns("cpu", "float32") == {"tf32_conv": False, "tf32_matmul": False}
    assert tf32_columns("cpu", "float16") == {"tf32_conv": None, "tf32_matmul": None}
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    try:
        for capability, conv in (((9, 0), True), ((8, 0), True), ((7, 0), False)):
            monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d, c=capability: c)
            # cuDNN's default: float32 convolutions in TF32 from Ampere on; cuBLAS's: not matmuls
            assert tf32_columns("cuda:0", "float32") == {"tf32_conv": conv, "tf32_matmul": False}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_ieee_float32_turns_tf32_off_inside_and_restores_it() -> None:
    from harness.measure.cuda_state import ieee_float32

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with ieee_float32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
