"""A shard's leaf in a results tree (layout: harness.results.tree): its lock, an earlier
attempt reopened for a re-run, and which of its cases are done (the plan: cluster/plan.py; the
status of every shard: cluster/status.py).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.cluster.shard import row_key
from harness.core import schema
from harness.core.errors import HarnessError, ResultFileError
from harness.results import tree as layout
from harness.results.loader import load_results
from harness.results.parts import PART_SUFFIX, parts_dir

LOCK = ".shard.lock"
REOPENED = "reopened"


class SweepError(HarnessError):
    """A sweep or shard that cannot run as asked (another grid, a shard already being written)."""


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


def read_rows(leaves: list[Path]) -> Any:
    if not leaves:
        return None
    try:
        return load_results(leaves, columns=["case_id", "device", "status", "error"])
    except ResultFileError:
        return None  # no rows yet


def done_keys(root: str | os.PathLike, sweep: str, index: int, count: int) -> set[str]:
    """The plan keys of the shard's cases that have a row that counts as done, on any host."""
    leaves = [d for d in layout.leaves(root, sweep) if layout.parse_leaf(d) == (index, count)]
    frame = read_rows(leaves)
    if frame is None:
        return set()
    out = set()
    for case_id, device, status, error in zip(
        frame["case_id"], frame["device"], frame["status"], frame["error"], strict=True
    ):
        if isinstance(case_id, str) and counts_as_done(status, error):
            out.add(row_key(case_id, device if isinstance(device, str) else None))
    return out
