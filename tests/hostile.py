"""Models a hostile (or careless) user hands the harness, importable as ``hostile:NAME`` with
tests/ on ``PYTHONPATH`` (as issue 24 reproduces them) or as ``tests.hostile:NAME``.

Each misbehaves only in a real forward: on the meta device (the static profile) it is a tiny,
well-formed conv net, so the harness gets as far as running it.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from torch import nn

INPUT_SHAPE = (3, 16, 16)


class _Tiny(nn.Module):
    """A tiny conv net (conv, ReLU, pool, linear): 4 * 27 + 4 + 4 * 2 + 2 = 122 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def misbehave(self, x: torch.Tensor) -> None:
        """What a real (non-meta) forward does before computing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.misbehave(x)
        return self.head(self.conv(x))


class _Hang(_Tiny):
    def misbehave(self, x: torch.Tensor) -> None:
        mark = os.environ.get("HOSTILE_HANG_MARK")
        if mark:  # a test waits for the hang to begin
            with open(mark, "w"):
                pass
        time.sleep(10**6)  # a forward that never returns (a deadlock, a wait on a dead peer)


class _Abort(_Tiny):
    def misbehave(self, x: torch.Tensor) -> None:
        os.abort()


class _Raises(_Tiny):
    def misbehave(self, x: torch.Tensor) -> None:
        raise RuntimeError("hostile: this forward always fails")


class _Chatty(_Tiny):
    """Prints ``CHATTY_BYTES`` (1 MB unless set) to stderr on every forward."""

    def misbehave(self, x: torch.Tensor) -> None:
        n = int(os.environ.get("CHATTY_BYTES", str(1 << 20)))
        sys.stderr.write(("x" * 1023 + "\n") * (n // 1024))
        sys.stderr.flush()


def tiny() -> nn.Module:
    return _Tiny()


def hang() -> nn.Module:
    return _Hang()


def abort() -> nn.Module:
    return _Abort()


def raises() -> nn.Module:
    return _Raises()


def chatty() -> nn.Module:
    return _Chatty()


def one_thread() -> nn.Module:
    """A factory that sets torch's intra-op threads to 1 (as some libraries do on import)."""
    torch.set_num_threads(1)
    return _Tiny()


class _OneThreadForward(_Tiny):
    def misbehave(self, x: torch.Tensor) -> None:
        torch.set_num_threads(1)  # in the timed step itself


def one_thread_forward() -> nn.Module:
    """A model whose forward sets torch's intra-op threads to 1 on every call."""
    return _OneThreadForward()


def float64_default() -> nn.Module:
    """A factory that switches torch's default dtype to float64 and leaves it so."""
    torch.set_default_dtype(torch.float64)
    return _Tiny()


for _factory in (tiny, hang, abort, raises, chatty, one_thread, one_thread_forward,
                 float64_default):  # fmt: skip
    _factory.input_shape = INPUT_SHAPE  # type: ignore[attr-defined]
