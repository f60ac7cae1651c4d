"""A shard's place in a run, for the pytest plugin: where it writes (``open_slot``: the leaf of
the results tree, locked, an earlier attempt's files reopened) and which collected cases it
runs (``select``: its part of the plan, less the cases done already). Knows nothing of pytest:
the plugin passes cases and gets flags back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cluster import shard as sharding
from harness.cluster.cost import CostModel, Timing
from harness.cluster.plan import record_plan
from harness.cluster.tree import ShardLock, SweepError, done_keys, reopen
from harness.core import units
from harness.core.spec import Case
from harness.results import tree as layout
from harness.results.parts import parts_dir
from harness.results.writer import check_writable, merge_parts


@dataclass
class ShardSlot:
    """Shard ``index`` of ``count`` of ``sweep``, writing into ``leaf`` of the tree at ``root``."""

    root: Path
    sweep: str
    index: int
    count: int
    leaf: Path
    lock: ShardLock | None = None
    reopened: int = 0  # rows of an earlier attempt this run joins

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count} of sweep {self.sweep}"

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def open_slot(
    root: str | os.PathLike, sweep: str, index: int, count: int, *, owner: bool
) -> ShardSlot:
    """The shard's leaf under the tree ``root`` (made a tree if it is not one). The ``owner``
    (the process that merges: pytest's main process or the xdist controller) locks the leaf and
    reopens an earlier attempt's merged files; an xdist worker only writes there."""
    layout.check_id(sweep)
    root = layout.mark_tree(check_writable(root))
    leaf = layout.leaf_dir(root, sweep, index, count, layout.host_name())
    slot = ShardSlot(root, sweep, index, count, leaf)
    if owner:
        slot.lock = ShardLock.acquire(leaf, slot.label)
        try:
            slot.reopened = reopen(leaf, sweep)
            _close_dead_attempts(slot)
        except BaseException:
            slot.release()
            raise
    return slot


def _close_dead_attempts(slot: ShardSlot) -> None:
    """Merge, as incomplete, the parts an earlier attempt of this shard left on another host
    (a task killed there; its rows count as done here): the shard then ends merged."""
    for other in layout.leaves(slot.root, slot.sweep):
        if other == slot.leaf or layout.parse_leaf(other) != (slot.index, slot.count):
            continue
        if not parts_dir(other, slot.sweep).is_dir():
            continue
        try:
            lock = ShardLock.acquire(other, slot.label)
        except SweepError:
            continue  # still being written: its own run merges it
        try:
            merge_parts(other, slot.sweep, complete=False)
        finally:
            lock.release()


@dataclass
class Selection:
    """Which of the collected items a shard runs (``keep``, in the items' order) and why."""

    keep: list[bool]
    mine: int  # this shard's cases in the plan
    done: int  # of those, done by an earlier attempt
    others: int  # cases of the other shards
    load_s: float  # the cost model's estimate of what is left to run here

    def line(self, label: str) -> str:
        left = self.mine - self.done
        text = f"cnnbench: {label}: {left} of the grid's {self.mine + self.others} cases"
        if self.done:
            text += f" ({self.done} done by an earlier run, left out)"
        if left:
            text += f", about {units.seconds(self.load_s)} by the cost model"
        return text


def select(
    cases: Sequence[Case | None],
    index: int,
    count: int,
    *,
    options: Any = None,
    slot: ShardSlot | None = None,
    cost: Any = None,
) -> Selection:
    """Flags for ``cases`` (None: an item that is not a case, run by shard 1 only): this shard's
    part of the plan, less the cases an earlier attempt did (with a ``slot``, which also
    records the plan in the tree or checks it against the recorded one)."""
    real = [c for c in cases if c is not None]
    model = cost or CostModel(Timing.of(options) if options is not None else Timing())
    plan = sharding.plan(real, count, model)
    done: set[str] = set()
    if slot is not None:
        record_plan(slot.root, slot.sweep, plan, index, plan.loads)
        done = done_keys(slot.root, slot.sweep, index, count)
    by_key = {sharding.plan_key(c): c for c in real}
    mine = {k for k, s in plan.shard_of.items() if s == index}
    left = mine - done
    keep = [index == 1 if c is None else sharding.plan_key(c) in left for c in cases]
    load = sum(float(model(by_key[k])) for k in left)
    return Selection(keep, len(mine), len(mine & done), len(plan.shard_of) - len(mine), load)
