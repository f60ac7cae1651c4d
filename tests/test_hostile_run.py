"""Running cases against issue 24's hostile models (tests/hostile.py): a forward that hangs, one
that prints megabytes, one that sets torch's threads, one that changes the default dtype. The
process boundary is real where it is the point (a hung child is killed, its stack read); the
rest runs in this process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from harness.core.spec import Case
from harness.run.hang import COMPILE_S, HANG_FACTOR, HANG_FIRST_S, HANG_FLOOR_S, hang_limit_s
from harness.run.options import RunOptions
from harness.run.runner import run_case
from harness.run.sweep import Sweep

ROOT = Path(__file__).resolve().parents[1]
H = "tests.hostile:"
QUICK = RunOptions(
    min_time_s=0.01, min_rounds=3, max_time_s=0.2, warmup_rounds=1, remeasure=0, power="off"
)


def case(model: str, batch: int = 1, **kw: object) -> Case:
    return Case(H + model, (3, 16, 16), batch, device="cpu", **kw)


# ------------------------------------------------------------------ item 6: a hung forward


def test_the_hang_limit_follows_the_expected_duration_and_the_budget() -> None:
    # a model seen before: HANG_FACTOR times its expected duration, never under the floor
    assert hang_limit_s(30.0, 2.0)[0] == HANG_FACTOR * 30.0 + 2.0
    assert hang_limit_s(0.5, 2.0) == (HANG_FLOOR_S + 2.0, "10x its expected 0.5 s (at least 60 s)")
    # a model's first case: its duration is unknown
    assert hang_limit_s(None, 2.0)[0] == HANG_FIRST_S + 2.0
    assert hang_limit_s(None, 2.0, compiled=True)[0] == HANG_FIRST_S + 2.0 + COMPILE_S
    # never past the budget's end, and the row will say so
    assert hang_limit_s(None, 2.0, budget_left_s=42.0) == (
        42.0,
        "the end of the budget (--cnn-max-minutes)",
    )
    assert hang_limit_s(30.0, 2.0, budget_left_s=1e6)[0] == HANG_FACTOR * 30.0 + 2.0


def test_a_hung_model_is_killed_with_its_stack_and_its_other_cases_skipped() -> None:
    sweep = Sweep(QUICK, isolate="model", timeout_s=3.0)
    try:
        started = time.perf_counter()
        hung = sweep.run(case("hang", 1))
        took = time.perf_counter() - started
        second = sweep.run(case("hang", 2))
        sweep.timeout_s = None  # the next model gets its derived limit (3 s is no start-up)
        innocent = sweep.run(case("tiny", 1))
    finally:
        sweep.close()
    assert hung.status == "crashed"
    error = hung.row["error"]
    assert error.startswith("no answer after 3 s (the sweep's timeout): killed as hung; stack: ")
    # faulthandler's dump of the main thread, innermost first: where it hangs, and who called
    assert (
        "hostile.py:" in error and "in misbehave < hostile.py:" in error and "in forward" in error
    )
    assert took < 60  # 3 s, the stack, the child's start: never the old 600 s
    assert second.status == "skipped"
    assert second.row["error"].startswith(
        "not run: the model did not answer (tests.hostile:hang-3x16x16-b1"
    )
    assert second.wall_s < 1.0  # not run at all
    assert innocent.status == "ok", innocent.row["error"]


def test_a_hang_under_a_budget_ends_at_the_budget(tmp_path: Path) -> None:
    """The issue's command: --cnn-max-minutes bounds a hung case (it held 10 minutes)."""
    (tmp_path / "test_hang.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.cnnbench(models=["hostile:hang", "hostile:tiny"], batch_sizes=[1, 2])
            def test_hang(cnn_case, cnn_bench):
                cnn_bench(cnn_case)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--benchmark-only", "--cnn-max-minutes=0.3",
         "--cnn-max-time=0.3", "--cnn-remeasure=0", "--cnn-power=off", "--cnn-no-report",
         f"--cnn-results-dir={tmp_path / 'results'}", "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-4000:]
    from harness.results.store import load_results

    df = load_results(tmp_path / "results").set_index("batch_size", append=True)
    rows = {(m, b): (s, e) for (_, b), m, s, e in
            zip(df.index, df["model"], df["status"], df["error"], strict=True)}  # fmt: skip
    status, error = rows[("hostile:hang", 1)]
    assert status == "crashed", error
    assert "(the end of the budget (--cnn-max-minutes)): stopped; stack: " in error, error
    assert "stack: hostile.py:" in error
    assert rows[("hostile:hang", 2)][0] == "skipped"
    assert rows[("hostile:hang", 2)][1].startswith("not run: the model did not answer")
    assert took < 120, took  # the budget is 18 s; the rest is starting pytest and torch


# ------------------------------------------- item 11: child output bounded, no files left


CHATTY_SCRIPT = """
import os, sys, tempfile, threading, time
sys.path[:0] = [{tests!r}, {root!r}]
from harness.core.spec import Case
from harness.run.options import RunOptions
from harness.run.sweep import Sweep

def disk_use(top):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(top)
               for f in files if os.path.exists(os.path.join(d, f)))

if __name__ == "__main__":
    peak = [0]
    done = threading.Event()
    def sample():  # what $TMPDIR holds while the cases print
        while not done.is_set():
            peak[0] = max(peak[0], disk_use(tempfile.gettempdir()))
            time.sleep(0.05)
    threading.Thread(target=sample, daemon=True).start()
    opts = RunOptions(min_time_s=0.01, min_rounds=3, max_time_s=0.2, warmup_rounds=1,
                      remeasure=0, power="off")
    sweep = Sweep(opts, isolate="case")
    for name, batch in (("chatty", 1), ("chatty", 2), ("abort", 1)):
        r = sweep.run(Case("hostile:" + name, (3, 16, 16), batch, device="cpu"))
        print(r.status, "|", r.row.get("error"))
    sweep.close()
    done.set()
    print("tempdir", tempfile.gettempdir())
    print("peak", peak[0])
"""


def test_a_chatty_child_leaves_no_file_and_its_output_is_bounded(tmp_path: Path) -> None:
    # a short TMPDIR of its own: the fork server's socket path must fit AF_UNIX's 108 bytes
    # (a pytest-xdist worker's tmp_path does not)
    tmp = Path(tempfile.mkdtemp(prefix="cb-"))
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY_SCRIPT.format(tests=str(ROOT / "tests"), root=str(ROOT)))
    env = {**os.environ, "TMPDIR": str(tmp), "CHATTY_BYTES": str(10 << 20)}  # 10 MB a forward
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["ok | None", "ok | None"], proc.stdout
    assert lines[2].startswith("crashed | the case killed its process: SIGABRT"), lines[2]
    assert "Fatal Python error: Aborted in File " in lines[2] and "hostile.py" in lines[2]
    assert lines[3] == f"tempdir {tmp}"
    # 10 MB a forward never reached the disk (it filled a log file in $TMPDIR)
    assert int(lines[4].split()[1]) < 1 << 20, lines[4]
    # no cnnbench-child-*/stderr.log: 60 MB of output left nothing on disk (torch's own
    # inductor cache directory aside)
    try:
        assert [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")] == []
        assert sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) < 1 << 20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_tail_of_a_childs_output_stays_bounded() -> None:
    """3 MB through the pipe (as a child writes them): the last 64 KiB are held, no more."""
    from harness.run.child_log import TAIL_BYTES, ChildLog
    from harness.run.isolation import _context

    log = ChildLog(_context())
    block = b"".join(b"%07d\n" % i for i in range(375_000))  # 3,000,000 bytes, each line known
    fd = log.writer.fileno()
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view) :]
    log.close()  # the writer closed: the reader drains and stops
    assert log.total == len(block)
    text = log.text()
    assert len(text) == TAIL_BYTES and block.decode().endswith(text)
    assert text.endswith("0374999\n")
    assert log.since(len(block) - 8) == "0374999\n"


