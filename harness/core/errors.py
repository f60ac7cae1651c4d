"""The harness's typed errors: each says what was wrong and how to fix it.

The CLI prints any `HarnessError` as one line and exits 2; the runner turns one raised inside a
case into a row with status ``error``.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class UnknownModelError(HarnessError, KeyError):
    """A model name that no registry, package or module resolves."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateModelError(HarnessError, ValueError):
    """A second registration under a name already taken."""


class MissingDependencyError(HarnessError, ImportError):
    """An optional package (torchvision, timm, playwright...) is needed but not installed, or is
    installed but cannot be imported (a torchvision built for another torch)."""


class ModelBuildError(HarnessError, RuntimeError):
    """A model's own factory raised while building it (on the meta device, for a profile)."""


class InvalidInputError(HarnessError, ValueError):
    """A case's input is wrong: channels, rank, batch size, dtype, memory format, mode."""


class InputTooSmallError(InvalidInputError):
    """A spatial input so small that some layer's output would be empty."""


class DataDependentForwardError(InvalidInputError):
    """A forward whose control flow reads tensor values (``if x.mean() > 0``): the meta device
    holds no values, so such a model cannot be profiled statically."""


class MeasurementError(HarnessError, RuntimeError):
    """A measurement asked for on the command line could not be made (the case failed)."""


class ResultFileError(HarnessError, ValueError):
    """A file given as results that is missing, corrupt, or not a harness result file."""


def first_line(exc: BaseException, *, with_type: bool = True, limit: int | None = None) -> str:
    """One line that names ``exc``: ``"Type: first line of its message"`` (or the bare type
    when the message is empty; ``with_type=False``: the line alone, possibly empty), cut to
    ``limit`` characters. The one place the harness shortens an exception for a row or a
    terminal line."""
    lines = str(exc).strip().splitlines()
    line = lines[0].strip() if lines else ""
    if with_type:
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return line[:limit] if limit is not None else line
