"""One case made runnable: the model and input on the device and the step one round runs.

Inference: the bare call ``partial(model, input)``; ``contexts()`` (inference_mode, autocast)
is entered once around all rounds by the caller, so nothing else sits in the timed region.
Training: zero_grad, forward (under autocast for a reduced dtype), loss, backward, optimizer
step (with a GradScaler for float16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from harness.core.spec import Case
from harness.models.resolve import get_model


def training_loss(output: Any) -> torch.Tensor:
    """A loss for a training step: cross entropy on random labels for (N, classes) logits."""
    out = output[0] if isinstance(output, (tuple, list)) else output
    if hasattr(out, "logits"):  # torchvision's GoogLeNetOutputs / InceptionOutputs
        out = out.logits
    if out.ndim == 2:
        target = torch.zeros(out.shape[0], dtype=torch.long, device=out.device)
        return nn.functional.cross_entropy(out.float(), target)
    return out.float().square().mean()


class ModelCache:
    """The last model built, handed to the next case with the same key instead of building it
    again: a sweep's batch sizes (and compiled and eager variants) share one model. Building is
    not free: VGG-16's weight initialisation alone takes about a second on a CPU.

    The key is (model, input shape, weight dtype, memory format, mode, device): whatever changes
    the module itself. One model is kept at a time; a new key drops the old model before the
    new one is built, so two never sit in memory together.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._model: nn.Module | None = None
        self.builds = 0
        self.reuses = 0

    @staticmethod
    def key(case: Case, device: torch.device, weight_dtype: torch.dtype) -> tuple:
        return (
            case.model,
            case.input_shape,
            str(weight_dtype),
            case.memory_format,
            case.mode,
            str(device),
        )

    def get(self, key: tuple, build: Callable[[], nn.Module]) -> nn.Module:
        if key == self._key and self._model is not None:
            self.reuses += 1
            for p in self._model.parameters():  # a training case's gradients are not kept
                p.grad = None
            return self._model
        self.clear()
        model = build()
        self.builds += 1
        self._key, self._model = key, model
        return model

    def clear(self) -> None:
        self._key = self._model = None


@dataclass
class PreparedStep:
    model: nn.Module
    inputs: torch.Tensor
    step: Callable[[], object]
    contexts: Callable[[], contextlib.AbstractContextManager]
    tensors: list[torch.Tensor]


def _build(case: Case, device: torch.device, weight_dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    with device:
        model = get_model(case.model)
    model = model.to(device)
    if weight_dtype != torch.float32:
        model = model.to(weight_dtype)
    if case.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_step(
    case: Case, device: torch.device, models: ModelCache | None = None
) -> PreparedStep:
    """Build the model (or take it from ``models``) and input on the device and the step that
    one round runs."""
    cast = case.cast  # the Case decides (float64 is always a cast)
    weight_dtype = case.torch_dtype if cast else torch.float32
    if models is None:
        model = _build(case, device, weight_dtype)
    else:
        key = ModelCache.key(case, device, weight_dtype)
        model = models.get(key, lambda: _build(case, device, weight_dtype))
    torch.manual_seed(0)
    input_dtype = case.torch_dtype if cast else torch.float32
    inputs = torch.randn(case.full_input_shape, device=device, dtype=input_dtype)
    if case.memory_format == "channels_last":
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    training = case.mode == "training"
    model.train(training)
    runnable: Callable[..., Any] = torch.compile(model) if case.compile else model
    use_autocast = case.autocast

    def contexts() -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        if not training:
            stack.enter_context(torch.inference_mode())
            if use_autocast:
                stack.enter_context(torch.autocast(device.type, dtype=case.torch_dtype))
        return stack

    if not training:
        # The step is the bare call: contexts are entered once around all rounds, so nothing
        # but the forward pass sits in the timed region.
        step: Callable[[], object] = partial(runnable, inputs)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        scaler = torch.amp.GradScaler(device.type, enabled=use_autocast and case.dtype == "float16")

        def step() -> object:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=case.torch_dtype, enabled=use_autocast):
                loss = training_loss(runnable(inputs))
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            return loss

    tensors = [*model.parameters(), *model.buffers(), inputs]
    return PreparedStep(model, inputs, step, contexts, tensors)
