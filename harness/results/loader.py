"""Loading result files: files and directories (a directory contributes the files directly
inside it, and the parts of runs that never finished, not its other sub-directories), chosen by
their ``cnnbench.table`` metadata, never by name alone. Columns come back in schema order with
every current column (those a file of an older schema version lacks are null), unknown extra
columns kept at the end. Dtypes are pandas ``ArrowDtype`` for every column (``int64[pyarrow]``,
``string[pyarrow]``, ``list<double>[pyarrow]``...), so a null stays ``pd.NA`` and is never turned
into 0 or NaN. Cases rows of files older than the validity verdict are assessed on loading with
the runner's own verdict, and impossible timings are marked ``invalid``
(harness.results.validity).

One bad file found in a directory (truncated, garbage, a zero-length part, a newer version, a
column of the wrong type) does not stop the directory: it is passed over, named in
``frame.attrs["skipped_files"]`` and in a ``ResultFileWarning`` (the ``cnnbench`` commands
print it as one line), and the rest is read. A bad file named explicitly is an error.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from harness.core import schema
from harness.core.errors import InvalidInputError, ResultFileError
from harness.results import tree
from harness.results.parts import (
    PARTS_SUFFIX,
    PathLike,
    _part_files,
    _read_schema,
    _read_table,
)

# A schema version is a small count; a longer text is not one (and int() of 5,000 digits raises
# ValueError since Python 3.11).
_MAX_VERSION_DIGITS = 9


class ResultFileWarning(UserWarning):
    """A result file found in a directory was passed over (the message names it and says
    why); the other files were read."""


def _warn_passed_over(skipped: list[str]) -> None:
    """One ResultFileWarning per file passed over (after the others were read: when none is,
    the error names the first reason, and a warning would say it twice)."""
    for reason in skipped:
        warnings.warn(f"passed over {reason}", ResultFileWarning, stacklevel=3)


def _file_meta(path: Path) -> tuple[str, int]:
    """(table, schema_version) of a result file, or a ResultFileError saying what it is not."""
    try:
        meta = _read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise ResultFileError(
            f"{path} is not a readable result file ({exc}); it may be corrupt or truncated: "
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
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_VERSION_DIGITS):
        shown = raw if len(raw) <= 40 else f"{raw[:20]}... ({len(raw)} characters)"
        raise ResultFileError(f"{path} has no valid cnnbench.schema_version metadata ({shown!r})")
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


def is_result_file(path: PathLike) -> bool:
    """Whether ``path`` is a file cnnbench wrote (parquet or part stream with its metadata),
    whatever its version; False for anything else, missing or unreadable."""
    try:
        meta = _read_schema(Path(path)).metadata or {}
    except (pa.ArrowException, OSError, ValueError):
        return False
    return schema.META_TABLE in meta


def scan_result_files(
    paths: PathLike | Iterable[PathLike], table: str = "cases"
) -> tuple[list[Path], list[str]]:
    """The result files of ``table`` that ``paths`` name, in order, each once, and the reasons
    files found inside directories were passed over (corrupt, foreign, a bad version).

    A directory gives every ``*.parquet`` file directly in it whose metadata says ``table``,
    and the part files of runs that were never merged (``<run_id>.parts/``); other
    sub-directories are not searched (a results tree's root, or its ``sweep=`` or ``host=``
    directory, also gives the shard directories below it: harness.results.tree). One bad file
    in a directory does not hide the others: it is passed over and named (``load_results``
    warns: ``ResultFileWarning``). A file named
    explicitly must be good. A file of another table of the same run (``run.layers.parquet``
    when asking for cases) stands for its sibling file of ``table``, if that exists.
    """
    found, skipped = _scan(paths, table)
    return list(found), skipped


def _scan(paths: PathLike | Iterable[PathLike], table: str) -> tuple[dict[Path, bool], list[str]]:
    """``scan_result_files`` with, per file, whether it was named explicitly (True) or found
    in a directory (False: a bad one is passed over)."""
    if table not in schema.TABLES:
        raise InvalidInputError(f"unknown table {table!r}; use one of {', '.join(schema.TABLES)}")
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: dict[Path, bool] = {}
    skipped: list[str] = []

    def consider(f: Path) -> None:
        try:
            if f.is_file() and _file_meta(f)[0] == table:
                found.setdefault(f, False)
        except ResultFileError as exc:
            skipped.append(str(exc))

    for item in tree.expand(items):  # a results tree's root: its shard directories too
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
                found[path] = True
                continue
            stem = path.name.removesuffix(schema.FILE_SUFFIX[kind])
            sibling = path.with_name(stem + schema.FILE_SUFFIX[table])
            if sibling.is_file() and _file_meta(sibling)[0] == table:
                found[sibling] = True
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
    return found, skipped


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
    files, skipped = _scan(paths, table)
    fields = [f for f in schema.arrow_schema(table) if wanted is None or f.name in wanted]
    names = {f.name for f in fields}

    def read(f: Path, named: bool) -> pa.Table | None:
        """The file's table conformed to the schema's columns (its own extra columns kept); a
        bad file found in a directory is passed over (None), a named one raises."""
        try:
            try:
                t = _read_table(f, wanted)
            except (pa.ArrowException, OSError) as exc:
                raise ResultFileError(f"{f} could not be read ({exc}); it may be corrupt") from None
            _check_versions(t, f)
            extras = [x.remove_metadata() for x in t.schema if x.name not in names]
            return _conform(t, pa.schema(fields + (extras if wanted is None else [])), f)
        except ResultFileError as exc:
            if named:
                raise
            skipped.append(str(exc))
            return None

    tables = [(f, t) for f, named in files.items() if (t := read(f, named)) is not None]
    if not tables:
        raise ResultFileError(
            f"no readable cnnbench {table!r} result files: {skipped[0]}"
            + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else "")
        )
    for _, t in tables:  # extra columns (a newer writer's), first type seen wins
        for field in t.schema:
            if field.name not in names:
                fields.append(field)
                names.add(field.name)
    target = pa.schema(fields)
    conformed = [_conform(t, target, f) if t.schema != target else t for f, t in tables]
    combined = pa.concat_tables(conformed)
    frame = combined.to_pandas(types_mapper=pd.ArrowDtype)
    frame.attrs["skipped_files"] = skipped
    _warn_passed_over(skipped)
    if table == "cases":  # older files get a verdict; impossible timings are never valid
        from harness.results.validity import assess_frame

        assess_frame(frame)
    del tables, conformed, combined
    # Arrow's allocator keeps what decoding freed; a second file or a comparison would stack on
    # top of it (benchmarks/bench_compare_scale.py shows the peak).
    pa.default_memory_pool().release_unused()
    return frame
