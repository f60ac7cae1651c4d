"""Small models for runner and plugin tests, importable as ``tests.models_for_tests:NAME``
or, from a pytester directory, by path (see tests/test_plugin.py)."""

from __future__ import annotations

import time

import torch
from torch import nn


class Sleeper(nn.Module):
    """A model whose forward sleeps a known time: ground truth for latency."""

    def __init__(self, seconds: float = 0.01) -> None:
        super().__init__()
        self.seconds = seconds
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            time.sleep(self.seconds)
        return self.fc(x.flatten(1)[:, :4])


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )


tiny_cnn.input_shape = (3, 16, 16)  # type: ignore[attr-defined]


def sleeper_10ms() -> nn.Module:
    return Sleeper(0.01)


sleeper_10ms.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _Failing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta" and x.shape[0] >= 2:
            raise ValueError(f"this model refuses batch {x.shape[0]}")
        return self.fc(x.flatten(1)[:, :4])


def failing_above_batch_1() -> nn.Module:
    return _Failing()


failing_above_batch_1.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _OOM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta" and x.shape[0] >= 4:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated at batch {x.shape[0]})")
        return self.fc(x.flatten(1)[:, :4])


def oom_from_batch_4() -> nn.Module:
    return _OOM()


oom_from_batch_4.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _Erf(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.erf(x) + torch.special.erf(x)


def with_uncounted_op() -> nn.Module:
    """A conv followed by an op (erf) that no MAC counter has a formula for."""
    return nn.Sequential(nn.Conv2d(1, 1, 1), _Erf())


with_uncounted_op.input_shape = (1, 4, 4)  # type: ignore[attr-defined]
