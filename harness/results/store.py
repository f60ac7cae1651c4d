"""Result files: ResultWriter (every finished case on disk at once) and load_results (many files).

Files of one run sit side by side in a results directory, one per table (schema.FILE_SUFFIX):
``<run_id>.parquet`` (cases), ``<run_id>.layers.parquet``, ... Each carries the key-value
metadata ``cnnbench.table`` and ``cnnbench.schema_version``.

Writing, in O(1) per case: each ``add_case`` appends the case to its writer's Arrow IPC
streams in ``<run_id>.parts/`` (``<writer>-<pid>.<table>.arrows``; side tables first, then the
cases row), flushed to the OS at once, so a process killed at any moment leaves every finished
case readable: a torn last message is not read, and side rows whose case row never made it are
left out. ``finish()``
merges the parts of every writer of the run (pytest-xdist workers share one run id, each
writing its own parts) into the run's files, atomically and with fsync, and removes the parts.
Parts are not fsynced (4 ms a call on this machine's disk, half a minute over a 2,000-case
sweep): a killed process loses nothing; a power cut may lose what the kernel had not flushed.
NaN in a float column is stored as null (a metric that could not be measured is null, never a
number). An ``ok`` row with impossible timings (not finite, not positive) is refused.

Loading: files and directories (a directory contributes the files directly inside it, and the
parts of runs that never finished, not its other sub-directories), chosen by their
``cnnbench.table`` metadata, never by name alone. Columns come back in schema order with every
current column (those a file of an older schema version lacks are null), unknown extra columns
kept at the end. Dtypes are pandas ``ArrowDtype`` for every column (``int64[pyarrow]``,
``string[pyarrow]``, ``list<double>[pyarrow]``...), so a null stays ``pd.NA`` and is never
turned into 0 or NaN. Cases rows of files older than the validity verdict are assessed on
loading, and impossible timings are marked ``invalid`` (harness.results.validity).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.core import schema
from harness.core.errors import InvalidInputError, ResultFileError

PathLike = str | os.PathLike


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


PARTS_SUFFIX = ".parts"
ROW_GROUP_ROWS = 4096
# Part batches merged at a time: a one-row batch costs hundreds of bytes per column in objects,
# so 4,096 of them held 150 MB; 512 hold under 20.
MERGE_ROWS = 512


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


def parts_dir(results_dir: PathLike, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}{PARTS_SUFFIX}"


PART_SUFFIX = ".arrows"  # an Arrow IPC stream per writer and table, appended case by case


def _part_files(directory: Path, table: str) -> list[Path]:
    return sorted(directory.glob(f"*.{table}{PART_SUFFIX}"))


def _stream_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The complete record batches of a part stream, one at a time (a torn last message, left
    by a kill mid-append, ends the stream)."""
    with pa.OSFile(str(path)) as source:  # read, not mapped: pages are not held
        reader = pa.ipc.open_stream(source)
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
        self.results_dir = Path(results_dir)
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
        self._streams: dict[str, tuple[Any, Any]] = {}  # table -> (file, IPC stream writer)
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
        # Side tables first: every case row on disk then has its side rows.
        for name, t in side.items():
            self._append(name, t)
        self._append("cases", case_row)

    def _append(self, table: str, rows: pa.Table) -> None:
        """Append ``rows`` to this writer's stream of ``table`` and flush it to the OS: a
        process killed afterwards loses nothing of it."""
        if table not in self._streams:
            self.parts.mkdir(parents=True, exist_ok=True)
            path = self.parts / f"{self.name}-{os.getpid()}.{table}{PART_SUFFIX}"
            sink = pa.OSFile(str(path), "wb")
            self._streams[table] = (sink, pa.ipc.new_stream(sink, schema.arrow_schema(table)))
        sink, stream = self._streams[table]
        stream.write_table(rows)
        sink.flush()
        self._written[table] = True

    def _close_streams(self) -> None:
        for sink, stream in self._streams.values():
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
    every merged side row belongs to a merged case.
    """
    results = Path(results_dir)
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


# ----------------------------------------------------------------------------------- loading


def _file_meta(path: Path) -> tuple[str, int]:
    """(table, schema_version) of a result file, or a ResultFileError saying what it is not."""
    try:
        meta = _read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise ResultFileError(
            f"{path} is not a readable parquet file ({exc}); it may be corrupt or truncated: "
            "pass result files written by cnnbench"
        ) from None
    if schema.META_TABLE not in meta:
        raise ResultFileError(
            f"{path} is not a cnnbench result file (no cnnbench.table metadata); pass the "
            "files cnnbench writes into its results directory (<run_id>.parquet)"
        )
    try:
        table = meta[schema.META_TABLE].decode("utf-8")
        raw = meta.get(schema.META_VERSION, b"").decode("utf-8")
    except UnicodeDecodeError:
        raise ResultFileError(
            f"{path} has cnnbench metadata that is not UTF-8 text: not a file cnnbench wrote"
        ) from None
    if not (raw.isascii() and raw.isdigit()):
        raise ResultFileError(f"{path} has no valid cnnbench.schema_version metadata ({raw!r})")
    version = int(raw)
    if version > schema.SCHEMA_VERSION:
        raise ResultFileError(
            f"{path} was written with result schema version {version}, newer than this "
            f"cnnbench knows ({schema.SCHEMA_VERSION}): upgrade cnnbench to read it"
        )
    if table not in schema.TABLES:
        raise ResultFileError(
            f"{path} holds a cnnbench table {table!r} that this version does not know: "
            "upgrade cnnbench to read it"
        )
    return table, version


def scan_result_files(
    paths: PathLike | Iterable[PathLike], table: str = "cases"
) -> tuple[list[Path], list[str]]:
    """The result files of ``table`` that ``paths`` name, in order, each once, and the reasons
    files found inside directories were passed over (corrupt, foreign, a bad version).

    A directory gives every ``*.parquet`` file directly in it whose metadata says ``table``,
    and the part files of runs that were never merged (``<run_id>.parts/``); other
    sub-directories are not searched. One bad file in a directory does not hide the others:
    it is passed over and named. A file named explicitly must be good. A file of another table
    of the same run (``run.layers.parquet`` when asking for cases) stands for its sibling file
    of ``table``, if that exists.
    """
    if table not in schema.TABLES:
        raise InvalidInputError(f"unknown table {table!r}; use one of {', '.join(schema.TABLES)}")
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: dict[Path, None] = {}
    skipped: list[str] = []

    def consider(f: Path) -> None:
        try:
            if f.is_file() and _file_meta(f)[0] == table:
                found[f] = None
        except ResultFileError as exc:
            skipped.append(str(exc))

    for item in items:
        path = Path(item)
        if path.is_dir():
            for f in sorted(path.glob("*.parquet")):
                consider(f)
            if path.name.endswith(PARTS_SUFFIX):  # a run's parts directory, named directly
                for f in _part_files(path, table):
                    consider(f)
            # runs still going, or killed before their parts were merged
            for parts in sorted(path.glob(f"*{PARTS_SUFFIX}")):
                run_id = parts.name.removesuffix(PARTS_SUFFIX)
                merged = path / f"{run_id}{schema.FILE_SUFFIX[table]}"
                if parts.is_dir() and not merged.exists():
                    for f in _part_files(parts, table):
                        consider(f)
        elif path.is_file():
            kind, _ = _file_meta(path)
            if kind == table:
                found[path] = None
                continue
            stem = path.name.removesuffix(schema.FILE_SUFFIX[kind])
            sibling = path.with_name(stem + schema.FILE_SUFFIX[table])
            if sibling.is_file() and _file_meta(sibling)[0] == table:
                found[sibling] = None
        else:
            raise ResultFileError(f"{path} does not exist: pass result files or directories")
    if not found:
        shown = ", ".join(str(p) for p in items) or "(nothing)"
        if skipped:
            raise ResultFileError(
                f"no readable cnnbench {table!r} result files in {shown}: {skipped[0]}"
                + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else "")
            )
        nested = _nested_result_dirs([Path(p) for p in items if Path(p).is_dir()], table)
        if nested:
            more = " ..." if len(nested) > 5 else ""
            raise ResultFileError(
                f"no cnnbench {table!r} result files directly in {shown} (sub-directories are "
                f"not searched); these hold some, pass them instead: "
                f"{' '.join(str(d) for d in nested[:5])}{more}"
            )
        raise ResultFileError(
            f"no cnnbench {table!r} result files in {shown}: run `pytest suites/ "
            "--benchmark-only` to write some, or pass the results directory"
        )
    return list(found), skipped


def result_files(paths: PathLike | Iterable[PathLike], table: str = "cases") -> list[Path]:
    """The result files of ``table`` that ``paths`` name (``scan_result_files`` without the
    passed-over list); a ResultFileError for a missing, corrupt or foreign named file, or none."""
    return scan_result_files(paths, table)[0]


def _nested_result_dirs(directories: list[Path], table: str) -> list[Path]:
    """Sub-directories of ``directories`` holding result files of ``table`` (for the hint)."""
    out: dict[Path, None] = {}
    for directory in directories:
        for f in sorted(directory.rglob("*.parquet")):
            try:
                if f.is_file() and _file_meta(f)[0] == table:
                    out[f.parent] = None
            except ResultFileError:
                continue
    return list(out)


def _conform(t: pa.Table, target: pa.Schema, path: Path) -> pa.Table:
    arrays = []
    for field in target:
        if field.name not in t.column_names:
            arrays.append(pa.nulls(len(t), type=field.type))
            continue
        col = t.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ResultFileError(
                    f"{path}: column {field.name!r} holds {col.type}, which cannot be read as "
                    f"{field.type} ({exc})"
                ) from None
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=target)


def _check_versions(t: pa.Table, path: Path) -> None:
    """Every row's ``schema_version`` must be the file's: a row claiming another version was
    not written with this file (spliced or edited), and is refused with its file."""
    if "schema_version" not in t.column_names:
        return
    declared = int((t.schema.metadata or {}).get(schema.META_VERSION, b"0").decode())
    values = {v for v in t.column("schema_version").to_pylist() if v is not None}
    if values - {declared}:
        raise ResultFileError(
            f"{path}: rows claim schema version(s) {sorted(values - {declared})} but the file "
            f"says {declared}: the file was edited or spliced; it is not read"
        )


def load_results(
    paths: PathLike | Iterable[PathLike],
    table: str = "cases",
    *,
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One DataFrame of ``table`` from result files and directories (see ``result_files``).

    Every current schema column, in schema order, then unknown extra columns; ArrowDtype
    columns (nulls stay ``pd.NA``). ``columns`` reads only those (and, for the cases table,
    what the validity verdict needs): a reader of 50,000 cases that needs a dozen columns
    does not hold a hundred. ``frame.attrs["skipped_files"]`` lists the files found in
    directories that were passed over, with the reason. Files of an older schema version give
    nulls for the columns they lack; a newer version, a foreign or corrupt file named
    explicitly is a ResultFileError.
    """
    wanted: list[str] | None = None
    if columns is not None:
        from harness.results.validity import SIGNAL_COLUMNS

        extra = ("validity", "validity_reason", *SIGNAL_COLUMNS) if table == "cases" else ()
        wanted = list(dict.fromkeys([*columns, "schema_version", *extra]))
    files, skipped = scan_result_files(paths, table)
    tables: list[tuple[Path, pa.Table]] = []
    for f in files:
        try:
            t = _read_table(f, wanted)
        except (pa.ArrowException, OSError) as exc:
            raise ResultFileError(f"{f} could not be read ({exc}); it may be corrupt") from None
        _check_versions(t, f)
        tables.append((f, t))
    fields = [f for f in schema.arrow_schema(table) if wanted is None or f.name in wanted]
    names = {f.name for f in fields}
    for _, t in tables:
        for field in t.schema:
            if field.name not in names and wanted is None:
                fields.append(field.remove_metadata())
                names.add(field.name)
    target = pa.schema(fields)
    combined = pa.concat_tables([_conform(t, target, f) for f, t in tables])
    frame = combined.to_pandas(types_mapper=pd.ArrowDtype)
    frame.attrs["skipped_files"] = skipped
    if table == "cases":  # older files get a verdict; impossible timings are never valid
        from harness.results.validity import assess_frame

        assess_frame(frame)
    del tables, combined
    # Arrow's allocator keeps what decoding freed; a second file or a comparison would stack on
    # top of it (benchmarks/bench_compare_scale.py shows the peak).
    pa.default_memory_pool().release_unused()
    return frame