# ------------------------------------- item 15: the threads a model runs with are recorded


def test_a_step_that_sets_one_thread_is_recorded_as_it_ran() -> None:
    """A forward that sets torch's intra-op threads to 1 ran its timed windows with 1: the row
    says 1 and is invalid (it did not measure the case it names)."""
    before = torch.get_num_threads()
    result = run_case(case("one_thread_forward", threads=2), QUICK)
    assert torch.get_num_threads() == before  # the case's count does not leak
    row = result.row
    assert row["status"] == "ok" and row["threads"] == 2
    assert row["cpu_threads"] == 1  # what the timed step ran with (it said 2)
    assert row["validity"] == "invalid"
    assert row["validity_reason"].startswith(
        "the model set torch's intra-op threads to 1; the case asked for 2"
    )


def test_a_factory_that_sets_one_thread_does_not_set_the_windows_count() -> None:
    """Each window runs with the case's count (set again before it): a factory's own
    set_num_threads changes only the build, and the row is what it says."""
    before = torch.get_num_threads()
    row = run_case(case("one_thread", threads=2), QUICK).row
    assert torch.get_num_threads() == before
    assert row["status"] == "ok" and row["cpu_threads"] == 2
    assert not str(row["validity_reason"] or "").startswith("the model set")
    plain = run_case(case("tiny", threads=2), QUICK).row
    assert plain["cpu_threads"] == 2


# ---------------------------- Low: a factory's default dtype does not leak to the next model


def test_a_factorys_default_dtype_does_not_reach_the_next_model() -> None:
    assert torch.get_default_dtype() == torch.float32
    try:
        first = run_case(case("float64_default"), QUICK)
        assert torch.get_default_dtype() == torch.float32
        after = run_case(Case("lenet5", (1, 32, 32), 1, device="cpu"), QUICK)
    finally:
        torch.set_default_dtype(torch.float32)
    assert first.status in ("ok", "error")  # its own business
    assert after.status == "ok", after.row["error"]
