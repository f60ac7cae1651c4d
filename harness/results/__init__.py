"""Result files: the writer, the loader, which runs speak for a configuration, and the verdict
of rows read from older files. Torch-free.

``compare``, ``compare_runs`` and ``Comparison`` moved to ``harness.compare`` (still reachable
here, with a DeprecationWarning); ``schema`` lives in ``harness.core.schema``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from harness.core import schema
from harness.results.store import ResultWriter, load_results, new_run_id, result_files

__all__ = ["ResultWriter", "load_results", "new_run_id", "result_files", "schema"]

_MOVED = {
    "compare": "harness.compare",
    "compare_runs": "harness.compare",
    "Comparison": "harness.compare",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"harness.results.{name} moved to {_MOVED[name]}.{name}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'harness.results' has no attribute {name!r}")
