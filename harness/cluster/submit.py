"""One sweep as a Slurm job array, through submitit: each array task is one shard running
``pytest <args> --cnn-shard=I/N --cnn-sweep=ID --cnn-results-dir=TREE`` on its node, all of
them writing into one results tree on a file system the nodes share.

* ``submit_sweep``: checks first (Slurm answers, the partition exists, the tree is writable,
  the pytest arguments leave the shard options to it), writes the sweep's manifest
  (``sweep=ID/sweep.json``: the arguments, each submission's job ids), then submits one array
  (``--array=0-K%P``) of the shards asked for; submitit's local executor runs the same tasks as
  processes on this machine where there is no Slurm (``executor="local"``).
* Following the tasks, the manifest and what a task runs: harness.cluster.jobs.
* A task that dies (node failure, time limit, OOM kill, scancel) leaves its finished rows;
  ``resume`` submits only the shards that are not complete, and each runs only its missing
  cases (harness.cluster.tree).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.cluster.jobs import (
    JOBS_DIR,
    ShardTask,
    Submission,
    live_jobs,
    read_manifest,
    run_shard,
    write_manifest,
)
from harness.cluster.status import sweep_status
from harness.cluster.tree import is_locked
from harness.core.errors import HarnessError, InvalidInputError
from harness.results import tree as layout

RESERVED = ("--cnn-shard", "--cnn-sweep", "--cnn-results-dir")
DEFAULT_ARGS = ("suites/", "--benchmark-only")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60


class SubmitError(HarnessError):
    """A sweep that cannot be submitted as asked: no Slurm, a bad partition, sbatch refused."""


# --- resources and checks --------------------------------------------------------------------


@dataclass
class Resources:
    """What each array task asks Slurm for; None leaves Slurm's (the partition's) default."""

    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    time_min: int | None = None
    array_parallelism: int | None = None
    mem: str | None = None
    sbatch: dict[str, str | bool] = field(default_factory=dict)


def parse_time(text: str) -> int:
    """Slurm's time formats (``30``, ``1:30:00``, ``2-00:00``, ...) -> whole minutes."""
    m = re.fullmatch(r"\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*", str(text))
    if not m:
        raise InvalidInputError(
            f"--time {text!r}: write minutes (90), HH:MM:SS (1:30:00) or D-HH:MM (2-00:00)"
        )
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:  # MM
        seconds = a * 60
    if seconds <= 0:
        raise InvalidInputError(f"--time {text!r}: the time limit must be more than zero")
    return math.ceil(seconds / 60)


def parse_sbatch(options: Sequence[str]) -> dict[str, str | bool]:
    """``["qos=high", "constraint=h100"]`` -> sbatch options (``--qos=high``)."""
    out = {}
    for item in options:
        key, sep, value = item.removeprefix("--").partition("=")
        if not key or not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise InvalidInputError(
                f"--sbatch {item!r}: write an sbatch option as KEY=VALUE (qos=high) or KEY"
            )
        out[key.replace("-", "_")] = value if sep else True
    return out


def slurm_missing() -> str | None:
    """Why Slurm cannot take a job from here (None: it can)."""
    if shutil.which("sbatch") is None:
        return "no Slurm here (sbatch is not on PATH)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Slurm does not answer ({exc})"
    if out.returncode != 0:
        return f"Slurm does not answer: {_first(out.stderr) or 'sinfo failed'}"
    return None


def partitions() -> list[str]:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=20)
    return sorted({p.strip().rstrip("*") for p in out.stdout.split() if p.strip()})


UNLIMITED_MIN = 365 * 24 * 60  # what "no limit" is asked as (submitit needs minutes)


def partition_time_min(partition: str | None) -> int:
    """The time limit a job gets on ``partition`` (None: the default partition) without
    --time: its DefaultTime, else its MaxTime, in minutes (``UNLIMITED_MIN`` for none)."""
    out = subprocess.run(
        ["scontrol", "show", "partition", "--oneliner"], capture_output=True, text=True, timeout=20
    ).stdout
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        name = fields.get("PartitionName")
        if (partition is None and fields.get("Default") == "YES") or name == partition:
            for key in ("DefaultTime", "MaxTime"):
                value = fields.get(key, "NONE")
                if value not in ("NONE", "UNLIMITED", "INFINITE"):
                    return parse_time(value)
            return UNLIMITED_MIN
    return UNLIMITED_MIN


