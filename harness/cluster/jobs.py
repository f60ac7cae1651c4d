"""The tasks of a submitted sweep: what one array task runs (``run_shard``: pytest for its shard,
pinned to the CPUs Slurm gave it), the sweep's manifest (``sweep=ID/sweep.json``: the pytest
arguments and every submission's job ids), and following the tasks (squeue, which needs no
accounting database; submitit's local jobs) with the shards' progress in the tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cluster.status import SweepStatus, sweep_status
from harness.core.errors import InvalidInputError
from harness.results import tree as layout

MANIFEST = "sweep.json"
JOBS_DIR = ".jobs"  # submitit's pickles and the tasks' logs, inside the sweep's directory
# squeue states of a task that may still write (everything else has ended)
LIVE = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED",
}  # fmt: skip


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


WARN_SIGNAL = signal.SIGUSR2  # what Slurm sends before the time limit (submitit's --signal)


def _ignore_warning() -> None:
    signal.signal(WARN_SIGNAL, signal.SIG_IGN)  # in pytest: the task stops it, not the signal


def run_shard(task: ShardTask) -> int:
    """The array task's body: pytest for the shard, its output in the task's log; -> pytest's
    exit code. On a node that does not bind tasks to their CPUs (TaskPlugin=task/none) the run
    is pinned to the CPUs Slurm allocated it, as an xdist worker is to its cores: two shards on
    one node then do not time each other's work.

    Near the time limit (or on preemption) Slurm sends SIGUSR2 to every process of the task:
    pytest ignores it and is sent Ctrl-C instead, so it stops after a row for the case it was
    running, merges its files (incomplete) and prints its summary before the limit; a
    re-submission then runs what is missing."""
    cpus = slurm_cpus()
    if cpus and hasattr(os, "sched_setaffinity"):
        mine = os.sched_getaffinity(0)
        if cpus < mine:
            os.sched_setaffinity(0, cpus)
    print(f"cnnbench shard {task.index}/{task.count}: {shlex.join(task.command())}", flush=True)
    proc = subprocess.Popen(task.command(), cwd=task.cwd, preexec_fn=_ignore_warning)

    def stop(signum: int, frame: Any) -> None:
        print(f"cnnbench shard {task.index}/{task.count}: {signal.Signals(signum).name}: the "
              "time limit is near, stopping after the current case", flush=True)  # fmt: skip
        proc.send_signal(signal.SIGINT)

    previous = signal.signal(WARN_SIGNAL, stop)
    try:
        return proc.wait()
    finally:
        signal.signal(WARN_SIGNAL, previous)


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


def write_manifest(root: str | os.PathLike, sweep: str, data: dict[str, Any]) -> None:
    path = manifest_path(root, sweep)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


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


def task_log(sub: Submission, shard: int) -> Path | None:
    """The stderr log of a shard's task (submitit names it by job id)."""
    job = sub.jobs.get(shard)
    path = getattr(getattr(job, "paths", None), "stderr", None)
    return Path(path) if path is not None else None
