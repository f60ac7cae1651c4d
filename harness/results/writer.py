"""Writing result files: ``ResultWriter`` (every finished case on disk at once, in O(1)) and
``merge_parts`` (a run's parts into its parquet files).

Files of one run sit side by side in a results directory, one per table (schema.FILE_SUFFIX):
``<run_id>.parquet`` (cases), ``<run_id>.layers.parquet``, ... Each carries the key-value
metadata ``cnnbench.table`` and ``cnnbench.schema_version``.

Writing, in O(1) per case: each ``add_case`` appends the case to its writer's part streams
(harness.results.parts; side tables first, then the cases row), flushed to the OS at once, so a
process killed at any moment leaves every finished case readable: a torn last message is not
read, and side rows whose case row never made it are left out. ``finish()`` merges the parts of
every writer of the run (pytest-xdist workers share one run id, each writing its own parts) into
the run's files, atomically and with fsync, and removes the parts. Parts are not fsynced (4 ms a
call on this machine's disk, half a minute over a 2,000-case sweep): a killed process loses
nothing; a power cut may lose what the kernel had not flushed. NaN in a float column is stored
as null (a metric that could not be measured is null, never a number). An ``ok`` row with
impossible timings (not finite, not positive) is refused: the schema's one invariant about
values (the verdict itself is the runner's, harness.core.signals).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.core import schema
from harness.core.errors import InvalidInputError
from harness.results.parts import (
    MERGE_ROWS,
    PART_SUFFIX,
    PARTS_SUFFIX,
    ROW_GROUP_ROWS,
    PathLike,
    _chunks,
    _part_files,
    _stream_batches,
    parts_dir,
)


def new_run_id() -> str:
    """``20261123T162233Z-<host>-<6 hex>``: sortable by start time, unique, safe as a file name."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-")[:40] or "host"
    return f"{stamp}-{host}-{secrets.token_hex(3)}"


def _columns_to_table(table: str, columns: Mapping[str, Any], n_rows: int, what: str) -> pa.Table:
    """Build a table of schema ``table`` from column -> values (length ``n_rows``)."""
    known = {c.name: c for c in schema.TABLES[table]}
    unknown = [k for k in columns if k not in known]
    if unknown:
        hints = []
        for k in unknown:
            close = " or ".join(map(repr, difflib.get_close_matches(k, known, n=2)))
            hints.append(f"{k!r}" + (f" (did you mean {close}?)" if close else ""))
        raise InvalidInputError(
            f"{what} has column(s) that the {table!r} table does not define: {', '.join(hints)}; "
            f"add them to harness/results/schema.py (and bump SCHEMA_VERSION) or rename them"
        )
    arrays = []
    for col in schema.TABLES[table]:
        if col.name not in columns:
            arrays.append(pa.nulls(n_rows, type=col.type))
            continue
        values = columns[col.name]
        try:
            if pa.types.is_integer(col.type) and not isinstance(values, pd.Series):
                # pa.array truncates 3.5 to 3 without a word: a fraction is not a count
                bad = [v for v in values if isinstance(v, float) and v == v and v % 1 != 0]
                if bad:  # (NaN, v != v, is a null, not a fraction)
                    raise ValueError(f"{bad[0]!r} is not a whole number")
            if isinstance(values, pd.Series):
                arr = pa.Array.from_pandas(values, type=col.type)
            else:
                arr = pa.array(values, type=col.type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{what}: column {col.name!r} must hold {col.type} values "
                f"({col.doc}), got {_preview(values)}: {exc}"
            ) from None
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema(table))


def _preview(values: Any) -> str:
    text = repr(list(values)[:3] if not isinstance(values, (str, bytes)) else values)
    return text if len(text) <= 120 else text[:117] + "..."


