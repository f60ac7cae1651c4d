"""A run's part streams: each writer appends every finished case to its own Arrow IPC streams in
``<run_id>.parts/`` (``<writer>-<pid>.<table>.arrows``), flushed to the OS at once; a torn last
message (a kill mid-append) is not read. This module names and reads them; writing and merging
are harness.results.writer's, loading harness.results.loader's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PathLike = str | os.PathLike

PARTS_SUFFIX = ".parts"
ROW_GROUP_ROWS = 4096
# Part batches merged at a time: a one-row batch costs hundreds of bytes per column in objects,
# so 4,096 of them held 150 MB; 512 hold under 20.
MERGE_ROWS = 512


def parts_dir(results_dir: PathLike, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}{PARTS_SUFFIX}"


PART_SUFFIX = ".arrows"  # an Arrow IPC stream per writer and table, appended case by case


def _part_files(directory: Path, table: str) -> list[Path]:
    return sorted(directory.glob(f"*.{table}{PART_SUFFIX}"))


def _stream_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The complete record batches of a part stream, one at a time (a torn last message, left
    by a kill mid-append, ends the stream; a stream torn in its schema, or left empty by a disk
    that was full at its first write, has none)."""
    with pa.OSFile(str(path)) as source:  # read, not mapped: pages are not held
        try:
            reader = pa.ipc.open_stream(source)
        except (pa.ArrowInvalid, OSError):
            return
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError):
                return


def _chunks(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Batches gathered into tables of about ``rows`` rows, each combined into one chunk."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending).combine_chunks()
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending).combine_chunks()


def _read_stream(path: Path) -> pa.Table:
    """Every complete record batch of a part stream, as one table."""
    with pa.memory_map(str(path)) as source:
        schema_ = pa.ipc.open_stream(source).schema
    return pa.Table.from_batches(list(_stream_batches(path)), schema=schema_)


def _read_schema(path: Path) -> pa.Schema:
    if path.suffix == PART_SUFFIX:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).schema
    return pq.read_schema(path)


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    if path.suffix == PART_SUFFIX:
        t = _read_stream(path)
        return t if columns is None else t.select([c for c in columns if c in t.column_names])
    if columns is not None:
        present = set(pq.read_schema(path).names)
        return pq.read_table(path, columns=[c for c in columns if c in present], use_threads=False)
    # one thread: parallel column decoding held 3x the table in buffers (90 MB for a 23 MB
    # table of 10,000 cases), the whole of what a large comparison peaked at
    return pq.read_table(path, use_threads=False)
