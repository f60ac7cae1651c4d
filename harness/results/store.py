"""Result files, in one import: the writer (harness.results.writer), the part streams
(harness.results.parts) and the loader (harness.results.loader)."""

from __future__ import annotations

from harness.results.loader import load_results, result_files, scan_result_files
from harness.results.parts import PART_SUFFIX, PARTS_SUFFIX, PathLike, parts_dir
from harness.results.writer import ResultWriter, check_writable, merge_parts, new_run_id

__all__ = [
    "PARTS_SUFFIX",
    "PART_SUFFIX",
    "PathLike",
    "ResultWriter",
    "check_writable",
    "load_results",
    "merge_parts",
    "new_run_id",
    "parts_dir",
    "result_files",
    "scan_result_files",
]
