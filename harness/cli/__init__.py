"""`cnnbench` (and `python -m harness`): ``main`` and one module per sub-command."""

from __future__ import annotations

from harness.cli.main import main

__all__ = ["main"]
