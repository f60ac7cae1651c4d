"""The plan of a sweep (``sweep=ID/plan.json``): which shard runs each case. The first shard to
collect writes it (an atomic link: exactly one shard's plan is the sweep's); every later one
checks that it collected the same grid split the same way (other code or options on a node
would silently drop or double cases) and refuses to run otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.cluster.shard import Plan
from harness.cluster.tree import SweepError
from harness.core.errors import ResultFileError
from harness.results import tree as layout


def plan_path(root: str | os.PathLike, sweep: str) -> Path:
    return layout.sweep_dir(root, sweep) / layout.PLAN


def read_plan(root: str | os.PathLike, sweep: str) -> dict[str, Any] | None:
    path = plan_path(root, sweep)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ResultFileError(f"{path} is not a readable sweep plan ({exc})") from None


def record_plan(
    root: str | os.PathLike, sweep: str, plan: Plan, index: int, loads_s: Iterable[float]
) -> None:
    """Write the sweep's plan if no shard has yet; else check that ``plan`` is the same grid
    split the same way (a SweepError naming the difference otherwise)."""
    path = plan_path(root, sweep)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {
        "sweep": sweep,
        "shards": plan.count,
        "cases": dict(sorted(plan.shard_of.items())),
        "load_s": [round(x, 3) for x in loads_s],
        "written_by": {
            "shard": index,
            "host": socket.gethostname(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(mine, indent=1) + "\n")
    try:
        os.link(tmp, path)  # atomic: exactly one shard's plan is the sweep's
        return
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    stored = read_plan(root, sweep) or {}
    _same_plan(stored, mine, sweep, index, path)


def _same_plan(stored: dict[str, Any], mine: dict[str, Any], sweep: str, index: int, path: Path):
    count = mine["shards"]
    if stored.get("shards") != count:
        raise SweepError(
            f"sweep {sweep} has {stored.get('shards')} shards ({path}), this run says {count}: "
            f"run every shard with the same N in --cnn-shard=I/N, or start another --cnn-sweep"
        )
    theirs: dict[str, int] = stored.get("cases") or {}
    ours: dict[str, int] = mine["cases"]
    if theirs == ours:
        return
    extra = sorted(set(ours) - set(theirs))
    lost = sorted(set(theirs) - set(ours))
    moved = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
    by = stored.get("written_by", {})
    what = []
    if extra:
        what.append(f"{len(extra)} case(s) the plan lacks (e.g. {extra[0]})")
    if lost:
        what.append(f"{len(lost)} of the plan's case(s) missing (e.g. {lost[0]})")
    if moved:
        what.append(f"{len(moved)} case(s) on another shard (e.g. {moved[0]})")
    raise SweepError(
        f"shard {index}/{count} of sweep {sweep} collected another grid than the sweep's plan "
        f"(written by shard {by.get('shard')} on {by.get('host')}): {'; '.join(what)}; run every "
        "shard with the same code, suites and options, or start another --cnn-sweep"
    )
