"""Comparing runs, torch-free: the case key join, ratios with intervals that resample windows
and samples, verdicts by a stated rule, gates."""

from __future__ import annotations

from harness.compare.compare import Comparison, compare, compare_across, compare_runs

__all__ = ["Comparison", "compare", "compare_across", "compare_runs"]
