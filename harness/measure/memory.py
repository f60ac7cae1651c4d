"""Peak memory of one step: the CUDA caching allocator's peak on GPU, a tensor-level tracker on CPU.

Both report ``peak_memory_bytes`` as the *absolute* peak during the step, the baseline included:
what was resident before the step (weights, buffers, the input, anything else already allocated)
plus what the step allocated on top at its worst moment. ``memory_baseline_bytes`` is the resident
part, so the step's own peak is ``peak_memory_bytes - memory_baseline_bytes``.

* CUDA (``memory_source = "cuda_allocator"``): ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``; the baseline is ``torch.cuda.memory_allocated`` before the step:
  every block the caching allocator has handed out on the device. That is the weights and
  buffers, the input, the optimizer's state (SGD's momentum buffers, made by the warm-up's
  first step), cuBLAS workspaces (8 to 32 MiB per handle and stream, kept until released:
  ``harness.measure.cuda_state.release_between_cases`` before the case), and anything else a
  caller keeps alive on the device. Bytes are the allocator's, rounded up to its block sizes
  (multiples of 512 bytes); memory cached but not allocated is not counted.
* CPU (``memory_source = "cpu_tensor_tracker"``): ``CpuTensorTracker``, a TorchDispatchMode that
  sees the output of every ATen op run in the step (forward, autograd's backward, optimizer
  updates), counts each new CPU storage once (views share their base's storage) until that
  storage is freed, and keeps the peak of the live total. Its bytes are exact storage sizes
  (``UntypedStorage.nbytes``). It sees tensors only: scratch buffers a kernel allocates and frees
  inside one op (oneDNN workspaces, im2col) and the Python heap are not included. The baseline
  is the distinct storages of ``baseline_tensors`` (pass the model's parameters and buffers and
  the input; the optimizer's state is in it only if its tensors are passed too). A
  ``torch.compile``d model runs its eager ops while a dispatch mode is active (checked with
  torch 2.13), so for compiled CPU cases the figure is the eager allocation pattern, not the
  fused one.

Gradients are not part of the baseline. A training step starts with
``zero_grad(set_to_none=True)``, so the previous step's gradients (``param_bytes`` of them) die
inside the step and the step allocates its own: read with them alive, the CUDA baseline was
``param_bytes`` too high and ``peak - baseline`` that much too low (0.55 GB for VGG-16). So the
gradients of the leaf tensors in ``baseline_tensors`` are dropped (``.grad = None``) before the
baseline is read, on every device (``drop_gradients_first=False`` keeps them).

This module knows nothing of pytest.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from harness.core.errors import InvalidInputError
from harness.measure.timing import cuda_sync_fn

CUDA_SOURCE = "cuda_allocator"
CPU_SOURCE = "cpu_tensor_tracker"


@dataclass
class MemoryResult:
    """Peak and baseline in bytes (None when not measured, with ``memory_source`` saying why)."""

    peak_memory_bytes: int | None
    memory_baseline_bytes: int | None
    memory_source: str

    def to_columns(self) -> dict[str, object]:
        return {
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_baseline_bytes": self.memory_baseline_bytes,
            "memory_source": self.memory_source,
        }


def _storage_key(storage: torch.UntypedStorage) -> int:
    return int(storage._cdata)  # the StorageImpl's address: stable while alive, even on resize


def _cpu_storages(values: Any) -> list[torch.UntypedStorage]:
    """Storages of the strided CPU tensors in a nested structure (sparse and other layouts have
    none to count)."""
    out = []
    for t in tree_flatten(values)[0]:
        if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.layout == torch.strided:
            try:
                out.append(t.untyped_storage())
            except (RuntimeError, NotImplementedError):
                continue  # a tensor subclass without a real storage
    return out


# torch.tensor(data) builds its tensor below the dispatcher, then passes it through lift_fresh:
# the first time the tracker sees it is as that op's input and output at once.
_LIFT_OPS = frozenset({torch.ops.aten.lift_fresh.default})


class CpuTensorTracker(TorchDispatchMode):
    """Live and peak bytes of CPU tensor storages created while the mode is active.

    ``track(t)`` counts a tensor that existed before (the baseline). Every op output whose
    storage is new (not one of the op's inputs' storages, not seen before) is counted from then
    until the storage is freed (a ``weakref.finalize`` on the storage, which torch keeps alive as
    long as any tensor or autograd node holds it). ``live_bytes`` and ``peak_bytes`` include the
    tracked baseline. A storage resized in place (``out=`` arguments) is re-counted at its new
    size.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sizes: dict[int, int] = {}
        self._finalizers: dict[int, weakref.finalize] = {}
        self.live_bytes = 0
        self.peak_bytes = 0

    def _release(self, key: int) -> None:
        self._finalizers.pop(key, None)
        self.live_bytes -= self._sizes.pop(key, 0)

    def close(self) -> None:
        """Stop following the storages still alive (drops the finalizers; the figures stay)."""
        for fin in self._finalizers.values():
            fin.detach()
        self._finalizers.clear()
        self._sizes.clear()

    def _count(self, storage: torch.UntypedStorage) -> None:
        key = _storage_key(storage)
        size = int(storage.nbytes())
        old = self._sizes.get(key)
        if old is None:
            self._sizes[key] = size
            self.live_bytes += size
            self._finalizers[key] = weakref.finalize(storage, self._release, key)
        elif old != size:
            self._sizes[key] = size
            self.live_bytes += size - old
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def track(self, tensors: Iterable[torch.Tensor]) -> int:
        """Count the storages of pre-existing CPU ``tensors`` (each storage once); returns the
        bytes newly counted."""
        before = self.live_bytes
        for storage in _cpu_storages(list(tensors)):
            self._count(storage)
        return self.live_bytes - before

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        outputs = _cpu_storages(out)
        if not outputs:
            return out
        input_keys = {_storage_key(s) for s in _cpu_storages((args, kwargs))}
        for storage in outputs:
            key = _storage_key(storage)
            # A view or in-place result of an input is not a new allocation, unless the input is
            # tracked and was resized in place, or is the fresh tensor torch.tensor(data) lifts.
            if key in self._sizes or key not in input_keys or func in _LIFT_OPS:
                self._count(storage)
        return out


