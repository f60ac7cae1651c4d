"""SQL over result files: a DuckDB connection whose views ``cases``, ``layers`` and ``power``
read every result file that ``load_results`` would read from the same paths (a results tree's
leaves, flat directories, single files), in place.

* Files are chosen by their cnnbench metadata (harness.results.loader.scan_result_files), never
  by a glob: a ``*.parquet`` glob would mix the three tables of a directory.
* Files in a tree carry its partitions as columns: ``sweep``, ``host`` (the row's own), and
  ``shard`` (``2of3``); files outside a tree have them null. Columns are matched by name across
  files (``union_by_name``): a file of an older schema version gives nulls for what it lacks.
* The parts of a run still going (or killed before it merged) are read too, from their Arrow
  streams (DuckDB reads no IPC streams by itself): every finished case is in the views.

The rows are as written: files older than the validity verdict have it null here
(``load_results`` assesses them). Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.core import schema
from harness.core.errors import InvalidInputError, ResultFileError
from harness.results.loader import scan_result_files
from harness.results.parts import PART_SUFFIX

PARTITIONS = ("sweep", "host", "shard")


def _partitions(path: Path) -> dict[str, str] | None:
    """``{"sweep": ..., "host": ..., "shard": ...}`` of a file in a tree's leaf, else None."""
    parts = {}
    for directory in path.parents:
        key, sep, value = directory.name.partition("=")
        if sep and key in PARTITIONS and key not in parts:
            parts[key] = value
    return parts if set(parts) == set(PARTITIONS) else None


def _stream(path: Path) -> pa.Table:
    """The complete record batches of a part stream (a torn last one is left out)."""
    batches = []
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_stream(source)
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):
                break
        return pa.Table.from_batches(batches, schema=reader.schema)


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _files(paths: Sequence[str | os.PathLike], table: str) -> list[Path]:
    try:
        return scan_result_files(paths, table)[0]
    except ResultFileError:
        if table == "cases":
            raise
        return []  # no layer times or power traces: an empty view


def connect(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Any:
    """A DuckDB connection with the views ``cases``, ``layers`` and ``power`` over ``paths``."""
    import duckdb

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise InvalidInputError(
            "no results given: pass --results DIR (a results tree or directory)"
        )
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    for table in schema.TABLES:
        files = _files(items, table)
        parquet = [f for f in files if f.suffix != PART_SUFFIX]
        tree = [f for f in parquet if _partitions(f) is not None]
        flat = [f for f in parquet if _partitions(f) is None]
        selects = []
        options = "union_by_name = true"
        if tree:
            kinds = ", ".join(f"'{k}': 'VARCHAR'" for k in PARTITIONS)
            selects.append(
                f"SELECT * FROM read_parquet([{', '.join(map(_quote, tree))}], {options}, "
                f"hive_partitioning = true, hive_types = {{{kinds}}})"
            )
        if flat:
            selects.append(
                f"SELECT * FROM read_parquet([{', '.join(map(_quote, flat))}], {options}, "
                "hive_partitioning = false)"
            )
        for i, part in enumerate(f for f in files if f.suffix == PART_SUFFIX):
            data = _stream(part)
            where = _partitions(part) or {}
            for key in PARTITIONS:
                if key not in data.column_names or key in where:
                    value = where.get(key)
                    col = pa.array([value] * data.num_rows, pa.string())
                    if key in data.column_names:
                        data = data.set_column(data.column_names.index(key), key, col)
                    else:
                        data = data.append_column(key, col)
            name = f"_parts_{table}_{i}"
            con.register(name, data)
            selects.append(f"SELECT * FROM {name}")
        if not selects:
            empty = schema.arrow_schema(table).empty_table()
            for key in PARTITIONS:
                if key not in empty.column_names:
                    empty = empty.append_column(key, pa.array([], pa.string()))
            con.register(f"_empty_{table}", empty)
            selects.append(f"SELECT * FROM _empty_{table}")
        con.execute(f"CREATE VIEW {table} AS " + " UNION ALL BY NAME ".join(selects))
    return con


def run_query(paths: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` over the views; -> (column names, rows). A bad query is an InvalidInputError
    with DuckDB's own first line."""
    import duckdb

    con = connect(paths)
    try:
        result = con.execute(sql)
        if result.description is None:
            return [], []
        columns = [d[0] for d in result.description]
        return columns, result.fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"the query failed: {first}") from None
    finally:
        con.close()
