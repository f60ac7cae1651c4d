"""Result files: the schema, the writer, the loader and the comparison of runs.

``harness.results.compare`` is the function (the module of the same name stays importable as
``from harness.results.compare import ...``).
"""

from __future__ import annotations

from harness.results import schema
from harness.results.compare import Comparison, compare, compare_runs
from harness.results.store import ResultWriter, load_results, new_run_id, result_files

__all__ = [
    "Comparison",
    "ResultWriter",
    "compare",
    "compare_runs",
    "load_results",
    "new_run_id",
    "result_files",
    "schema",
]
