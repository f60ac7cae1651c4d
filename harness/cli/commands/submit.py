"""`cnnbench submit --shards N [--wait] ... -- <pytest arguments>`: one sweep as a Slurm job
array (submitit), every task a shard of the grid writing into one results tree; ``--resume ID``
submits again only what is not complete; ``--status [ID]`` says which shards are complete,
incomplete or missing.

Exit codes: 0 submitted (with ``--wait``: every shard complete); 1 with ``--wait`` or
``--status ID``, some shard not complete; 2 bad input (no Slurm, an unknown partition, a tree
that cannot be written, a sweep already running), one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.cluster import jobs
from harness.cluster import submit as engine
from harness.cluster.status import SweepStatus, sweep_status
from harness.core.errors import HarnessError, InvalidInputError
from harness.core.textsafe import terminal
from harness.results import tree as layout

PROG = "cnnbench submit"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "submit",
        help="run a sweep as a Slurm job array (submitit), shards into one results tree",
        description="Submit `pytest <arguments>` as N shards of one sweep: a Slurm job array "
        "through submitit, each task running its part of the grid (--cnn-shard=I/N, balanced "
        "by estimated cost, a model's cases together) into the results tree at --results-dir, "
        "which every node must be able to write. Without Slurm: --executor local runs the "
        "shards as processes here. Arguments after -- go to pytest (default: suites/ "
        "--benchmark-only).",
        usage="%(prog)s --shards N [--wait] [--results-dir DIR] [--partition P] "
        "[--gpus-per-task G] [--time T] [options] -- <pytest arguments>\n"
        "       %(prog)s --resume ID [--wait] [--results-dir DIR] [options]\n"
        "       %(prog)s --status [ID] [--results-dir DIR]",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--shards", type=int, metavar="N", help="split the sweep into N tasks")
    what.add_argument(
        "--resume",
        metavar="ID",
        help="submit again the shards of sweep ID that are not complete; each runs only its "
        "missing cases",
    )
    what.add_argument(
        "--status",
        nargs="?",
        const="",
        metavar="ID",
        help="which shards of sweep ID (default: every sweep in the tree) are complete, "
        "incomplete or missing",
    )
    p.add_argument(
        "--results-dir",
        default="results",
        metavar="DIR",
        help="the results tree, on a file system every node shares (default: results)",
    )
    p.add_argument("--wait", action="store_true", help="follow the tasks to the end: progress "
                   "per shard, then the merged summary and report")  # fmt: skip
    p.add_argument("--sweep", metavar="ID", help="the new sweep's id (default: a fresh one)")
    p.add_argument("--partition", metavar="P", help="Slurm partition (default: Slurm's)")
    p.add_argument("--gpus-per-task", type=int, metavar="G", help="GPUs for each shard")
    p.add_argument("--cpus-per-task", type=int, metavar="C", help="CPUs for each shard")
    p.add_argument(
        "--time",
        metavar="T",
        help="time limit of each task: minutes, HH:MM:SS or D-HH:MM (default: the partition's "
        "default time limit, else its maximum); a task that reaches it leaves its finished rows",
    )
    p.add_argument("--mem", metavar="M", help="memory for each task, as sbatch --mem (32G)")
    p.add_argument(
        "--array-parallelism",
        type=int,
        metavar="K",
        help="at most K tasks at once (sbatch --array=...%%K; default: all)",
    )
    p.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --sbatch qos=high --sbatch constraint=h100 "
        "(repeatable)",
    )
    p.add_argument(
        "--executor",
        choices=("slurm", "local"),
        default="slurm",
        help="slurm (default), or local: the shards as processes on this machine (waits)",
    )
    p.add_argument(
        "--reports-dir",
        default="reports",
        metavar="DIR",
        help="where --wait writes the sweep's report (default: reports)",
    )
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def _resources(args: argparse.Namespace) -> engine.Resources:
    for name in ("gpus_per_task", "cpus_per_task", "array_parallelism"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be 1 or more, got {value}")
    return engine.Resources(
        partition=args.partition,
        gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task,
        time_min=engine.parse_time(args.time) if args.time else None,
        array_parallelism=args.array_parallelism,
        mem=args.mem,
        sbatch=engine.parse_sbatch(args.sbatch),
    )


def run(args: argparse.Namespace) -> int:
    extra = list(args.pytest_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        raise InvalidInputError(
            f"unrecognized argument {extra[0]!r}: pytest's arguments go after --, e.g. "
            "cnnbench submit --shards 4 -- suites/ --benchmark-only"
        )
    root = Path(args.results_dir)
    if args.status is not None:
        return _status(root, args.status or None)
    if extra and args.resume:
        raise InvalidInputError(
            "--resume runs the sweep's own pytest arguments again: leave out those after --"
        )
    resources = _resources(args)
    if args.resume:
        layout.check_id(args.resume)
        sub = engine.resume(root, args.resume, resources, executor=args.executor)
        if sub is None:
            print(f"sweep {args.resume}: every shard is complete, nothing to submit")
            return 0
    else:
        if args.shards is None or args.shards < 1:
            raise InvalidInputError(f"--shards must be 1 or more, got {args.shards}")
        sub = engine.submit_sweep(
            root, extra, args.shards, resources, executor=args.executor, sweep=args.sweep
        )
    _submitted(sub)
    if not (args.wait or sub.executor == "local"):
        print(
            f"follow it: cnnbench submit --status {sub.sweep} --results-dir {root}\n"
            f"when it ends, anything missing: cnnbench submit --resume {sub.sweep} "
            f"--results-dir {root}"
        )
        return 0
    status = jobs.wait_for(sub, echo=lambda line: print(line, flush=True))
    return _end(sub, status, Path(args.reports_dir))


def _submitted(sub: jobs.Submission) -> None:
    shards = sorted(sub.job_ids)
    which = (
        f"{len(shards)} shard(s)"
        if len(shards) == sub.count
        else f"shard(s) {', '.join(map(str, shards))} of {sub.count}"
    )
    if sub.executor == "slurm":
        array = sub.job_ids[shards[0]].split("_")[0]
        how = f"Slurm job array {array}"
    else:
        how = "local processes " + ", ".join(sub.job_ids[s] for s in shards)
    print(f"{PROG}: sweep {sub.sweep}: {which} as {how}; results into {sub.root}", flush=True)


def _end(sub: jobs.Submission, status: SweepStatus, reports_dir: Path) -> int:
    print()
    for shard in status.shards:
        print(terminal(shard.line()))
    rows = _rows(status)
    if rows:
        from harness.plugin.summary import summary_table

        print(summary_table(rows, show_test=len({r.get("test_name") for r in rows}) > 1))
    leaves = layout.leaves(sub.root, sub.sweep)
    if rows and leaves:
        try:
            from harness.report import write_report

            out = write_report(leaves, reports_dir / f"{sub.sweep}.html")
            print(f"report: {out}")
        except (HarnessError, OSError) as exc:
            print(f"report not written: {terminal(exc)}", file=sys.stderr)
    if status.complete:
        print(f"sweep {sub.sweep}: complete, {sum(s.done for s in status.shards)} cases")
        return 0
    states = jobs.task_states(sub)
    for shard in status.shards:
        if not shard.complete and shard.index in sub.job_ids:
            log = jobs.task_log(sub, shard.index)
            said = _last_words(log) if log is not None else ""
            print(
                f"shard {shard.index}/{shard.count}: task {sub.job_ids[shard.index]} ended "
                f"{states.get(shard.index, 'ENDED')}"
                + (f", its last words: {terminal(said)}" if said else "")
                + f"; its log: {log}"
            )
    print(
        f"sweep {sub.sweep}: shard(s) {', '.join(map(str, status.incomplete()))} not complete; "
        f"run what is missing: {PROG} --resume {sub.sweep} --results-dir {sub.root}"
    )
    return 1


def _last_words(log: Path) -> str:
    """The last line the task's pytest wrote to stderr (a usage error says why the shard did
    not run), leaving out submitit's own log lines."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    mine = [line.strip() for line in lines if line.strip() and not line.startswith("submitit ")]
    return mine[-1][:300] if mine else ""


def _rows(status: SweepStatus) -> list[dict[str, Any]]:
    from harness.core.errors import ResultFileError
    from harness.core.missing import is_missing
    from harness.results import load_results

    leaves = layout.leaves(status.root, status.sweep)
    if not leaves:
        return []
    try:
        frame = load_results(leaves)
    except ResultFileError:
        return []
    return [
        {k: (None if not isinstance(v, list) and is_missing(v) else v) for k, v in row.items()}
        for row in frame.drop(columns=["latency_s_samples"]).to_dict("records")
    ]


def _status(root: Path, sweep: str | None) -> int:
    if not layout.is_tree(root):
        raise InvalidInputError(f"{root} is not a results tree (no {layout.MARKER})")
    names = [layout.check_id(sweep)] if sweep else layout.sweeps(root)
    if not names:
        print(f"no sweeps in {root}")
        return 0
    complete = True
    for name in names:
        status = sweep_status(root, name)
        state = "complete" if status.complete else "not complete"
        print(f"sweep {name}: {state}")
        for shard in status.shards:
            print("  " + terminal(shard.line()))
        complete &= status.complete
    return 0 if complete or not sweep else 1
