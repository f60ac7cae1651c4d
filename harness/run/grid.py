"""Turn a suite's grid spec plus the user's settings into the list of Cases to run.

Configuration flows one way (as in pytest-benchmark): built-in defaults -> the suite's marker
(its ``quick`` or ``full`` block for the chosen scale) -> ini file -> command line. A user's
model pattern filters the suite's models; any other setting replaces the suite's value.
This module knows nothing about pytest: the plugin passes plain dicts.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.errors import InvalidInputError
from harness.core.spec import DTYPE_METHODS, MEMORY_FORMATS, MODES, Case, dtype_name, parse_shape

SCALES = ("quick", "full")
GRID_KEYS = (
    "models",
    "input_shapes",
    "batch_sizes",
    "dtypes",
    "memory_formats",
    "modes",
    "compile",
    "dtype_method",
    "threads",
)
DEFAULT_GRID: dict[str, Any] = {
    "input_shapes": None,
    "batch_sizes": (1,),
    "dtypes": ("float32",),
    "memory_formats": ("contiguous",),
    "modes": ("inference",),
    "compile": (False,),
    "dtype_method": None,  # the Case's default: cast for inference, autocast for training
    "threads": (None,),
}
MAX_BATCH = 1 << 20
COMPILE_CHOICES = {"off": (False,), "on": (True,), "both": (False, True)}


@dataclass(frozen=True)
class GridSettings:
    """The user's overrides (None: keep the suite's value)."""

    scale: str = "quick"
    models: tuple[str, ...] | None = None  # shell patterns that filter the suite's models
    batch_sizes: tuple[int, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    memory_formats: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    compile: str | None = None  # off | on | both
    dtype_method: str | None = None
    threads: tuple[int, ...] | None = None  # intra-op thread counts: a grid dimension
    input_shape: tuple[int, ...] | None = None  # replaces every model's input

    def __post_init__(self) -> None:
        """Check every value once, when the options are read: a typo is one usage line
        naming the option, not a collection error per suite function."""
        if self.scale not in SCALES:
            raise InvalidInputError(f"unknown scale {self.scale!r}; use one of {', '.join(SCALES)}")
        for dtype in self.dtypes or ():
            try:
                dtype_name(dtype)
            except InvalidInputError as exc:
                raise InvalidInputError(f"--cnn-dtypes: {exc}") from None
        for option, given, allowed in (
            ("--cnn-memory-formats", self.memory_formats, MEMORY_FORMATS),
            ("--cnn-modes", self.modes, MODES),
            ("--cnn-compile", (self.compile,) if self.compile else None, tuple(COMPILE_CHOICES)),
            (
                "--cnn-dtype-method",
                (self.dtype_method,) if self.dtype_method else None,
                DTYPE_METHODS,
            ),
        ):
            bad = [v for v in given or () if v not in allowed]
            if bad:
                raise InvalidInputError(
                    f"{option} must be one of {', '.join(allowed)}, got {', '.join(map(repr, bad))}"
                )


def parse_threads(text: str | Sequence[Any] | None, most: int) -> tuple[int, ...] | None:
    """``"1,2,4"`` -> (1, 2, 4): thread counts from 1 to ``most``; None or "" -> None."""
    items = split_list(text)
    if items is None:
        return None
    try:
        counts = tuple(int(i) for i in items)
    except ValueError:
        raise InvalidInputError(
            f"--cnn-threads must be whole numbers separated by commas (1,2,4), got {text!r}"
        ) from None
    bad = [c for c in counts if not 1 <= c <= most]
    if bad:
        raise InvalidInputError(
            f"--cnn-threads: {bad[0]} is not a usable thread count: use 1 to {most} "
            f"(4x the {most // 4} CPU(s) here)"
        )
    return tuple(dict.fromkeys(counts))


def split_list(text: str | Sequence[Any] | None) -> tuple[str, ...] | None:
    """``"1,8, 32"`` -> ("1", "8", "32"); None or "" -> None."""
    if text is None:
        return None
    items = text.replace(";", ",").split(",") if isinstance(text, str) else text
    out = tuple(str(i).strip() for i in items if str(i).strip())
    return out or None


def parse_batch_sizes(text: str | Sequence[Any] | None) -> tuple[int, ...] | None:
    items = split_list(text)
    if items is None:
        return None
    try:
        sizes = tuple(int(i) for i in items)
    except ValueError:
        raise InvalidInputError(
            f"batch sizes must be integers separated by commas (1,8,32), got {text!r}"
        ) from None
    if any(not 1 <= b <= MAX_BATCH for b in sizes):
        raise InvalidInputError(f"batch sizes must be from 1 to {MAX_BATCH:,}, got {text!r}")
    return sizes


def expand_models(patterns: Iterable[str]) -> list[str]:
    """Registered names for shell patterns (``vgg*``); non-pattern names pass through as is
    (so ``torchvision:resnet50`` or ``pkg.mod:factory`` work), unknown patterns raise."""
    from harness.models import list_models  # torch: only when a grid is built

    names: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matched = list_models(pattern)
            if not matched:
                raise InvalidInputError(
                    f"no registered model matches {pattern!r}; run `cnnbench models`"
                )
            names += [m for m in matched if m not in names]
        elif pattern not in names:
            names.append(pattern)
    return names


def resolve_spec(marker_kwargs: Mapping[str, Any], scale: str) -> dict[str, Any]:
    """Merge built-in defaults, the marker's top-level keys and its block for ``scale``."""
    if scale not in SCALES:
        raise InvalidInputError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    unknown = set(marker_kwargs) - set(GRID_KEYS) - set(SCALES)
    if unknown:
        raise InvalidInputError(
            f"unknown cnnbench marker key(s) {sorted(unknown)}; known: {', '.join(GRID_KEYS)}, "
            "quick={...}, full={...}"
        )
    spec = dict(DEFAULT_GRID)
    spec.update({k: v for k, v in marker_kwargs.items() if k in GRID_KEYS})
    block = marker_kwargs.get(scale) or {}
    bad = set(block) - set(GRID_KEYS)
    if bad:
        raise InvalidInputError(f"unknown key(s) {sorted(bad)} in the marker's {scale} block")
    spec.update(block)
    if not spec.get("models"):
        raise InvalidInputError("a cnnbench marker needs models=[...] (names or patterns)")
    return spec


