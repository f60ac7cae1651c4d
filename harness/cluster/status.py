"""The status of a sweep: per shard complete, running, incomplete (with its missing cases) or
missing, from the plan (cluster/plan.py) and the rows in every host's leaf of each shard."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.cluster.plan import read_plan
from harness.cluster.shard import row_key
from harness.cluster.tree import counts_as_done, is_locked, read_rows
from harness.core.errors import InvalidInputError
from harness.results import tree as layout
from harness.results.parts import PARTS_SUFFIX


@dataclass
class ShardState:
    index: int
    count: int
    planned: int | None  # None: no plan yet (no shard has collected)
    done: int = 0
    rows: int = 0
    hosts: list[str] = field(default_factory=list)
    merged: bool = False  # every leaf of the shard merged (its run ended)
    complete: bool = False  # every leaf merged with run_complete, and every planned case done
    running: bool = False  # some leaf locked by a live writer
    missing: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.complete:
            return "complete"
        if self.running:
            return "running"
        if not self.hosts:
            return "missing"
        return "incomplete"

    def line(self) -> str:
        planned = "?" if self.planned is None else str(self.planned)
        where = f" on {', '.join(self.hosts)}" if self.hosts else ""
        text = f"shard {self.index}/{self.count}: {self.state}, {self.done}/{planned} cases{where}"
        if self.state == "incomplete" and self.missing:
            text += f"; missing e.g. {self.missing[0]}"
        return text


@dataclass
class SweepStatus:
    sweep: str
    root: Path
    shards: list[ShardState]

    @property
    def complete(self) -> bool:
        return bool(self.shards) and all(s.complete for s in self.shards)

    def incomplete(self) -> list[int]:
        return [s.index for s in self.shards if not s.complete]


def sweep_status(root: str | os.PathLike, sweep: str, count: int | None = None) -> SweepStatus:
    """Every shard of ``sweep`` (``count`` shards when the plan is not written yet)."""
    root = Path(root)
    if not layout.sweep_dir(root, sweep).is_dir():
        raise InvalidInputError(
            f"no sweep {sweep!r} in {root}; its sweeps: {', '.join(layout.sweeps(root)) or 'none'}"
        )
    plan = read_plan(root, sweep)
    leaves = layout.leaves(root, sweep)
    if plan is not None:
        count = int(plan["shards"])
    elif count is None:
        found = {layout.parse_leaf(d) for d in leaves}
        count = max((c for _, c in filter(None, found)), default=0)
    states = []
    for index in range(1, count + 1):
        mine = [d for d in leaves if layout.parse_leaf(d) == (index, count)]
        planned_keys = (
            {k for k, s in plan["cases"].items() if s == index} if plan is not None else None
        )
        state = ShardState(index, count, None if planned_keys is None else len(planned_keys))
        done: set[str] = set()
        merged_all = bool(mine)
        complete_flags = []
        for leaf in mine:
            state.hosts.append(leaf.parent.name.removeprefix("host="))
            state.running |= is_locked(leaf)
            rows = _leaf_rows(leaf)
            if rows is None:
                merged_all = False
                continue
            state.rows += len(rows["keys"])
            done |= {k for k, ok in zip(rows["keys"], rows["done"], strict=True) if ok}
            merged_all &= rows["merged"]
            complete_flags.append(rows["complete"])
        state.done = len(done if planned_keys is None else done & planned_keys)
        state.merged = merged_all
        if planned_keys is not None:
            state.missing = sorted(planned_keys - done)
            # every case done, nothing writing, every attempt merged, and one ended complete
            # (an attempt killed on another host is merged incomplete by the one that finished)
            state.complete = (
                merged_all and not state.running and not state.missing and any(complete_flags)
            )
        states.append(state)
    return SweepStatus(sweep, root, states)


def _leaf_rows(leaf: Path) -> dict[str, Any] | None:
    frame = read_rows([leaf])
    if frame is None:
        return None
    keys = [
        row_key(c, d if isinstance(d, str) else None)
        for c, d in zip(frame["case_id"], frame["device"], strict=True)
    ]
    done = [counts_as_done(s, e) for s, e in zip(frame["status"], frame["error"], strict=True)]
    merged = not any(leaf.glob(f"*{PARTS_SUFFIX}"))
    complete = merged and _merged_complete(leaf)
    return {"keys": keys, "done": done, "merged": merged, "complete": complete}


def _merged_complete(leaf: Path) -> bool:
    """Whether the leaf's merged cases file says its run completed."""
    for f in leaf.glob("*.parquet"):
        if f.name.endswith((".layers.parquet", ".power.parquet")):
            continue
        with contextlib.suppress(pa.ArrowException, OSError):
            flags = pq.read_table(f, columns=["run_complete"]).column(0).to_pylist()
            if flags and all(flags):
                return True
    return False
