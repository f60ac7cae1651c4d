"""A sweep in a results tree (layout: harness.results.tree): the plan every shard agrees on, the
lock of a shard being written, which of a shard's cases are done, a shard reopened for a re-run,
and the status of every shard (complete, incomplete, missing).

* **The plan** (``sweep=ID/plan.json``): the first shard to collect writes which shard runs
  each case; every later one checks that it collected the same grid (different code or options
  on two nodes would silently drop or double cases) and refuses to run otherwise.
* **One writer per shard.** A shard's leaf is locked (``fcntl.lockf`` on ``.shard.lock``: the
  kernel, or NFS's lock manager, releases it when the process dies, however it dies). A second
  run of the same shard at the same time is refused, naming the holder.
* **A re-run does only what is missing.** Cases with a row in any host's leaf of the shard are
  done (except rows that say the case never really ran: crashed, interrupted, budget, a broken
  process); a re-run on the same host joins the earlier attempt's files, so the merged file
  holds every row of the shard and is complete.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.cluster.shard import Plan, row_key
from harness.core import schema
from harness.core.errors import HarnessError, InvalidInputError, ResultFileError
from harness.results import tree as layout
from harness.results.loader import load_results
from harness.results.parts import PART_SUFFIX, PARTS_SUFFIX, parts_dir

LOCK = ".shard.lock"
REOPENED = "reopened"


class SweepError(HarnessError):
    """A sweep or shard that cannot run as asked (another grid, a shard already being written)."""


# --- the plan --------------------------------------------------------------------------------


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


# --- one writer per shard --------------------------------------------------------------------


@dataclass
class ShardLock:
    """An open, locked ``.shard.lock`` in a leaf; ``release()`` (or the process's end) frees it."""

    path: Path
    fd: int | None = None

    @classmethod
    def acquire(cls, leaf: Path, what: str) -> ShardLock:
        leaf.mkdir(parents=True, exist_ok=True)
        path = leaf / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise SweepError(
                    f"cannot lock {path} ({exc.strerror}): the results tree must be on a "
                    "file system with POSIX locks (local disk, NFSv4, Lustre with -o flock)"
                ) from None
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            raise SweepError(
                f"{what} is being written by another run (host {holder.get('host', '?')}, pid "
                f"{holder.get('pid', '?')}, since {holder.get('since', '?')}): two runs of one "
                "shard would write over each other; wait for it to end (or stop it), or pass "
                "another --cnn-sweep"
            ) from None
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def is_locked(leaf: Path) -> bool:
    """Whether some process holds ``leaf``'s lock now (a shard being written)."""
    path = leaf / LOCK
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# --- a shard reopened for a re-run -----------------------------------------------------------


def reopen(leaf: Path, run_id: str) -> int:
    """Turn a shard's merged files back into part streams, so that a re-run joins them and its
    merge writes every row of the shard, complete; -> rows reopened (0: nothing merged).

    Crash-safe: the parts are written and synced before the merged cases file goes (until then
    readers read the merged file, and a later reopen starts over)."""
    merged = {t: leaf / f"{run_id}{schema.FILE_SUFFIX[t]}" for t in schema.TABLES}
    if not merged["cases"].exists():
        return 0
    parts = parts_dir(leaf, run_id)
    if parts.exists():  # left by an earlier reopen or merge that did not finish: in the merged
        for f in parts.iterdir():
            f.unlink()
    parts.mkdir(parents=True, exist_ok=True)
    rows = 0
    for table in sorted(schema.TABLES, key=lambda t: t == "cases"):  # cases last, as a writer
        if not merged[table].exists():
            continue
        data = pq.read_table(merged[table])
        version = int((data.schema.metadata or {}).get(schema.META_VERSION, b"0"))
        if version != schema.SCHEMA_VERSION:
            raise SweepError(
                f"{merged[table]} was written with result schema version {version}, this "
                f"cnnbench writes {schema.SCHEMA_VERSION}: finish the sweep with the cnnbench "
                "that started it, or start another sweep"
            )
        target = schema.arrow_schema(table)
        out = parts / f"{REOPENED}-0.{table}{PART_SUFFIX}"
        with pa.OSFile(str(out), "wb") as sink:
            with pa.ipc.new_stream(sink, target) as stream:
                stream.write_table(data.cast(target))
            sink.flush()
        with open(out, "rb+") as fh:
            os.fsync(fh.fileno())
        if table == "cases":
            rows = data.num_rows
    merged["cases"].unlink()  # from here on, readers read the parts
    for table, path in merged.items():
        if table != "cases":
            path.unlink(missing_ok=True)
    return rows


# --- what is done ----------------------------------------------------------------------------

_NOT_RUN = ("interrupted", "budget:", "not run:")


def counts_as_done(status: Any, error: Any) -> bool:
    """A row whose case ran to an outcome (ok, out of memory, an error of the model's own, a
    batch skipped after a smaller one ran out of memory). Not done: a crashed case (a node
    failure or a kill, under a scheduler), one interrupted, skipped for the budget or after a
    broken process."""
    status = status if isinstance(status, str) else None  # a null is pd.NA, not None
    text = error if isinstance(error, str) else ""
    if status is None or status == "crashed":
        return False
    return not (status in ("error", "skipped") and text.startswith(_NOT_RUN))


def _rows(leaves: list[Path]) -> Any:
    if not leaves:
        return None
    try:
        return load_results(leaves, columns=["case_id", "device", "status", "error"])
    except ResultFileError:
        return None  # no rows yet


def done_keys(root: str | os.PathLike, sweep: str, index: int, count: int) -> set[str]:
    """The plan keys of the shard's cases that have a row that counts as done, on any host."""
    leaves = [d for d in layout.leaves(root, sweep) if layout.parse_leaf(d) == (index, count)]
    frame = _rows(leaves)
    if frame is None:
        return set()
    out = set()
    for case_id, device, status, error in zip(
        frame["case_id"], frame["device"], frame["status"], frame["error"], strict=True
    ):
        if isinstance(case_id, str) and counts_as_done(status, error):
            out.add(row_key(case_id, device if isinstance(device, str) else None))
    return out


# --- the status of a sweep -------------------------------------------------------------------


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
    frame = _rows([leaf])
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
