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


class _Burst(nn.Module):
    """For the first ``burst_s`` seconds after its first real call, every other call takes 10x
    as long (a neighbour's burst of load), then steady: a measurement inside the burst is noisy,
    one taken after it is not."""

    def __init__(self, seconds: float, burst_s: float) -> None:
        super().__init__()
        self.seconds, self.burst_s, self.calls = seconds, burst_s, 0
        self.started: float | None = None
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            now = time.monotonic()
            self.started = self.started if self.started is not None else now
            self.calls += 1
            slow = now - self.started < self.burst_s and self.calls % 2 == 0
            time.sleep(self.seconds * (10 if slow else 1))
        return self.fc(x.flatten(1)[:, :4])


def burst_then_steady() -> nn.Module:
    return _Burst(0.002, 1.5)


burst_then_steady.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _Outliers(nn.Module):
    """Every fifth call takes 10x as long (20% of calls): the median must not move."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.calls = seconds, 0
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.calls += 1
            time.sleep(self.seconds * (10 if self.calls % 5 == 0 else 1))
        return self.fc(x.flatten(1)[:, :4])


def outliers_20_percent() -> nn.Module:
    return _Outliers(0.002)


outliers_20_percent.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _FastAfterWarmup(nn.Module):
    """Calls take ``slow_s`` during the first ``slow_for_s`` seconds after the first real call,
    then ``fast_s``: rounds planned from the warm-up's calls run ``slow_s / fast_s`` times
    shorter than planned (a step that speeds up once its warm-up is over)."""

    def __init__(self, slow_s: float, fast_s: float, slow_for_s: float) -> None:
        super().__init__()
        self.slow_s, self.fast_s, self.slow_for_s = slow_s, fast_s, slow_for_s
        self.started: float | None = None
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            now = time.monotonic()
            self.started = self.started if self.started is not None else now
            slow = now - self.started < self.slow_for_s
            time.sleep(self.slow_s if slow else self.fast_s)
        return self.fc(x.flatten(1)[:, :4])


def fast_after_warmup() -> nn.Module:
    return _FastAfterWarmup(0.02, 0.001, 0.3)


fast_after_warmup.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _Abort(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            import os

            os.abort()  # as a segfaulting extension would: the process dies
        return self.fc(x.flatten(1)[:, :4])


def aborts_in_forward() -> nn.Module:
    return _Abort()


aborts_in_forward.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _Exit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            import sys

            sys.exit(3)
        return self.fc(x.flatten(1)[:, :4])


def exits_in_forward() -> nn.Module:
    return _Exit()


exits_in_forward.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _DataDependent(nn.Module):
    """Control flow that reads a tensor's value: the meta device cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean(dim=(2, 3))
        if y.mean() > 0:  # reads a value
            y = y * 2
        return self.fc(y)


def data_dependent() -> nn.Module:
    return _DataDependent()


data_dependent.input_shape = (3, 8, 8)  # type: ignore[attr-defined]


class _Sticky(nn.Module):
    """Raises what CUDA raises after an illegal memory access (the context is then lost)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.fc(x.flatten(1)[:, :4])


def sticky_cuda_error() -> nn.Module:
    return _Sticky()


sticky_cuda_error.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


class _SlowsDown(nn.Module):
    """2 ms a call for the first ``fast_calls`` real calls, then ``slow_s`` a call: the windows
    measured after the switch hold the same rounds at 75x the time."""

    def __init__(self, fast_calls: int, slow_s: float) -> None:
        super().__init__()
        self.fast_calls, self.slow_s, self.calls = fast_calls, slow_s, 0
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.calls += 1
            time.sleep(0.002 if self.calls <= self.fast_calls else self.slow_s)
        return self.fc(x.flatten(1)[:, :4])


def fast_then_slow() -> nn.Module:
    return _SlowsDown(24, 0.15)


fast_then_slow.input_shape = (1, 2, 2)  # type: ignore[attr-defined]
