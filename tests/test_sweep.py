"""harness.run.sweep.Sweep and the runner's failure handling: one case one row, until out of memory,
the budget, a broken process, a full disk, crash isolation, and what no case may lose."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from harness.core.spec import Case
from harness.results import load_results
from harness.run import runner
from harness.run.runner import RunOptions, classify_failure, run_case
from harness.run.sweep import ResultsNotWritable, Sweep

M = "tests.models_for_tests:"
FAST = RunOptions(
    warmup_rounds=1, warmup_time_s=0.0, min_rounds=3, min_time_s=0.01, max_time_s=0.3,
    ci_target=None, remeasure=0, power="off",
)  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]


def test_a_case_two_tests_select_is_measured_once(tmp_path: Path) -> None:
    sweep = Sweep(FAST, results_dir=tmp_path)
    case = Case(M + "tiny_cnn", (3, 16, 16))
    first = sweep.run(case, test_name="suite.py::test_inference")
    second = sweep.run(case, test_name="suite.py::test_batch_and_layout")
    assert first.status == "ok"
    assert second.status == "skipped"
    assert second.row["error"] == "measured already by suite.py::test_inference (one case, one row)"
    sweep.finish()
    df = load_results(tmp_path)
    assert len(df) == 1 and df["test_name"].tolist() == ["suite.py::test_inference"]


def test_larger_batches_are_skipped_after_out_of_memory(tmp_path: Path) -> None:
    sweep = Sweep(FAST, results_dir=tmp_path)
    statuses = [
        sweep.run(Case(M + "oom_from_batch_4", (1, 2, 2), batch_size=b)).status for b in (1, 4, 8)
    ]
    assert statuses == ["ok", "oom", "skipped"]
    assert sweep.rows[-1]["error"] == "batch 4 already ran out of memory"
    # another configuration of the same model is not skipped
    other = Case(M + "oom_from_batch_4", (1, 2, 2), batch_size=2, threads=1)
    assert sweep.run(other).status == "ok"


def test_a_budget_skips_what_would_not_fit(tmp_path: Path) -> None:
    sweep = Sweep(FAST, results_dir=tmp_path, max_minutes=1e-6)
    first = sweep.run(Case(M + "tiny_cnn", (3, 16, 16)))
    second = sweep.run(Case(M + "tiny_cnn", (3, 16, 16), batch_size=2))
    assert first.status == "skipped" and second.status == "skipped"
    assert second.row["error"].startswith("budget: ")
    assert "--cnn-max-minutes" in second.row["error"]
    sweep.finish()
    assert load_results(tmp_path)["status"].tolist() == ["skipped", "skipped"]


def test_models_are_built_once_across_batch_sizes() -> None:
    sweep = Sweep(FAST)
    for b in (1, 2, 4):
        assert sweep.run(Case(M + "tiny_cnn", (3, 16, 16), batch_size=b)).status == "ok"
    assert (sweep.models.builds, sweep.models.reuses) == (1, 2)
    sweep.run(Case(M + "tiny_cnn", (3, 16, 16), mode="training", batch_size=2))
    assert sweep.models.builds == 2  # training changes the module: another key


def test_after_a_sticky_cuda_error_the_process_runs_nothing_more(monkeypatch) -> None:
    from harness.run.outcome import Opened
    from harness.run.session import LocalHost

    def broken(self, case, options):
        result = runner.CaseResult(case, runner.base_row(case, {}))
        result.row.update(status="error", error="AcceleratorError: illegal memory access")
        result.poisoned = "AcceleratorError: an illegal memory access was encountered"
        return Opened(row=result.row, result=result)

    sweep = Sweep(FAST, environment=lambda device: {})
    monkeypatch.setattr(LocalHost, "open", broken)
    assert sweep.run(Case(M + "tiny_cnn", (3, 16, 16))).status == "error"
    later = sweep.run(Case(M + "tiny_cnn", (3, 16, 16), batch_size=2))
    assert later.status == "skipped"
    assert "sticky CUDA error" in later.row["error"]
    assert "illegal memory access" in later.row["error"]


def test_a_full_disk_stops_the_sweep_and_keeps_what_was_written(tmp_path: Path, monkeypatch):
    sweep = Sweep(FAST, results_dir=tmp_path)
    assert sweep.run(Case(M + "tiny_cnn", (3, 16, 16))).status == "ok"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sweep.writer, "add_case", full)
    with pytest.raises(ResultsNotWritable, match="No space left on device"):
        sweep.run(Case(M + "tiny_cnn", (3, 16, 16), batch_size=2))
    assert len(sweep.rows) == 2  # the second row is kept for the summary
    monkeypatch.undo()
    sweep.finish(complete=False)
    df = load_results(tmp_path)
    assert len(df) == 1 and not df["run_complete"].any()
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_model_calling_sys_exit_is_an_error_row_not_a_lost_case() -> None:
    row = run_case(Case(M + "exits_in_forward", (1, 2, 2)), FAST).row
    assert row["status"] == "error"
    assert row["error"] == "SystemExit(3): the model called sys.exit()"


def test_ctrl_c_inside_a_case_keeps_its_row(monkeypatch) -> None:
    from harness.run import session

    calls = {"n": 0}
    real = session.time_window

    def interrupted(*args, **kwargs):  # Ctrl-C in the third window: two are kept
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "time_window", interrupted)
    with pytest.raises(runner.CaseInterrupted) as stop:
        run_case(Case(M + "tiny_cnn", (3, 16, 16)), FAST)
    row = stop.value.result.row
    assert row["error"] == "interrupted (Ctrl-C) while the case ran, after 2 window(s)"
    assert row["status"] == "error" and set(row["latency_s_window_ids"]) == {0, 1}

    def interrupted_open(*args, **kwargs):  # Ctrl-C before any window: the row says so
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "calibrate", interrupted_open)
    with pytest.raises(runner.CaseInterrupted) as stop:
        run_case(Case(M + "tiny_cnn", (3, 16, 16)), FAST)
    assert stop.value.result.row["error"] == "interrupted (Ctrl-C) while the case ran"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                      "102760448000 bytes. Error code 12 (Cannot allocate memory)"), "oom"),
        (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"), "oom"),
        (MemoryError(), "oom"),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x9216 and 4096x10)"), "error"),
    ],
)  # fmt: skip
def test_allocation_failures_of_every_kind_are_out_of_memory(exc, status) -> None:
    assert classify_failure(exc)[0] == status


def test_a_sticky_cuda_error_poisons_the_process_that_hit_it() -> None:
    result = run_case(Case(M + "sticky_cuda_error", (1, 2, 2)), FAST)
    assert result.status == "error"
    assert result.poisoned == ("RuntimeError: CUDA error: an illegal memory access was encountered")
    assert run_case(Case(M + "tiny_cnn", (3, 16, 16)), FAST).poisoned is None


def test_a_case_too_big_for_the_memory_left_is_skipped_before_it_runs() -> None:
    """The issue's reproduction: VGG-16 at batch 256 under `ulimit -v 4000000` (about 3.8 GiB of
    address space): its weights alone are 553 MB and its first conv output at batch 256 is
    256 * 64 * 224 * 224 * 4 bytes = 3.3 GB, so the analytic lower bound cannot fit."""
    code = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4_000_000 * 1024, resource.RLIM_INFINITY))
        from harness.run.runner import run_case, RunOptions
        from harness.core.spec import Case
        row = run_case(Case('vgg16', (3, 224, 224), batch_size=256),
                       RunOptions(min_rounds=1, warmup_rounds=0, min_time_s=0, power='off')).row
        print(row['status'], '|', row['error'])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    status, _, error = out.stdout.strip().partition(" | ")
    assert status == "skipped", out.stdout + out.stderr
    largest = 256 * 64 * 224 * 224 * 4
    assert f"largest layer output {largest:,}" in error
    assert "ulimit -v" in error and "needs at least" in error


def test_a_data_dependent_model_runs_without_a_static_profile() -> None:
    row = run_case(Case(M + "data_dependent", (3, 8, 8)), FAST).row
    assert row["status"] == "ok", row.get("error")
    assert row["profile_source"].startswith("not profiled: ")
    assert "reads tensor values" in row["profile_source"]
    assert row.get("macs") is None and row.get("activation_bytes") is None  # null, never 0
    assert row["params"] == 3 * 4 * 9 + 4 + 4 * 2 + 2  # counted on the real module
    assert row["latency_s_median"] > 0


def test_a_gpu_row_skipped_before_any_case_ran_is_not_given_the_cpus_facts() -> None:
    """Under isolation the parent never touches the GPU; a GPU case it skips itself (here: the
    budget is spent before the first case) took the host CPU's facts (device_name = the CPU
    model). The facts now come from a child asked for that device: on this machine, without
    CUDA, it has none to give, so the row names no device rather than the wrong one."""
    import time

    from harness.measure.env import cpu_model

    sweep = Sweep(FAST, isolate="model", max_minutes=0.01, started=time.time() - 60)
    try:
        row = sweep.run(Case(M + "tiny_cnn", (3, 16, 16), device="cuda")).row
        cpu_row = sweep.run(Case(M + "tiny_cnn", (3, 16, 16))).row
    finally:
        sweep.close()
    assert row["status"] == "skipped" and row["error"].startswith("budget")
    assert row["device"] == "cuda"
    assert row.get("device_name") != cpu_model()
    assert row.get("device_name") is None
    assert cpu_row["status"] == "skipped" and cpu_row["device_name"] == cpu_model()
    assert row["host"] == cpu_row["host"] is not None  # the run's facts are on both
