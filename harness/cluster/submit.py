"""One sweep as a Slurm job array, through submitit: each array task is one shard running
``pytest <args> --cnn-shard=I/N --cnn-sweep=ID --cnn-results-dir=TREE`` on its node, all of
them writing into one results tree on a file system the nodes share.

* ``submit_sweep``: checks first (Slurm answers, the partition exists, the tree is writable,
  the pytest arguments leave the shard options to it), writes the sweep's manifest
  (``sweep=ID/sweep.json``: the arguments, each submission's job ids), then submits one array
  (``--array=0-K%P``) of the shards asked for; submitit's local executor runs the same tasks as
  processes on this machine where there is no Slurm (``executor="local"``).
* ``wait_for``: follows the tasks (squeue, which needs no accounting database) and the tree
  (cases done per shard), printing a line when something changes.
* A task that dies (node failure, time limit, OOM kill, scancel) leaves its finished rows;
  ``resume`` submits only the shards that are not complete, and each runs only its missing
  cases (harness.cluster.tree).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.cluster.tree import SweepStatus, is_locked, sweep_status
from harness.core.errors import HarnessError, InvalidInputError
from harness.results import tree as layout

MANIFEST = "sweep.json"
JOBS_DIR = ".jobs"  # submitit's pickles and the tasks' logs, inside the sweep's directory
RESERVED = ("--cnn-shard", "--cnn-sweep", "--cnn-results-dir")
# squeue states of a task that may still write (everything else has ended)
LIVE = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED",
}  # fmt: skip
DEFAULT_ARGS = ("suites/", "--benchmark-only")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60


class SubmitError(HarnessError):
    """A sweep that cannot be submitted as asked: no Slurm, a bad partition, sbatch refused."""


# --- what an array task runs -----------------------------------------------------------------


@dataclass(frozen=True)
class ShardTask:
    """One array task: shard ``index`` of ``count`` of ``sweep``, run from ``cwd``."""

    index: int
    count: int
    sweep: str
    root: str
    cwd: str
    args: tuple[str, ...]
    python: str = sys.executable

    def command(self) -> list[str]:
        return [
            self.python, "-m", "pytest", *self.args, f"--cnn-shard={self.index}/{self.count}",
            f"--cnn-sweep={self.sweep}", f"--cnn-results-dir={self.root}", "--cnn-no-report",
        ]  # fmt: skip


def slurm_cpus() -> set[int] | None:
    """The CPUs Slurm allocated to this job on this node (``scontrol show job -d``), or None
    outside Slurm or where it cannot say."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or shutil.which("scontrol") is None:
        return None
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "-d", job], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CPU_IDs=([0-9,\-]+)", out)
    if not m:
        return None
    cpus: set[int] = set()
    for part in m[1].split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def run_shard(task: ShardTask) -> int:
    """The array task's body: pytest for the shard, its output in the task's log; -> pytest's
    exit code. On a node that does not bind tasks to their CPUs (TaskPlugin=task/none) the run
    is pinned to the CPUs Slurm allocated it, as an xdist worker is to its cores: two shards on
    one node then do not time each other's work."""
    cpus = slurm_cpus()
    if cpus and hasattr(os, "sched_setaffinity"):
        mine = os.sched_getaffinity(0)
        if cpus < mine:
            os.sched_setaffinity(0, cpus)
    print(f"cnnbench shard {task.index}/{task.count}: {shlex.join(task.command())}", flush=True)
    return subprocess.run(task.command(), cwd=task.cwd, check=False).returncode


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
    sbatch: dict[str, str] = field(default_factory=dict)


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


def parse_sbatch(options: Sequence[str]) -> dict[str, str]:
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


# --- the manifest ----------------------------------------------------------------------------


def manifest_path(root: str | os.PathLike, sweep: str) -> Path:
    return layout.sweep_dir(root, sweep) / MANIFEST


