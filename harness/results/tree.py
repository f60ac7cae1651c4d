"""The results tree: one directory for many hosts and the shards of many sweeps.

A results directory becomes a tree when it holds ``cnnbench-tree.json`` (written by the first
sharded run or ``cnnbench submit``). Each shard of a sweep writes into a leaf of its own,
partitioned the way DuckDB and Spark read (hive ``key=value`` directories)::

    <root>/cnnbench-tree.json
    <root>/sweep=<sweep id>/plan.json                     which case runs on which shard
    <root>/sweep=<sweep id>/host=<host>/shard=<I>of<N>/   an ordinary results directory:
        <sweep id>.parquet, .layers.parquet, .power.parquet (or <sweep id>.parts/ while running)

The sweep id is the run id of every shard: together the shards are one run for ``compare``,
``report`` and ``claims``. A leaf is a results directory like any other (``load_results`` on a
leaf reads that shard); on the root, a ``sweep=ID`` or a ``sweep=ID/host=H`` directory it reads
every leaf below (``expand``): ``cnnbench compare results/sweep=A results/sweep=B``.
``host`` is the row's own
``host`` column (DuckDB's hive partition then agrees with the column it shadows).

Paths only: nothing here reads or writes a result file (harness.results.store does).
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from harness.core.errors import InvalidInputError

MARKER = "cnnbench-tree.json"
LAYOUT_VERSION = 1
PLAN = "plan.json"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LEAF = re.compile(r"shard=(?P<index>\d+)of(?P<count>\d+)")


def check_id(value: str, what: str = "sweep id") -> str:
    """A sweep id (also the run id and a directory name): letters, digits, ``.``, ``_``, ``-``."""
    if not _ID.fullmatch(value or "") or value.endswith(".parts"):
        raise InvalidInputError(
            f"{what} {value!r} cannot name a directory: use 1 to 100 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return value


def host_name() -> str:
    """This host as the rows record it (``socket.gethostname()``), made safe for a path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-.") or "host"


def is_tree(root: str | os.PathLike) -> bool:
    return (Path(root) / MARKER).is_file()


def mark_tree(root: str | os.PathLike) -> Path:
    """Make ``root`` a results tree (idempotent); -> the root."""
    directory = Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER
    if not marker.exists():
        text = json.dumps(
            {"cnnbench_results_tree": LAYOUT_VERSION, "layout": "sweep=ID/host=HOST/shard=IofN"}
        )
        tmp = marker.with_name(f".{MARKER}.{os.getpid()}.tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, marker)
    return directory


def sweep_dir(root: str | os.PathLike, sweep: str) -> Path:
    return Path(root) / f"sweep={check_id(sweep)}"


def shard_name(index: int, count: int) -> str:
    return f"shard={index}of{count}"


def leaf_dir(root: str | os.PathLike, sweep: str, index: int, count: int, host: str) -> Path:
    """Where shard ``index`` of ``count`` of ``sweep`` writes on ``host``."""
    return sweep_dir(root, sweep) / f"host={host}" / shard_name(index, count)


def parse_leaf(leaf: Path) -> tuple[int, int] | None:
    """(index, count) of a leaf directory's name, or None for another directory."""
    m = _LEAF.fullmatch(leaf.name)
    return (int(m["index"]), int(m["count"])) if m else None


def sweeps(root: str | os.PathLike) -> list[str]:
    """The sweep ids of a tree, oldest directory first."""
    found = [d for d in Path(root).glob("sweep=*") if d.is_dir()]
    found.sort(key=lambda d: (d.stat().st_mtime, d.name))
    return [d.name.removeprefix("sweep=") for d in found]


def leaves(root: str | os.PathLike, sweep: str | None = None) -> list[Path]:
    """The shard directories of one sweep of the tree (every sweep's with None), sorted."""
    pattern = f"sweep={sweep}" if sweep is not None else "sweep=*"
    return sorted(
        d for d in Path(root).glob(f"{pattern}/host=*/shard=*") if d.is_dir() and parse_leaf(d)
    )


def _in_tree(directory: Path) -> bool:
    """A ``sweep=`` or ``host=`` directory of a tree (a part of it to read whole)."""
    if not directory.name.startswith(("sweep=", "host=")):
        return False
    up = directory.parent if directory.name.startswith("sweep=") else directory.parent.parent
    return is_tree(up)


def expand(paths: Iterable[str | os.PathLike]) -> list[str | os.PathLike]:
    """``paths`` with every tree root, ``sweep=ID`` or ``sweep=ID/host=H`` directory followed by
    the shard directories below it (what ``load_results`` reads for it); others as given."""
    out: list[str | os.PathLike] = []
    for p in paths:
        out.append(p)
        directory = Path(p)
        if directory.is_dir() and (is_tree(directory) or _in_tree(directory)):
            out.extend(
                sorted(d for d in directory.glob("**/shard=*") if d.is_dir() and parse_leaf(d))
            )
    return out
