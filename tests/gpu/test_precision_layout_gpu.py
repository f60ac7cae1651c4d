"""Precision and memory layout on a GPU, checked on the tensors the kernels really get: fp16
training under autocast with a GradScaler, float64 as a cast, channels_last for model and input.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.core.spec import Case
from harness.run.step import prepare_step


def _conv_dtypes_and_layouts(model: nn.Module) -> list[tuple[torch.dtype, bool, bool]]:
    """For each conv call of the next forward: (output dtype, input channels_last, output
    channels_last)."""
    seen: list[tuple[torch.dtype, bool, bool]] = []

    def hook(_m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        x = args[0]
        seen.append(
            (
                out.dtype,
                x.is_contiguous(memory_format=torch.channels_last),
                out.is_contiguous(memory_format=torch.channels_last),
            )
        )

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    return seen


def test_fp16_training_with_grad_scaler(cuda: torch.device) -> None:
    case = Case("resnet18", (3, 64, 64), 16, dtype="float16", mode="training", device=str(cuda))
    prepared = prepare_step(case, cuda)
    before = [p.detach().clone() for p in prepared.model.parameters()]
    seen = _conv_dtypes_and_layouts(prepared.model)
    # 10 steps: the scaler's first steps may overflow at its initial scale (65536) and be
    # skipped while it backs off; the later ones update the weights
    losses = [float(prepared.step().detach()) for _ in range(10)]
    torch.cuda.synchronize(cuda)
    # autocast: float32 master weights, float16 convolutions
    assert {p.dtype for p in prepared.model.parameters()} == {torch.float32}
    assert seen and {dtype for dtype, _, _ in seen} == {torch.float16}
    assert all(torch.isfinite(torch.tensor(losses)))
    # the scaler let the optimizer step: (nearly) every weight moved
    params = list(prepared.model.parameters())
    moved = [not torch.equal(a, p.detach()) for a, p in zip(before, params, strict=True)]
    assert sum(moved) >= len(moved) - 1, f"{sum(moved)} of {len(moved)} tensors moved"
    assert all(torch.isfinite(p).all() for p in params)


def test_float64_is_a_cast_on_cuda(cuda: torch.device) -> None:
    case = Case(
        "resnet18", (3, 64, 64), 2, dtype="float64", dtype_method="autocast", device=str(cuda)
    )
    prepared = prepare_step(case, cuda)
    seen = _conv_dtypes_and_layouts(prepared.model)
    with prepared.contexts():
        out = prepared.step()
    assert out.dtype == torch.float64
    assert {dtype for dtype, _, _ in seen} == {torch.float64}  # every conv, not just some


def test_channels_last_model_and_input(cuda: torch.device) -> None:
    case = Case("resnet18", (3, 224, 224), 8, memory_format="channels_last", device=str(cuda))
    prepared = prepare_step(case, cuda)
    assert prepared.inputs.is_contiguous(memory_format=torch.channels_last)
    assert not prepared.inputs.is_contiguous()  # really NHWC, not a 1x1 spatial edge case
    convs = [m for m in prepared.model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    seen = _conv_dtypes_and_layouts(prepared.model)
    with prepared.contexts():
        prepared.step()
    # cuDNN keeps channels_last: every conv got and gave NHWC tensors
    assert seen and all(inp and out for _, inp, out in seen), seen
