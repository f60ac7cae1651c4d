"""Case: one point of a benchmark grid, frozen and hashable, and the readers of what it is made of
(input shapes, dtype names). Torch-free: a dtype is its name here; ``Case.torch_dtype`` imports
torch when a runner asks for it. The grid of cases is ``harness.run.grid``'s."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from harness.core import units
from harness.core.errors import InvalidInputError

# The dtypes a case may ask for, by name, with their size in bytes.
DTYPES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
DTYPE_METHODS = ("autocast", "cast")
MEMORY_FORMATS = ("contiguous", "channels_last")
MODES = ("inference", "training")
# The devices a case may name (harness.measure.devices resolves them).
DEVICE_FORMS = "auto, cpu, cuda or cuda:N"


def dtype_name(name: object) -> str:
    """``"float16"``, ``"fp16"``, ``"half"`` or a torch.dtype -> its name (``"float16"``); else a
    clear error."""
    if type(name).__module__ == "torch":  # a torch.dtype, without importing torch
        text = str(name).removeprefix("torch.")
        if text in DTYPES:
            return text
        raise InvalidInputError(f"unsupported dtype {name}; use one of {', '.join(DTYPES)}")
    aliases = {
        "fp32": "float32",
        "float": "float32",
        "fp16": "float16",
        "half": "float16",
        "bf16": "bfloat16",
        "fp64": "float64",
        "double": "float64",
    }
    key = aliases.get(str(name).lower(), str(name).lower().removeprefix("torch."))
    if key not in DTYPES:
        raise InvalidInputError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return key


def parse_dtype(name: object) -> Any:
    """The torch.dtype of ``name`` (read as ``dtype_name`` reads it); imports torch."""
    import torch

    return getattr(torch, dtype_name(name))


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"3x224x224"`` (or ``"3,224,224"``, or a sequence) -> (3, 224, 224), without batch."""
    if isinstance(text, str):
        parts = re.split(r"[x,*\s]+", text.strip().lower())
        try:
            shape = tuple(int(p) for p in parts if p.strip())
        except ValueError:
            raise InvalidInputError(
                f"cannot read input shape {text!r}: write it as CxHxW (3x224x224) or CxL (1x5000)"
            ) from None
    else:
        shape = tuple(int(d) for d in text)
    if len(shape) == 4 and all(d >= 1 for d in shape):
        raise InvalidInputError(
            f"input shape {units.shape(shape)} has 4 dimensions: give CxHxW without the batch, "
            f"e.g. {units.shape(shape[1:])} (the batch size is set apart: --batch, batch_sizes)"
        )
    if len(shape) not in (2, 3) or any(d < 1 for d in shape):
        raise InvalidInputError(
            f"input shape {shape} is not valid: give CxHxW (3x224x224) or CxL (1x5000) with "
            "positive sizes, without the batch dimension"
        )
    if math.prod(shape) > MAX_SAMPLE_VALUES:
        raise InvalidInputError(
            f"input shape {units.shape(shape)} is too large: one sample holds "
            f"{math.prod(shape):.3g} values, more than a tensor can address (2**60 values of 8 "
            "bytes in 2**63 bytes); give sizes such as 3x224x224"
        )
    return shape


# torch's sizes are int64: a tensor holds at most 2**63 - 1 bytes, 2**60 values of 8 bytes
MAX_SAMPLE_VALUES = 2**60


def shape_str(shape: Sequence[int]) -> str:
    return units.shape(shape)


@dataclass(frozen=True)
class Case:
    """What to run: a model at one input size, batch size, precision, layout and mode.

    ``dtype_method`` says how a reduced precision is applied: ``autocast`` (weights stay
    float32, ops run in ``dtype`` where torch's autocast lists allow) or ``cast`` (weights and
    input converted). None picks the default: ``cast`` for inference (what is deployed; under
    ``inference_mode`` autocast also re-casts every weight in every round, 1.2-6x slower on
    this CPU: benchmarks/bench_autocast_cost.py), ``autocast`` for training (mixed precision
    keeps float32 master weights). float64 is always a cast (autocast has no float64: on the
    CPU it turns itself off and the case would run float32 under a float64 label). It does not
    apply to float32 (recorded as None). ``cast`` and ``autocast`` say which one runs: the one
    place the rule is decided.
    """

    model: str
    input_shape: tuple[int, ...]
    batch_size: int = 1
    dtype: str = "float32"
    memory_format: str = "contiguous"
    mode: str = "inference"
    compile: bool = False
    device: str = "cpu"
    dtype_method: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", parse_shape(self.input_shape))
        object.__setattr__(self, "dtype", dtype_name(self.dtype))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise InvalidInputError(f"batch size must be an integer, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch size must be at least 1, got {self.batch_size}")
        if self.memory_format not in MEMORY_FORMATS:
            raise InvalidInputError(
                f"unknown memory format {self.memory_format!r}; use one of "
                f"{', '.join(MEMORY_FORMATS)}"
            )
        if self.memory_format == "channels_last" and len(self.input_shape) != 3:
            raise InvalidInputError("channels_last needs a CxHxW input (4-D tensors)")
        if self.mode not in MODES:
            raise InvalidInputError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise InvalidInputError(
                f"threads must be a positive integer (or None: torch's default), got "
                f"{self.threads!r}"
            )
        if self.dtype_method is not None and self.dtype_method not in DTYPE_METHODS:
            raise InvalidInputError(
                f"unknown dtype method {self.dtype_method!r}; use one of {', '.join(DTYPE_METHODS)}"
            )
        if self.dtype == "float32":
            method = None
        elif self.dtype == "float64":
            method = "cast"
        elif self.dtype_method is not None:
            method = self.dtype_method
        else:
            method = "cast" if self.mode == "inference" else "autocast"
        object.__setattr__(self, "dtype_method", method)

    @property
    def cast(self) -> bool:
        """Weights and input are converted to the dtype (a reduced precision cast, float64)."""
        return self.dtype_method == "cast"

    @property
    def autocast(self) -> bool:
        """Weights stay float32 and ops run in the dtype under torch.autocast."""
        return self.dtype_method == "autocast"

    @property
    def torch_dtype(self) -> Any:
        """The case's ``torch.dtype`` (imports torch)."""
        return parse_dtype(self.dtype)

    @property
    def itemsize(self) -> int:
        """Bytes per value of the case's dtype."""
        return DTYPES[self.dtype]

    @property
    def full_input_shape(self) -> tuple[int, ...]:
        return (self.batch_size, *self.input_shape)

    @property
    def case_id(self) -> str:
        """A readable, stable id: also the pytest id of the case."""
        parts = [self.model, shape_str(self.input_shape), f"b{self.batch_size}", self.dtype]
        if self.dtype != "float32":
            parts.append(self.dtype_method)
        parts += [
            self.memory_format,
            self.mode,
            "compiled" if self.compile else "eager",
        ]
        if self.threads is not None:
            parts.append(f"t{self.threads}")
        parts.append(self.device)
        return "-".join(parts)

    @property
    def series(self) -> Case:
        """The case at batch 1: the key of its batch sweep (every other setting the same), for
        the until-out-of-memory memo and the budget's order."""
        return replace(self, batch_size=1)

    def __str__(self) -> str:
        return self.case_id

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = shape_str(self.input_shape)
        d["compiled"] = d.pop("compile")
        return d