def read_manifest(root: str | os.PathLike, sweep: str) -> dict[str, Any]:
    path = manifest_path(root, sweep)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(
            f"no submitted sweep {sweep!r} in {root} ({path} is missing); its sweeps: "
            f"{', '.join(layout.sweeps(root)) or 'none'}"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not a readable sweep manifest ({exc})") from None


def _write_manifest(root: str | os.PathLike, sweep: str, data: dict[str, Any]) -> None:
    path = manifest_path(root, sweep)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


# --- submitting ------------------------------------------------------------------------------


def new_sweep_id() -> str:
    """``20261207T212233Z-sweep-1a2b3c``: sortable by submission time, unique."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-sweep-{secrets.token_hex(3)}"


@dataclass
class Submission:
    """What one ``submit`` call started: shard -> job id, and the submitit jobs themselves."""

    sweep: str
    root: Path
    executor: str
    count: int
    jobs: dict[int, Any]  # shard -> submitit Job
    job_ids: dict[int, str]  # shard -> "12_0" (Slurm) or a pid (local)
    logs: Path


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
    layout.mark_tree(root)
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
        if executor == "slurm":
            jobs = ex.map_array(run_shard, tasks)
        else:
            jobs = [ex.submit(run_shard, t) for t in tasks]
    except subprocess.CalledProcessError as exc:
        why = _first((exc.stderr or b"").decode(errors="replace") if exc.stderr else str(exc))
        raise SubmitError(f"sbatch refused the job: {why}") from None
    except FileNotFoundError as exc:
        raise SubmitError(f"cannot submit: {exc}") from None
    except RuntimeError as exc:  # submitit wraps sbatch's failure in a RuntimeError
        raise SubmitError(f"sbatch refused the job: {_sbatch_reason(exc)}") from None
    ids = {t.index: str(j.job_id) for t, j in zip(tasks, jobs, strict=True)}
    manifest["submissions"].append(
        {
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "executor": executor,
            "jobs": {str(k): v for k, v in ids.items()},
            "resources": {k: v for k, v in resources.__dict__.items() if v not in (None, {})},
        }
    )
    _write_manifest(root, sweep, manifest)
    return Submission(
        sweep, root, executor, count, dict(zip(chosen, jobs, strict=True)), ids, folder
    )


def _sbatch_reason(exc: BaseException) -> str:
    """sbatch's own words from submitit's error (its message quotes sbatch's stderr)."""
    text = str(exc)
    m = re.search(r"sbatch: error: ([^\n\\]+)", text)
    return m[1].strip() if m else _first(text)[:300]


# --- following the tasks ---------------------------------------------------------------------


def slurm_states(job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{"12_0": ("RUNNING", "node1"), ...}`` for array tasks Slurm still knows (squeue keeps
    ended ones for MinJobAge; a task it no longer lists has ended)."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    if not arrays or shutil.which("squeue") is None:
        return {}
    out = subprocess.run(
        ["squeue", "-h", "-r", "--states=all", "-j", ",".join(arrays), "-o", "%i|%T|%N"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def task_states(sub: Submission) -> dict[int, str]:
    """shard -> its task's state now (PENDING, RUNNING, COMPLETED, CANCELLED, ... or ENDED)."""
    if sub.executor == "local":
        out = {}
        for shard, job in sub.jobs.items():
            state = str(job.state).upper()
            out[shard] = "RUNNING" if state == "RUNNING" else "ENDED"
        return out
    known = slurm_states(list(sub.job_ids.values()))
    return {s: known.get(j, ("ENDED", ""))[0] for s, j in sub.job_ids.items()}


def live_jobs(root: str | os.PathLike, sweep: str) -> list[str]:
    """Tasks of the sweep's submissions that may still write (pending or running)."""
    manifest = read_manifest(root, sweep)
    ids = [j for s in manifest.get("submissions", []) for j in s.get("jobs", {}).values()]
    slurm = [j for s in manifest.get("submissions", []) if s.get("executor") == "slurm"
             for j in s.get("jobs", {}).values()]  # fmt: skip
    live = [j for j, (state, _) in slurm_states(slurm).items() if state in LIVE]
    for s in manifest.get("submissions", []):
        if s.get("executor") == "local":
            live += [j for j in s.get("jobs", {}).values() if _pid_alive(j)]
    return [j for j in ids if j in live]


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, OSError):
        return False
    return True


def wait_for(
    sub: Submission,
    *,
    poll_s: float = 2.0,
    echo: Callable[[str], None] = print,
) -> SweepStatus:
    """Follow the submission until every task has ended; a line per change of a shard (its
    task's state, its cases done). -> the sweep's status at the end."""
    seen: dict[int, tuple[str, int]] = {}
    delay = poll_s
    while True:
        states = task_states(sub)
        status = sweep_status(sub.root, sub.sweep, sub.count)
        by_index = {s.index: s for s in status.shards}
        for shard in sorted(states):
            st = by_index.get(shard)
            done = st.done if st else 0
            now = (states[shard], done)
            if seen.get(shard) != now:
                seen[shard] = now
                planned = "?" if st is None or st.planned is None else st.planned
                echo(
                    f"shard {shard}/{sub.count} (job {sub.job_ids[shard]}): "
                    f"{states[shard].lower()}, {done}/{planned} cases"
                )
        if all(state not in LIVE for state in states.values()):
            break
        time.sleep(delay)
        delay = min(delay * 1.25, 15.0)
    return sweep_status(sub.root, sub.sweep, sub.count)


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


def task_log(sub: Submission, shard: int) -> Path | None:
    """The stderr log of a shard's task (submitit names it by job id)."""
    job = sub.jobs.get(shard)
    path = getattr(getattr(job, "paths", None), "stderr", None)
    return Path(path) if path is not None else None