def _cuda_peak(step: Callable[[], object], device: torch.device) -> MemoryResult:
    """Allocator peak of one step on a CUDA device (baseline = bytes allocated before it)."""
    sync = cuda_sync_fn(device)  # raises a typed error where CUDA is unusable
    sync()
    # Cached-but-free blocks are not counted by memory_allocated; emptying the cache only makes
    # the step pay cudaMalloc again, so it is left alone.
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    step()
    sync()
    peak = torch.cuda.max_memory_allocated(device)
    return MemoryResult(int(peak), int(baseline), CUDA_SOURCE)


def _cpu_peak(step: Callable[[], object], baseline_tensors: Iterable[torch.Tensor]) -> MemoryResult:
    """Tracked-tensor peak of one step on the CPU (baseline = storages of ``baseline_tensors``)."""
    tracker = CpuTensorTracker()
    baseline = tracker.track(baseline_tensors)
    try:
        with tracker:
            step()
    finally:
        tracker.close()
    return MemoryResult(int(tracker.peak_bytes), int(baseline), CPU_SOURCE)


def drop_gradients(tensors: Iterable[torch.Tensor]) -> int:
    """Set ``.grad = None`` on the leaf tensors among ``tensors``; returns how many had one."""
    dropped = 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_leaf and t.requires_grad and t.grad is not None:
            t.grad = None
            dropped += 1
    return dropped


def measure_peak_memory(
    step: Callable[[], object],
    device: torch.device | str,
    baseline_tensors: Iterable[torch.Tensor] = (),
    *,
    drop_gradients_first: bool = True,
) -> MemoryResult:
    """Run ``step`` once and return the peak memory during it (see the module docstring).

    Pass ``baseline_tensors`` (parameters, buffers, the input): on CPU the tracker cannot see
    what existed before the step otherwise, and the baseline is then 0; on every device their
    gradients are dropped before the baseline is read (``drop_gradients_first``), since the
    step's ``zero_grad(set_to_none=True)`` would free them anyway. On CUDA the baseline itself
    is the allocator's: it knows everything resident. Run it outside the timed rounds: the CPU
    tracker slows every op down.
    """
    if not callable(step):
        raise InvalidInputError(f"step must be a callable taking no arguments; got {step!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidInputError(f"{device!r} is not a torch device: use 'cpu' or 'cuda:N'") from e
    tensors = list(baseline_tensors)
    if drop_gradients_first and dev.type in ("cuda", "cpu"):
        drop_gradients(tensors)
    if dev.type == "cuda":
        return _cuda_peak(step, dev)
    if dev.type == "cpu":
        return _cpu_peak(step, tensors)
    return MemoryResult(None, None, f"unavailable: no peak-memory source for device {dev.type!r}")
