"""pytest-xdist workers and their devices: a slot per worker (a replacement takes the dead
one's GPU and cores, never an empty set), the case a dying worker ran becomes a ``crashed``
row while the sweep finishes, and the threads each case ran with are in its case key."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.measure.gpus import Placement
from harness.plugin import xdist
from harness.plugin.state import STATE, State
from harness.results.store import load_results
from harness.run.grid import GridSettings

ROOT = Path(__file__).resolve().parents[1]
M = "tests.models_for_tests:"
FAST = [
    "--benchmark-only",
    "--cnn-min-time=0.01",
    "--cnn-min-rounds=3",
    "--cnn-max-time=0.3",
    "--cnn-warmup-rounds=1",
    "--cnn-target-ci=0",
    "--cnn-remeasure=0",
    "--cnn-power=off",
    "-p",
    "no:cacheprovider",
]


def _controller(placements: list[Placement]) -> State:
    state = State(
        device_name="cuda", scale_name="quick", overrides={}, grid=GridSettings(),
        results_dir=None, reports_dir=Path("reports"), report=False, isolate="model",
        max_minutes=None, smoke=False, role="controller",
    )  # fmt: skip
    state.placements = placements
    state.free_slots = list(range(len(placements)))
    return state


def _node(state: State, worker: str) -> SimpleNamespace:
    return SimpleNamespace(
        config=SimpleNamespace(stash={STATE: state}),
        gateway=SimpleNamespace(id=worker),
        workerinput={},
    )


def test_a_replacement_worker_takes_the_dead_workers_gpu_and_cores() -> None:
    gpus = [Placement(f"GPU-{i}", i, f"GPU-{i}", "H100", (2 * i, 2 * i + 1)) for i in range(2)]
    state = _controller(gpus)
    gw0, gw1 = _node(state, "gw0"), _node(state, "gw1")
    for node in (gw0, gw1):
        xdist.pytest_configure_node(node)
    assert [n.workerinput["cnnbench_slot"] for n in (gw0, gw1)] == [0, 1]
    xdist.pytest_testnodedown(gw0, "Not properly terminated")  # gw0 died
    gw2 = _node(state, "gw2")  # xdist's replacement: index 2 of 2 GPUs
    xdist.pytest_configure_node(gw2)
    assert gw2.workerinput["cnnbench_slot"] == 0
    assert gw2.workerinput["cnnbench_placement"]["visible"] == "GPU-0"
    assert gw2.workerinput["cnnbench_placement"]["cpus"] == (0, 1)
    assert state.node_errors["gw0"] == "Not properly terminated"


def test_a_worker_sets_its_gpu_and_cpus_before_cuda_and_never_an_empty_cpu_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pinned: list[tuple[int, ...]] = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: pinned.append(tuple(cpus)))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    for cpus, expected in (((4, 5), [(4, 5)]), ((), [])):
        pinned.clear()
        state = _controller([])
        state.role = "worker"
        placement = {"visible": "GPU-3", "nvml_index": 3, "uuid": "GPU-3", "name": "H100",
                     "cpus": list(cpus), "note": None}  # fmt: skip
        info = {"workerid": "gw9", "workercount": 2, "cnnbench_placement": placement}
        xdist.place_worker(SimpleNamespace(workerinput=info), state)  # type: ignore[arg-type]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-3"
        assert pinned == expected
        assert state.worker == "gw9" and state.placement.cpus == cpus


@pytest.fixture
def here(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return pytester


@pytest.mark.slow
def test_a_dying_worker_is_a_crashed_row_and_the_sweep_finishes(here: pytest.Pytester) -> None:
    """Issue 24 item 3: without isolation a model that aborts kills its xdist worker. Before:
    the replacement worker got an empty CPU slice (INTERNALERROR, exit 3, no summary, no row
    for the case), or the scheduler queued the killing case again and hung."""
    here.makepyfile(
        test_two=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}aborts_in_forward", "{M}tiny_cnn"], batch_sizes=[1, 2])
def test_models(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    results = here.path / "results"
    out = here.runpytest_subprocess(
        "-n", "2", "--cnn-isolate=none", f"--cnn-results-dir={results}", "--cnn-no-report",
        *FAST, timeout=300,
    )  # fmt: skip
    assert out.ret == pytest.ExitCode.TESTS_FAILED, out.stdout.str()[-3000:]
    out.assert_outcomes(passed=2, failed=2)
    assert "INTERNALERROR" not in out.stdout.str() + out.stderr.str()
    df = load_results(results).sort_values(["model", "batch_size"])
    assert len(df) == 4 and df["run_id"].nunique() == 1
    crashed = df[df["status"] == "crashed"]
    assert sorted(crashed["batch_size"]) == [1, 2]  # each batch killed one worker
    assert set(crashed["model"]) == {f"{M}aborts_in_forward"}
    assert crashed["error"].str.match(r"the xdist worker gw\d died while running the case").all()
    assert (df[df["status"] != "crashed"]["status"] == "ok").all()
    # issue 25 item 3: each case records the threads it ran with (the worker's cores), in its key
    ok = df[df["status"] == "ok"]
    assert ok["threads"].notna().all() and (ok["threads"] == ok["cpu_threads"]).all()
    out.stdout.fnmatch_lines(["*cnnbench summary*", "*crashed: the xdist worker gw*died*"])


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks a machine where CUDA does not work"
)
@pytest.mark.parametrize("extra", [[], ["-n", "2"]])
def test_a_cuda_device_that_does_not_work_stops_the_run_in_one_line_exit_2(
    here: pytest.Pytester, extra: list[str]
) -> None:
    """Issue 22 item 1: never a fall-back to the CPU; before: a collection error with a
    traceback, or under xdist a usage error (exit 4)."""
    here.makepyfile(
        test_one=f"""
import pytest

@pytest.mark.cnnbench(models=["{M}tiny_cnn"])
def test_one(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""
    )
    out = here.runpytest_subprocess("--cnn-device=cuda", *extra, *FAST)
    assert out.ret == 2
    lines = [ln for ln in (out.stdout.lines + out.stderr.lines) if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Exit: cnnbench: --cnn-device=cuda: CUDA is not available here: ")
    assert not (here.path / "results").exists()