def suite_models(marker_kwargs: Mapping[str, Any], scale: str) -> list[str]:
    """The models a suite function names at ``scale``, before the user's model filter."""
    if scale in marker_kwargs and marker_kwargs[scale] is None:
        return []
    return expand_models(resolve_spec(marker_kwargs, scale)["models"])


def unmatched_patterns(patterns: Iterable[str], models: Iterable[str]) -> list[str]:
    """The user's model patterns that match none of ``models`` (a typo, most likely)."""
    names = list(models)
    return [p for p in patterns if not any(fnmatch.fnmatchcase(m, p) for m in names)]


def build_cases(
    marker_kwargs: Mapping[str, Any], settings: GridSettings, device: str
) -> list[Case]:
    """The cases a suite function runs under the user's settings on ``device``.

    A marker whose block for the scale is ``None`` (``full=None``) runs nothing at that scale.
    """
    models = suite_models(marker_kwargs, settings.scale)
    if not models:
        return []
    spec = resolve_spec(marker_kwargs, settings.scale)
    if settings.models:
        models = [m for m in models if any(fnmatch.fnmatchcase(m, p) for p in settings.models)]
    compile_values = spec["compile"]
    if settings.compile is not None:  # checked by GridSettings
        compile_values = COMPILE_CHOICES[settings.compile]
    shapes = [settings.input_shape] if settings.input_shape else spec["input_shapes"]
    return sweep(
        models,
        input_shapes=shapes,
        batch_sizes=settings.batch_sizes or spec["batch_sizes"],
        dtypes=settings.dtypes or spec["dtypes"],
        memory_formats=settings.memory_formats or spec["memory_formats"],
        modes=settings.modes or spec["modes"],
        compile=compile_values,
        device=device,
        dtype_method=settings.dtype_method or spec["dtype_method"],
        threads=settings.threads or spec["threads"],
    )


def sweep(
    models: Iterable[str],
    *,
    input_shapes: Iterable[Sequence[int] | str] | None = None,
    batch_sizes: Iterable[int] = (1,),
    dtypes: Iterable[str] = ("float32",),
    memory_formats: Iterable[str] = ("contiguous",),
    modes: Iterable[str] = ("inference",),
    compile: Iterable[bool] = (False,),
    device: str = "cpu",
    dtype_method: str | None = None,
    threads: Iterable[int | None] = (None,),
) -> list[Case]:
    """Every combination of the given values; a model without ``input_shapes`` runs at its own
    default input (from the registry). channels_last is skipped for 1D models. The batch sizes
    vary fastest: the cases of one build (model, input, dtype, format, mode) follow each other,
    so the sweep's model cache builds it once (issue 22 item 11)."""
    from harness.models import get_entry  # torch: only when a grid is built

    cases: list[Case] = []
    for model in models:
        shapes = (
            [parse_shape(s) for s in input_shapes]
            if input_shapes is not None
            else [get_entry(model).input_shape]
        )
        for shape, dt, mf, mode, comp, th, bs in itertools.product(
            shapes, dtypes, memory_formats, modes, compile, threads, batch_sizes
        ):
            if mf == "channels_last" and len(shape) != 3:
                continue
            cases.append(Case(model, shape, bs, dt, mf, mode, comp, device, dtype_method, th))
    return cases