def check_args(args: Sequence[str]) -> tuple[str, ...]:
    """The pytest arguments each shard runs with; those the submission sets are refused."""
    for arg in args:
        for name in RESERVED:
            if arg == name or arg.startswith(name + "="):
                what = "--results-dir" if name == "--cnn-results-dir" else "--shards/--sweep"
                raise InvalidInputError(
                    f"{arg}: cnnbench submit sets {name} for each shard; use its {what} instead"
                )
    return tuple(args) or DEFAULT_ARGS


def _first(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- submitting ------------------------------------------------------------------------------


def new_sweep_id() -> str:
    """``20261207T212233Z-sweep-1a2b3c``: sortable by submission time, unique."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-sweep-{secrets.token_hex(3)}"


def _executor(kind: str, folder: Path, resources: Resources, sweep: str, count: int) -> Any:
    import submitit

    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=resources.time_min or LOCAL_TIMEOUT_MIN)
        return executor

    executor = submitit.SlurmExecutor(folder=folder)
    params: dict[str, Any] = {
        "job_name": f"cnnbench-{sweep}"[:60],
        "ntasks_per_node": 1,
        "stderr_to_stdout": False,
        "array_parallelism": resources.array_parallelism or count,
    }
    if resources.partition:
        params["partition"] = resources.partition
    if resources.gpus_per_task:
        params["gpus_per_node"] = resources.gpus_per_task
    if resources.cpus_per_task:
        params["cpus_per_task"] = resources.cpus_per_task
    # submitit writes --time (5 min unless told) and times its own USR2 handling by it: without
    # --time, the partition's default limit (else its maximum), as a plain sbatch would get
    params["time"] = resources.time_min or partition_time_min(resources.partition)
    if resources.mem:
        params["mem"] = resources.mem
    if resources.sbatch:
        params["additional_parameters"] = dict(resources.sbatch)
    try:
        executor.update_parameters(**params)
    except ValueError as exc:
        raise SubmitError(f"submitit refused the job's options: {_first(str(exc))}") from None
    return executor


def _check_scheduler(executor: str, resources: Resources, count: int) -> None:
    """The executor, the shard count and, for Slurm, that it answers and has the partition."""
    if executor not in ("slurm", "local"):
        raise InvalidInputError(f"--executor must be slurm or local, got {executor!r}")
    if not 1 <= count <= 10_000:
        raise InvalidInputError(f"--shards must be from 1 to 10,000, got {count}")
    if executor == "slurm":
        missing = slurm_missing()
        if missing:
            raise SubmitError(
                f"{missing}: run cnnbench submit on a Slurm login node, or pass --executor "
                "local to run the shards as processes on this machine"
            )
        if resources.partition and resources.partition not in partitions():
            raise SubmitError(
                f"partition {resources.partition!r} does not exist; partitions here: "
                f"{', '.join(partitions()) or 'none'} (sinfo)"
            )


def _writable_tree(root: str | os.PathLike) -> Path:
    """``root`` as an absolute results tree this process can write (one line if not)."""
    root = Path(root).absolute()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".cnnbench-write-check-"):
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write the results tree at {root} ({exc.strerror or exc}): every task "
            "writes there; pass --results-dir on a file system the nodes share and can write"
        ) from None
    return layout.mark_tree(root)


def _submit_tasks(ex: Any, executor: str, tasks: list[ShardTask]) -> list[Any]:
    """One array of ``tasks`` (local: one job each); what sbatch refuses is a SubmitError
    in sbatch's own words."""
    try:
        with _stderr_kept() as said:  # sbatch writes its refusal to our stderr: kept for the line
            if executor == "slurm":
                return ex.map_array(run_shard, tasks)
            return [ex.submit(run_shard, t) for t in tasks]
    except (subprocess.CalledProcessError, RuntimeError, FileNotFoundError) as exc:
        raise SubmitError(
            f"sbatch refused the job: {_sbatch_reason(said[0] or str(exc))}"
        ) from None


def submit_sweep(
    root: str | os.PathLike,
    args: Sequence[str],
    count: int,
    resources: Resources,
    *,
    executor: str = "slurm",
    sweep: str | None = None,
    shards: Sequence[int] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Submission:
    """Submit shards ``shards`` (default: all) of ``count`` of a sweep into the tree at ``root``.

    A new sweep (``sweep`` None or not in the tree yet) writes its manifest; ``shards`` given
    with an existing sweep is a re-submission (``resume`` checks first)."""
    args = check_args(args)
    _check_scheduler(executor, resources, count)
    root = _writable_tree(root)
    fresh = shards is None
    sweep = layout.check_id(sweep or new_sweep_id())
    sweep_dir = layout.sweep_dir(root, sweep)
    if fresh and sweep_dir.exists():
        raise InvalidInputError(
            f"sweep {sweep} exists in {root} already: resume it with --resume {sweep}, or "
            "leave --sweep out for a new id"
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    here = str(Path(cwd or os.getcwd()).absolute())
    manifest = (
        {
            "sweep": sweep,
            "shards": count,
            "pytest_args": list(args),
            "cwd": here,
            "python": sys.executable,
            "submissions": [],
        }
        if fresh
        else read_manifest(root, sweep)
    )
    chosen = list(range(1, count + 1)) if shards is None else sorted(shards)
    tasks = [
        ShardTask(i, count, sweep, str(root), manifest["cwd"], tuple(manifest["pytest_args"]))
        for i in chosen
    ]
    folder = sweep_dir / JOBS_DIR
    folder.mkdir(exist_ok=True)
    ex = _executor(executor, folder, resources, sweep, len(tasks))
    try:
        jobs = _submit_tasks(ex, executor, tasks)
    except SubmitError:
        if fresh:  # nothing of it ran: no empty sweep left in the tree
            shutil.rmtree(sweep_dir, ignore_errors=True)
        raise
    ids = {t.index: str(j.job_id) for t, j in zip(tasks, jobs, strict=True)}
    manifest["submissions"].append(
        {
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "executor": executor,
            "jobs": {str(k): v for k, v in ids.items()},
            "resources": {k: v for k, v in resources.__dict__.items() if v not in (None, {})},
        }
    )
    write_manifest(root, sweep, manifest)
    return Submission(
        sweep, root, executor, count, dict(zip(chosen, jobs, strict=True)), ids, folder
    )


def _sbatch_reason(text: str) -> str:
    """sbatch's own words (``sbatch: error: ...``), else the last line of ``text``."""
    m = re.search(r"sbatch: error: ([^\n\\]+)", text)
    return m[1].strip() if m else _first(text)[:300]


@contextlib.contextmanager
def _stderr_kept() -> Iterator[list[str]]:
    """What child processes (sbatch) write to this process's stderr meanwhile, kept in the
    yielded list instead of shown (the CLI says it in its one line)."""
    said = [""]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said[0] = sink.read().decode(errors="replace")


def resume(
    root: str | os.PathLike,
    sweep: str,
    resources: Resources,
    *,
    executor: str = "slurm",
) -> Submission | None:
    """Submit again the shards of ``sweep`` that are not complete (None: every one is).

    Refused while a task of the sweep may still write (pending or running in Slurm, a live
    local process, a shard's lock held): two runs of one shard would write over each other."""
    manifest = read_manifest(root, sweep)
    live = live_jobs(root, sweep)
    if live:
        raise SubmitError(
            f"sweep {sweep} still has task(s) pending or running ({', '.join(live[:4])}"
            f"{' ...' if len(live) > 4 else ''}): wait for them to end (or scancel them), then "
            "resume it"
        )
    busy = [leaf for leaf in layout.leaves(root, sweep) if is_locked(leaf)]
    if busy:
        raise SubmitError(
            f"sweep {sweep}: {busy[0].relative_to(Path(root))} is being written by a run "
            "outside this submission: wait for it to end, then resume"
        )
    status = sweep_status(root, sweep, int(manifest["shards"]))
    todo = status.incomplete()
    if not todo:
        return None
    return submit_sweep(
        root,
        manifest["pytest_args"],
        int(manifest["shards"]),
        resources,
        executor=executor,
        sweep=sweep,
        shards=todo,
    )
