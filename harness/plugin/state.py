"""The run's state in the plugin: the settings (harness.plugin.settings) and what the run has
done so far, stashed on the pytest config under ``STATE``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.plugin.settings import RunSettings


@dataclass
class State(RunSettings):
    """The settings and what the run has done so far."""

    worker: str = "main"
    workers: int = 1
    cuda_index: int | None = None
    run_id: str | None = None
    started: float = field(default_factory=time.time)
    sweep: Any = None
    suite_models: set[str] = field(default_factory=set)
    extra_models: list[str] = field(default_factory=list)
    model_problems: list[tuple[str, str]] = field(default_factory=list)
    tests: set[str] = field(default_factory=set)
    total: int | None = None
    done: int = 0
    wall_s: float = 0.0
    paths: dict[str, Path] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    report_path: Path | None = None
    report_error: str | None = None
    write_error: str | None = None
    # pytest-xdist (harness.plugin.xdist): the controller's plan, a slot per worker
    placements: list[Any] = field(default_factory=list)
    free_slots: list[int] = field(default_factory=list)
    slot_of: dict[str, int] = field(default_factory=dict)
    node_errors: dict[str, str] = field(default_factory=dict)
    placement: Any = None  # a worker's own (harness.measure.gpus.Placement)
    refused: str | None = None  # a worker's refusal of the shard (harness.plugin.shard)
    stopped_by: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    incomplete: str | None = None  # why the run is not complete (harness.plugin.stop)
    stop_handler: Any = None  # the run's harness.plugin.stop.StopOnSignal


STATE = pytest.StashKey["State"]()