def _is_float(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or (pa.types.is_list(t) and pa.types.is_floating(t.value_type))


def _dictionary(schema_: pa.Schema) -> list[str]:
    """No dictionary encoding of floats: on the raw samples it would make writing several
    times slower, for no gain (timings rarely repeat exactly)."""
    return [f.name for f in schema_ if not _is_float(f.type)]


def _sync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable (POSIX; a no-op elsewhere)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable(results_dir: PathLike) -> Path:
    """Create ``results_dir`` if needed and prove a file can be written there, before anything
    is measured; an InvalidInputError saying why not otherwise."""
    directory = Path(results_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cnnbench-write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write results to {directory}: {exc.strerror or exc}; pass a writable "
            "directory (--cnn-results-dir)"
        ) from None
    return directory


class ResultWriter:
    """Writes a run's cases to ``<results_dir>/<run_id>.parts/`` as they finish, and the run's
    files at ``finish()``.

    ``name`` tells this writer's parts from another's in the same run (an xdist worker id);
    ``join=True`` writes into a run another writer started (the parts directory may exist);
    ``merge=False`` leaves the parts for the writer that merges them (the xdist controller).
    Use as a context manager: leaving the block normally marks the run complete; an exception
    (KeyboardInterrupt included) keeps every row written and marks the run incomplete.
    """

    def __init__(
        self,
        results_dir: PathLike,
        run_id: str | None = None,
        *,
        name: str = "main",
        join: bool = False,
        merge: bool = True,
    ) -> None:
        self.results_dir = Path(results_dir).absolute()  # a chdir mid-run must not move it
        self.run_id = run_id or new_run_id()
        for what, value in (("run id", self.run_id), ("writer name", name)):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value) or value.endswith(
                PARTS_SUFFIX
            ):
                raise InvalidInputError(
                    f"{what} {value!r} cannot be a file name: use letters, digits, '.', '_', '-'"
                )
        self.name = name
        self.merge = merge
        self.results_dir.mkdir(parents=True, exist_ok=True)
        taken = [self._path(t) for t in schema.TABLES if self._path(t).exists()]
        if not join and self.parts.exists():
            taken.append(self.parts)
        if taken:
            raise InvalidInputError(
                f"{taken[0]} already exists: pick another run id (or none, for a fresh one) so "
                "that an earlier run's results are not overwritten"
            )
        # table -> (file, IPC stream writer, the part's (device, inode))
        self._streams: dict[str, tuple[Any, Any, tuple[int, int]]] = {}
        self._written: dict[str, bool] = dict.fromkeys(schema.TABLES, False)
        self._merged: dict[str, Path] = {}
        self._finished = False

    @property
    def parts(self) -> Path:
        return parts_dir(self.results_dir, self.run_id)

    def _path(self, table: str) -> Path:
        return self.results_dir / f"{self.run_id}{schema.FILE_SUFFIX[table]}"

    @property
    def paths(self) -> dict[str, Path]:
        """Table name -> the run's file, for the tables with rows: the merged files after
        ``finish()``, the parts directory before (load_results reads either)."""
        if self._merged:
            return dict(self._merged)
        return {t: self.parts for t, written in self._written.items() if written}

    def add_case(self, row: Mapping[str, Any], **tables: pd.DataFrame | None) -> None:
        """Write one case (schema CASES columns) and its side tables as part files.

        Missing columns are null; an unknown column or table name is an error, and so is an
        ``ok`` row whose timings are impossible. The writer fills ``schema_version``,
        ``run_id`` and ``run_complete`` (and, in side tables, ``case_id``).
        """
        if self._finished:
            raise RuntimeError("ResultWriter.add_case after finish(): open a new writer")
        bad = [t for t in tables if t not in schema.TABLES or t == "cases"]
        if bad:
            raise InvalidInputError(
                f"unknown result table(s) {', '.join(map(repr, bad))}; the schema defines "
                f"{', '.join(t for t in schema.TABLES if t != 'cases')}"
            )
        if row.get("status") == "ok":
            from harness.results.validity import impossible

            why = impossible(row, require=False)
            if why is not None:
                raise InvalidInputError(f"refusing an ok row with impossible timings: {why}")
        filled = {
            "schema_version": schema.SCHEMA_VERSION,
            "run_id": self.run_id,
            "run_complete": False,
        }
        values = {**row, **filled}
        case_row = _columns_to_table("cases", {k: [v] for k, v in values.items()}, 1, "result row")
        side: dict[str, pa.Table] = {}
        for name, frame in tables.items():
            if frame is None or len(frame) == 0:
                continue
            if row.get("case_id") is None:
                raise InvalidInputError(
                    f"the row has no case_id, so its {name!r} rows could not be joined to it"
                )
            n = len(frame)
            cols: dict[str, Any] = {c: frame[c] for c in frame.columns}
            cols.update(
                {
                    "schema_version": [schema.SCHEMA_VERSION] * n,
                    "run_id": [self.run_id] * n,
                    "case_id": [row["case_id"]] * n,
                }
            )
            side[name] = _columns_to_table(name, cols, n, f"{name!r} table of {row['case_id']}")
        for table, (_, _, identity) in self._streams.items():  # all there before any is added
            self._check_part(self._part_path(table), identity)
        # Side tables first: every case row on disk then has its side rows.
        for name, t in side.items():
            self._append(name, t)
        self._append("cases", case_row)

    def _part_path(self, table: str) -> Path:
        return self.parts / f"{self.name}-{os.getpid()}.{table}{PART_SUFFIX}"

    def _append(self, table: str, rows: pa.Table) -> None:
        """Append ``rows`` to this writer's stream of ``table`` and flush it to the OS: a
        process killed afterwards loses nothing of it."""
        path = self._part_path(table)
        if table not in self._streams:
            self.parts.mkdir(parents=True, exist_ok=True)
            sink = pa.OSFile(str(path), "wb")
            try:
                stream = pa.ipc.new_stream(sink, schema.arrow_schema(table))
            except BaseException:
                sink.close()
                raise
            st = os.stat(path)
            self._streams[table] = (sink, stream, (st.st_dev, st.st_ino))
        sink, stream, _ = self._streams[table]
        stream.write_table(rows)
        sink.flush()
        self._written[table] = True

    def _check_part(self, path: Path, identity: tuple[int, int]) -> None:
        """A part removed since it was opened (the results directory deleted mid-run) is a
        FileNotFoundError: writes to an unlinked file succeed and would be lost silently."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != identity:
            raise FileNotFoundError(
                errno.ENOENT,
                f"{path} was removed while the run wrote it (the results directory was deleted "
                "or replaced); the rows written there are lost",
            )

    def _close_streams(self) -> None:
        for sink, stream, _ in self._streams.values():
            with contextlib.suppress(OSError, pa.ArrowException):
                stream.close()
            with contextlib.suppress(OSError):
                sink.close()
        self._streams.clear()

    def finish(self, complete: bool = True) -> None:
        """Merge the run's parts into its files with ``run_complete = complete`` (False after
        an interruption); a writer with ``merge=False`` leaves them for the merging one."""
        self._finished = True
        self._close_streams()
        if any(self._written.values()) and not self.parts.is_dir():
            raise FileNotFoundError(
                errno.ENOENT,
                f"{self.parts} was removed before the run's files were merged (the results "
                "directory was deleted or replaced); the rows written there are lost",
            )
        if self.merge:
            self._merged = merge_parts(self.results_dir, self.run_id, complete=complete)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(complete=exc_type is None)


def merge_parts(results_dir: PathLike, run_id: str, *, complete: bool) -> dict[str, Path]:
    """Merge ``<run_id>.parts/`` (every writer's) into ``<run_id><suffix>`` files, atomically,
    side tables first, then remove the parts; -> table -> file written.

    Side rows whose case row is missing (a writer killed between the two) are left out, so
    every merged side row belongs to a merged case. A part left empty or torn (a disk full at
    its first write) adds nothing. Any failure is an OSError (the parts are left in place).
    """
    try:
        return _merge_parts(Path(results_dir), run_id, complete)
    except pa.ArrowException as exc:
        if isinstance(exc, OSError):
            raise
        raise OSError(errno.EIO, f"the parts of run {run_id} could not be merged: {exc}") from None


def _merge_parts(results: Path, run_id: str, complete: bool) -> dict[str, Path]:
    parts = parts_dir(results, run_id)
    if not parts.is_dir():
        return {}
    writers = {f.name.removesuffix(f".cases{PART_SUFFIX}"): f for f in _part_files(parts, "cases")}
    done: dict[str, pa.Array] = {}  # writer -> the case ids whose row made it
    for writer, f in writers.items():
        ids = pa.concat_arrays(
            [b.column(b.schema.get_field_index("case_id")) for b in _stream_batches(f)]
            or [pa.array([], pa.string())]
        )
        done[writer] = ids
    out: dict[str, Path] = {}
    for table in sorted(schema.TABLES, key=lambda t: t == "cases"):
        target = schema.arrow_schema(table)
        path = results / f"{run_id}{schema.FILE_SUFFIX[table]}"
        tmp = path.with_name(path.name + ".tmp")
        sink: pq.ParquetWriter | None = None
        try:
            for f in _part_files(parts, table):
                writer = f.name.removesuffix(f".{table}{PART_SUFFIX}")
                if writer not in done:
                    continue  # killed before its first case row: nothing of it was finished
                for chunk in _chunks(_stream_batches(f), MERGE_ROWS):
                    if table != "cases":  # side rows of a case whose row never finished
                        chunk = chunk.filter(pc.is_in(chunk.column("case_id"), done[writer]))
                    else:
                        idx = chunk.schema.get_field_index("run_complete")
                        chunk = chunk.set_column(
                            idx, chunk.schema.field(idx), pa.array([bool(complete)] * len(chunk))
                        )
                    if not len(chunk):
                        continue
                    if sink is None:
                        sink = pq.ParquetWriter(
                            str(tmp), target, use_dictionary=_dictionary(target)
                        )
                    sink.write_table(chunk.cast(target), row_group_size=ROW_GROUP_ROWS)
            if sink is not None:
                sink.close()
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                out[table] = path
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    _sync_directory(results)
    shutil.rmtree(parts, ignore_errors=True)
    return {t: out[t] for t in schema.TABLES if t in out}
