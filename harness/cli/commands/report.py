"""`cnnbench report PATHS ... [-o reports/NAME.html]`: one self-contained HTML report.

Reads result files (parquet written by the runner, or directories of them) and nothing else;
prints the path of the page written.
"""

from __future__ import annotations

import argparse
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

from harness.core.errors import InvalidInputError


def default_output(now: datetime | None = None) -> Path:
    """``reports/report-<UTC timestamp>.html``."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"report-{stamp}.html"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="render result files as one self-contained HTML report",
        description="Render result files (or directories of them) as one HTML page that opens "
        "offline: figures of latency, throughput, memory, energy, layers, roofline and "
        "cross-hardware speedups, and a sortable table of every case.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="result parquet files or directories holding them"
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PATH",
        help="HTML file to write (a regular file there is replaced; anything else there, a "
        "symbolic link included, is refused), or a directory to write report-<UTC "
        "timestamp>.html into: an existing one, or DIR/ (ending in a slash) to create it "
        "(default: reports/report-<UTC timestamp>.html)",
    )
    p.add_argument("--title", default=None, help="title of the page (default: cnnbench report)")
    p.add_argument(
        "--all-runs",
        action="store_true",
        help="draw every run of a configuration, pooled (one row per case: a valid row first, "
        "then the latest); default: per configuration the run that measured the most cases",
    )
    p.add_argument(
        "--run",
        action="append",
        default=None,
        metavar="RUN_ID",
        help="draw this run (repeatable); the other runs stay in the table of cases",
    )
    p.set_defaults(func=run)
    return p


_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def refusal(path: Path) -> str | None:
    """Why the report must not be written at ``path``, or None when it may: nothing is there,
    or a regular file (replaced). Writing goes through a temporary file and a rename, which
    would turn a FIFO, a device or a symbolic link into a regular file, so these are refused."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError:  # e.g. a parent that is not a directory: the write itself says why
        return None
    if stat.S_ISREG(mode):
        return None
    kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        return (
            f"{path} is a symbolic link (to {target}), not a regular file: pass -o "
            f"{path.parent / target} to replace the file it points to, or remove the link"
        )
    return (
        f"{path} is {kind}, not a regular file: pass -o with a file path (an existing regular "
        "file is replaced)"
    )


def clobbers_results(out: Path, inputs: list[str]) -> str | None:
    """Why writing the page at ``out`` would destroy measurements, or None: ``out`` is one of
    the inputs, a file named like a result file (``.parquet``, a part stream, inside a run's
    ``.parts`` directory), or an existing cnnbench result file."""
    from harness.results.loader import is_result_file
    from harness.results.parts import PART_SUFFIX, PARTS_SUFFIX

    for given in inputs:
        try:
            same = os.path.samefile(given, out)
        except OSError:  # one of the two is not there
            same = False
        if same:
            return (
                f"-o {out} is the input {given}: writing the report there would replace the "
                "measurements it holds; pass -o with another path (e.g. reports/NAME.html)"
            )
    if is_result_file(out):
        return (
            f"-o {out} is a cnnbench result file: writing the report there would replace the "
            "measurements it holds; pass -o with another path (e.g. reports/NAME.html)"
        )
    if out.name.endswith((".parquet", PART_SUFFIX)) or out.parent.name.endswith(PARTS_SUFFIX):
        return (
            f"-o {out} is named like a result file: the report would be read as a corrupt one "
            "or replace one; pass -o with an .html path"
        )
    return None


def output_path(given: str | None, inputs: list[str] | None = None) -> Path:
    """The file to write for ``-o given``: a fresh name inside a directory (an existing one, or
    one written with a final slash, created with the page); refused with one line when
    something other than a regular file sits there, or when it is an input or a result file."""
    if given is None:
        return default_output()
    out = Path(given)
    if given.endswith(("/", os.sep)):  # -o newdir/: a directory, created when the page is written
        if out.exists() and not out.is_dir():
            raise InvalidInputError(
                f"-o {given} names a directory, but {out} is a file: drop the slash to replace "
                "the file, or name a directory"
            )
        out = out / default_output().name
    elif out.is_dir():  # -o reports: a fresh name inside it (a link to a directory is fine)
        out = out / default_output().name
    problem = refusal(out) or clobbers_results(out, inputs or [])
    if problem is not None:
        raise InvalidInputError(problem)
    return out


def run(args: argparse.Namespace) -> int:
    out = output_path(args.output, args.paths)  # refused before anything is read
    from harness.report import write_report

    # a name cnnbench chose is never taken from another report (two at once in one second)
    fresh = args.output is None or args.output.endswith(("/", os.sep)) or out != Path(args.output)
    try:
        path = write_report(
            args.paths,
            out,
            title=args.title,
            replace=not fresh,
            all_runs=args.all_runs,
            runs=args.run,
        )
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write the report to {out}: {exc.strerror or exc}; pass -o with a writable "
            "file path"
        ) from None
    print(path)
    return 0
