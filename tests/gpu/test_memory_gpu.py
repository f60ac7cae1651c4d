"""The CUDA allocator's peak against bytes computed by hand: analytic activation bounds for
inference, weights + momentum + input for the training baseline (the last step's gradients no
longer in it), and cuBLAS workspaces really released between cases."""

from __future__ import annotations

import torch

from harness.core.spec import Case
from harness.doctor import checks
from harness.measure.cuda_state import release_between_cases
from harness.measure.memory import measure_peak_memory
from harness.profile import profile
from harness.run.step import prepare_step

MIB = 1 << 20


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def test_inference_peak_lies_between_the_analytic_bounds(cuda: torch.device) -> None:
    check = checks.check_memory(cuda)  # resnet18, batch 32, float32, inference
    n = check.numbers
    assert n["source"] == "cuda_allocator"
    # at least the largest layer output must have been allocated; at most every output at once
    # plus 64 MiB of cuBLAS/cuDNN workspace
    assert n["largest_layer_output_bytes"] <= n["measured_bytes"], n
    assert n["measured_bytes"] <= n["all_layer_outputs_bytes"] + 64 * MIB, n
    assert check.status == checks.PASS


def test_training_baseline_is_weights_momentum_and_input(cuda: torch.device) -> None:
    case = Case("resnet18", (3, 224, 224), 16, mode="training", device=str(cuda))
    prepared = prepare_step(case, cuda)
    for _ in range(3):  # warm-up: SGD's momentum buffers exist from the first step on
        prepared.step()
    torch.cuda.synchronize(cuda)
    params = list(prepared.model.parameters())
    param_bytes = _bytes(params)
    assert all(p.grad is not None for p in params)  # the last step's gradients, alive
    release_between_cases(cuda)
    r = measure_peak_memory(prepared.step, cuda, baseline_tensors=prepared.tensors)
    assert r.peak_memory_bytes is not None and r.memory_baseline_bytes is not None
    resident = 2 * param_bytes + _bytes(prepared.model.buffers()) + _bytes([prepared.inputs])
    # the baseline: weights, momentum, buffers, input (allocator blocks round up to 512 bytes),
    # and no gradients
    assert resident <= r.memory_baseline_bytes <= resident + 8 * MIB, (r, resident)
    # the step allocates every gradient again on top of the baseline, and the activations
    acts = profile("resnet18", (3, 224, 224), 16).activation_bytes
    extra = r.peak_memory_bytes - r.memory_baseline_bytes
    assert extra >= param_bytes, (extra, param_bytes)
    assert extra <= param_bytes + 3 * acts + 64 * MIB, (extra, param_bytes, acts)


def test_cublas_workspaces_are_released_between_cases(cuda: torch.device) -> None:
    before = torch.cuda.memory_allocated(cuda)  # whatever earlier tests still hold
    keep = torch.empty(4 * MIB, dtype=torch.uint8, device=cuda)  # 4 MiB we hold on purpose
    a = torch.randn(1024, 1024, device=cuda)
    (a @ a).sum().item()  # cuBLAS runs: its workspace is allocated through the allocator
    del a
    torch.cuda.synchronize(cuda)
    released = release_between_cases(cuda)["cublas_workspace_bytes"]
    # the fixture released every workspace before the test: the matmul made a new one
    assert released is not None and released > 0, "torch kept the cuBLAS workspace"
    # after the release the allocator holds exactly what we keep: no workspace left behind
    after = torch.cuda.memory_allocated(cuda)
    assert after == before + 4 * MIB, (before, after, released)
    assert release_between_cases(cuda)["cublas_workspace_bytes"] == 0
    del keep
