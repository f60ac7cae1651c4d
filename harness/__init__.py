"""cnnbench: a benchmarking and profiling harness for convolutional neural networks.

The public face is imported lazily (PEP 562), so `cnnbench compare` and `cnnbench report`,
which read parquet only, start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Case": "harness.core.spec",
    "sweep": "harness.run.grid",
    "get_entry": "harness.models",
    "get_model": "harness.models",
    "list_models": "harness.models",
    "register_model": "harness.models.registry",
    "ModelProfile": "harness.profile",
    "profile": "harness.profile",
    "load_results": "harness.results",
}

__all__ = [  # noqa: RUF022 (kept in the order of _EXPORTS)
    "__version__",
    "Case",
    "sweep",
    "get_entry",
    "get_model",
    "list_models",
    "register_model",
    "ModelProfile",
    "profile",
    "load_results",
]

if TYPE_CHECKING:
    from harness.core.spec import Case
    from harness.models import get_entry, get_model, list_models
    from harness.models.registry import register_model
    from harness.profile import ModelProfile, profile
    from harness.results import load_results
    from harness.run.grid import sweep


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
