"""Shards: a deterministic, cost-balanced split of a grid of cases into N parts, so that any
scheduler (a Slurm job array, a Kubernetes indexed Job, a CI matrix) runs one sweep as N tasks.

``plan(cases, n, cost)`` is a pure function of the set of cases: every task computes the same
split from the same grid, whatever order it collected the cases in. The rule:

1. A model's cases form one group (its child process and model cache stay on one shard).
2. A group costing more than a share of the mean shard load (``SPLIT_SHARES``: half first) is
   split by model-cache key (model, input, dtype, layout, mode, compile: cases within a key only
   change the batch, so the cache still holds); a key's group still above it is split into
   single cases.
3. Groups, largest first (ties by name), go to the least loaded shard (ties: the lowest index):
   the longest-processing-time rule, within 4/3 of the best possible longest shard, and close
   to the mean when groups are small against it. A plan whose longest shard is more than
   ``BALANCE_TARGET`` times the mean is made again with a finer split.

Shards are numbered from 1 (``--cnn-shard=1/4`` ... ``4/4``, as Playwright's and Jest's
``--shard``). Torch-free unless the cost model profiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from harness.core.errors import InvalidInputError
from harness.core.spec import Case

MAX_SHARDS = 10_000
# A group above this share of the mean shard load is split; a plan whose longest shard is over
# BALANCE_TARGET x the mean is redone with the next, finer share (cache locality traded last).
SPLIT_SHARES = (0.5, 0.25, 0.1, 0.0)
BALANCE_TARGET = 1.1


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): shard 2 of 4, counted from 1; a clear error otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise InvalidInputError(
            f"--cnn-shard={text!r}: write I/N, shard I of N counted from 1 (1/4 ... 4/4)"
        )
    index, count = int(m[1]), int(m[2])
    if not 1 <= count <= MAX_SHARDS:
        raise InvalidInputError(
            f"--cnn-shard={text}: the number of shards must be from 1 to {MAX_SHARDS:,}, "
            f"got {count}"
        )
    if not 1 <= index <= count:
        raise InvalidInputError(
            f"--cnn-shard={text}: the shard must be from 1 to {count} (shards count from 1: "
            f"1/{count} ... {count}/{count})"
        )
    return index, count


def plan_key(case: Case) -> str:
    """A case's id with its device reduced to the device type (``cuda:0`` and ``cuda`` are one
    case: an xdist worker's and a single process's grids are the same grid)."""
    kind = "cuda" if case.device.startswith("cuda") else case.device
    return replace(case, device=kind).case_id


def row_key(case_id: str, device: str | None) -> str:
    """``plan_key`` of a result row, from its ``case_id`` and ``device`` columns."""
    if device and case_id.endswith("-" + device):
        kind = "cuda" if device.startswith("cuda") else device
        return case_id[: -len(device)] + kind
    return case_id


def cache_key(case: Case) -> tuple:
    return (
        case.model,
        case.input_shape,
        case.dtype,
        case.dtype_method,
        case.memory_format,
        case.mode,
        case.compile,
    )


@dataclass(frozen=True)
class Plan:
    """Which shard (1..count) runs each case, and each shard's estimated load in seconds."""

    count: int
    shard_of: dict[str, int]  # plan_key -> shard
    loads: tuple[float, ...]

    def shard(self, case: Case) -> int:
        return self.shard_of[plan_key(case)]

    def cases(self, index: int) -> list[str]:
        return sorted(k for k, s in self.shard_of.items() if s == index)

    @property
    def balance(self) -> float:
        """Longest shard / mean shard (1.0 is perfect)."""
        mean = sum(self.loads) / len(self.loads)
        return max(self.loads) / mean if mean > 0 else 1.0


def unit_cost(case: Case) -> float:
    return 1.0


def _groups(
    cases: Sequence[Case], cost: Callable[[Case], float], build_s: float, limit: float
) -> list[tuple[float, str, list[Case]]]:
    """(cost, name, cases) groups: whole models, split by cache key, then into single cases,
    wherever a group costs more than ``limit``."""

    def total(members: list[Case]) -> float:
        keys = {cache_key(c) for c in members}
        return sum(cost(c) for c in members) + build_s * len(keys)

    by_model: dict[str, list[Case]] = {}
    for c in cases:
        by_model.setdefault(c.model, []).append(c)
    out: list[tuple[float, str, list[Case]]] = []
    for model, members in by_model.items():
        whole = total(members)
        if whole <= limit:
            out.append((whole, model, members))
            continue
        by_key: dict[tuple, list[Case]] = {}
        for c in members:
            by_key.setdefault(cache_key(c), []).append(c)
        for part in by_key.values():
            name = plan_key(part[0])
            cost_part = total(part)
            if cost_part <= limit:
                out.append((cost_part, name, part))
            else:
                out += [(cost(c) + build_s, plan_key(c), [c]) for c in part]
    return out


def plan(
    cases: Iterable[Case],
    count: int,
    cost: Callable[[Case], float] = unit_cost,
    *,
    build_s: float | None = None,
    split_share: float | None = None,
) -> Plan:
    """Split ``cases`` (duplicates count once) into ``count`` shards; see the module doc.
    ``build_s``: what a new model-cache key costs (default: ``cost.build_s`` if it has one);
    ``split_share``: one share instead of trying ``SPLIT_SHARES`` in turn."""
    if not 1 <= count <= MAX_SHARDS:
        raise InvalidInputError(f"the number of shards must be from 1 to {MAX_SHARDS:,}")
    unique = {plan_key(c): c for c in cases}
    ordered = [unique[k] for k in sorted(unique)]
    build = float(getattr(cost, "build_s", 0.0) if build_s is None else build_s)
    costs = {plan_key(c): float(cost(c)) for c in ordered}
    shares = SPLIT_SHARES if split_share is None else (split_share,)
    best = _assign(ordered, count, costs, build, shares[0])
    for share in shares[1:]:
        if best.balance <= BALANCE_TARGET:
            break
        candidate = _assign(ordered, count, costs, build, share)
        if candidate.balance < best.balance:
            best = candidate
    return best


def _assign(
    ordered: list[Case], count: int, costs: dict[str, float], build: float, share: float
) -> Plan:
    def case_cost(c: Case) -> float:
        return costs[plan_key(c)]

    everything = sum(costs.values()) + build * len({cache_key(c) for c in ordered})
    limit = share * everything / count if count > 1 else float("inf")
    groups = _groups(ordered, case_cost, build, limit)
    groups.sort(key=lambda g: (-g[0], g[1]))
    loads = [0.0] * count
    shard_of: dict[str, int] = {}
    for group_cost, _, members in groups:
        target = min(range(count), key=lambda i: (loads[i], i))
        loads[target] += group_cost
        for c in members:
            shard_of[plan_key(c)] = target + 1
    return Plan(count, shard_of, tuple(loads))
