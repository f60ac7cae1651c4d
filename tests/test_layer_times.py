"""Measured time per layer (harness.measure.layer_times) on real runs of small models on this CPU.

Every run goes through harness.run.runner.run_case with ``layer_times=True``, as a sweep does. The
runs pin one intra-op thread: with two OpenMP threads on two cores shared with other work, a
step's time swings several-fold whenever the other thread is descheduled, and the coverage
(profiled op time / timed median, taken seconds apart) with it. The checks that compare times
(coverage, timing with and without layer times) need a quiet machine: they measure up to three
times until the runner calls the row ``valid``, and skip with the runner's noise verdict when
it never does (a load of 10 on 2 cores makes any timing comparison meaningless).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from harness.core.schema import column_names
from harness.core.spec import Case
from harness.measure.layer_times import LayerTimeError, measure_layer_times, profiled_step_ratio
from harness.profile import profile
from harness.results.store import ResultWriter, load_results
from harness.run.runner import CaseResult, RunOptions, run_case
from harness.run.step import prepare_step

# times compared across runs: the CPU must be this test's alone (make test: the serial phase)
pytestmark = pytest.mark.serial

HERE = "tests.test_layer_times:"
OPTIONS = RunOptions(
    warmup_rounds=2,
    warmup_time_s=0.05,
    min_rounds=8,  # the runner's noise check wants 6 or more for the median's interval
    min_time_s=0.3,
    max_time_s=3.0,
    ci_target=None,
    remeasure=0,
    threads=1,
    power="off",
    layer_times=True,
    layer_time_steps=5,
)


def measured(model: str, shape: tuple[int, ...], batch: int = 1, **case: object) -> CaseResult:
    res = run_case(Case(model, shape, batch, threads=1, **case), OPTIONS)  # type: ignore[arg-type]
    assert res.row["status"] == "ok", res.row.get("error")
    assert res.row["layer_time_source"].startswith("torch.profiler"), res.row["layer_time_source"]
    return res


def valid(case: Case, options: RunOptions = OPTIONS, tries: int = 3) -> CaseResult:
    """A run the runner's noise checks call valid, or a skip that quotes why none was."""
    for _ in range(tries):
        res = run_case(case, options)
        assert res.row["status"] == "ok", res.row.get("error")
        if res.row["validity"] == "valid":
            return res
    pytest.skip(f"this machine is too busy to compare times: {res.row['validity_reason']}")


@pytest.fixture(scope="module")
def resnet() -> CaseResult:
    return measured("resnet18", (3, 64, 64))


@pytest.fixture(scope="module")
def lenet8() -> CaseResult:
    return measured("lenet5", (1, 32, 32), 8)


# ------------------------------------------------------------------------------ consistency


@pytest.mark.parametrize(
    ("model", "shape", "batch"),
    [
        ("lenet5", (1, 32, 32), 1),
        ("inception_3a", (192, 28, 28), 1),
        ("resnet1d18", (1, 5000), 8),
        ("alexnet", (3, 224, 224), 1),
    ],
)
def test_layer_times_cover_the_step_on_the_cpu(model, shape, batch):
    """Issue 11's bound: the rows' op time / the timed median lies in 0.85..1.15 (below 1 by
    the Python time between ops, above by the profiler's bookkeeping inside ops). Checked on a
    row the runner calls valid. Whatever the load, the layers' op time is at most the profiled
    steps that hold it (no op counted twice); how much less depends on the load, since a
    descheduled thread between two ops adds to the step and to no op."""
    case = Case(model, shape, batch, threads=1)
    for _ in range(3):
        res = run_case(case, OPTIONS)
        row = res.row
        assert row["status"] == "ok", row.get("error")
        coverage, ratio = row["layer_time_coverage"], profiled_step_ratio(row["layer_time_source"])
        assert ratio is not None, row["layer_time_source"]
        assert coverage / ratio <= 1.05, (coverage, ratio, row["layer_time_source"])
        # the bound is the profiler's accounting: it holds where the profiled steps ran at the
        # timed speed (this VM's host changes speed 1.8x in spells of 0.1 s: a profile in a
        # slow spell after valid windows took 1.16x the median and covered 0.82 of it)
        if row["validity"] == "valid" and ratio <= 1.10:
            assert 0.85 <= coverage <= 1.15, (coverage, row["layer_time_source"])
            assert row["layer_time_steps"] == 5
            return
    why = row["validity_reason"] or f"the profiled steps took {ratio:.2f}x the timed median"
    pytest.skip(f"the 0.85-1.15 bound needs a quiet machine: {why}")


def test_rows_add_up_to_the_coverage(resnet):
    layers, row = resnet.layers, resnet.row
    total = layers["time_s"].sum()
    assert total / row["latency_s_median"] == pytest.approx(row["layer_time_coverage"])
    assert layers["time_share"].sum() == pytest.approx(1.0)
    assert (layers["time_s"] >= 0).all() and layers["time_s"].notna().all()
    assert list(layers["layer_index"]) == list(range(len(layers)))
    assert layers["time_s_backward"].isna().all()  # inference: no backward was run


def test_leaf_rows_are_the_static_rows_in_order(resnet):
    static = profile("resnet18", (3, 64, 64)).to_frame()
    leaves = resnet.layers[resnet.layers["layer_kind"] == "leaf"]
    assert list(leaves["layer_name"]) == list(static["layer_name"])
    assert list(leaves["macs"]) == list(static["macs"])
    assert list(leaves["params"]) == list(static["params"])
    assert resnet.layers["macs"].sum() == resnet.row["macs"]
    assert resnet.layers["params"].sum() == resnet.row["params"]


def test_residual_add_is_a_parent_ops_row_after_its_block(resnet):
    layers = resnet.layers
    parents = layers[layers["layer_kind"] == "parent_ops"]
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert list(parents["layer_name"]) == [*blocks, "<model>"]  # the root's flatten
    assert set(parents.loc[parents["layer_name"] != "<model>", "layer_type"]) == {"BasicBlock"}
    assert (parents["time_s"] > 0).all()
    assert (parents["macs"] == 0).all() and parents["bytes_moved"].isna().all()
    # a block's own row follows its last child (the block's final ReLU)
    names = list(layers["layer_name"])
    for block in blocks:
        assert names[names.index(block) - 1] == f"{block}.relu"


def test_googlenet_cat_is_the_inception_blocks_own_ops():
    res = measured("googlenet", (3, 32, 32))
    parents = res.layers[res.layers["layer_kind"] == "parent_ops"]
    inception = parents[parents["layer_type"] == "Inception"]
    assert len(inception) == 9  # 3a, 3b, 4a..4e, 5a, 5b: each ends in torch.cat
    assert (inception["time_s"] > 0).all()
    # BasicConv2d's functional ReLU is its own op too
    assert (parents["layer_type"] == "BasicConv2d").sum() == 57


# ------------------------------------------------------------------------ derived columns


def test_linear_bytes_moved_is_weights_inputs_outputs(lenet8):
    """LeNet-5's F6: Linear(120 -> 84) at batch 8, float32, from its shapes."""
    f6 = lenet8.layers.set_index("layer_name").loc["f6"]
    weights = 120 * 84 + 84
    expected = 4 * (weights + 8 * 120 + 8 * 84)
    assert f6["bytes_moved"] == expected
    macs = 8 * 120 * 84
    assert f6["macs"] == macs
    assert f6["arithmetic_intensity"] == pytest.approx(2 * macs / expected)
    assert f6["achieved_flops_per_s"] == pytest.approx(2 * macs / f6["time_s"])


def test_bytes_moved_counts_floats_at_the_case_dtype():
    res = measured("lenet5", (1, 32, 32), 8, dtype="bfloat16", dtype_method="cast")
    f6 = res.layers.set_index("layer_name").loc["f6"]
    assert f6["bytes_moved"] == 2 * (120 * 84 + 84 + 8 * 120 + 8 * 84)


def test_layers_without_counted_macs_have_no_flops_rate(lenet8):
    layers = lenet8.layers
    no_macs = layers[layers["macs"] == 0]
    assert len(no_macs) > 0
    assert no_macs["achieved_flops_per_s"].isna().all()
    assert no_macs["arithmetic_intensity"].isna().all()
    counted = layers[layers["macs"] > 0]
    assert counted["achieved_flops_per_s"].notna().all()


# ------------------------------------------------------------------ timing is left alone


def test_layer_times_do_not_change_the_timing_columns():
    """Both runs in one test: the row's timing with layer times on is the same within noise
    (the profiled steps come after the timed rounds)."""
    case = Case("resnet18", (3, 64, 64), 1, threads=1)
    off = valid(case, replace(OPTIONS, layer_times=False))
    on = valid(case, OPTIONS)
    off2 = valid(case, replace(OPTIONS, layer_times=False))
    baseline = (off.row["latency_s_median"] + off2.row["latency_s_median"]) / 2
    ratio = on.row["latency_s_median"] / baseline
    assert 0.67 < ratio < 1.5, (ratio, off.row["latency_s_median"], off2.row["latency_s_median"])
    assert len(on.row["latency_s_samples"]) == on.row["rounds"]
    assert off.row.get("layer_time_coverage") is None and on.row["layer_time_coverage"] > 0


# --------------------------------------------------------------------------------- training


def test_training_times_backward_per_layer():
    res = measured("lenet5", (1, 32, 32), 8, mode="training")
    layers, row = res.layers, res.row
    assert "autograd sequence number" in row["layer_time_source"]
    convs = layers[layers["layer_type"] == "Conv2d"]
    assert (convs["time_s_backward"] > 0).all()
    total = layers["time_s"].sum() + layers["time_s_backward"].sum()
    assert total / row["latency_s_median"] == pytest.approx(row["layer_time_coverage"])
    # loss and optimizer step are in no layer, so the layers cover less than the step: their
    # share of the profiled steps themselves (this VM's host may run the profile in another
    # speed state than the timed windows: 1.15x the timed median happened, coverage 1.151)
    ratio = profiled_step_ratio(row["layer_time_source"])
    assert ratio is not None, row["layer_time_source"]
    assert 0.3 < row["layer_time_coverage"] / ratio <= 1.05, (row["layer_time_coverage"], ratio)


class _SlowBackward(torch.autograd.Function):
    """Identity forward; a backward that takes at least 30 ms."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        time.sleep(0.03)
        return grad


class SlowGrad(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SlowBackward.apply(x)


def slow_backward_net() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 16), SlowGrad(), nn.ReLU(), nn.Linear(16, 4))


def test_backward_time_goes_to_the_layer_whose_forward_made_the_node():
    res = measured(HERE + "slow_backward_net", (1, 16), 4, mode="training")
    back = res.layers.set_index("layer_name")["time_s_backward"]
    assert back["1"] >= 0.03  # the 30 ms sleep of SlowGrad's backward, there and only there
    assert back.drop("1").max() < 0.01


# ------------------------------------------------------------------------ model structure


class TwiceShared(nn.Module):
    """One Linear called twice, with a ReLU between: two static rows for one module."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(32, 32)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.fc(x)))


def twice_shared() -> nn.Module:
    return TwiceShared()


def test_a_shared_module_gives_one_row_per_call():
    res = measured(HERE + "twice_shared", (1, 32), 2)
    layers = res.layers
    assert list(layers["layer_name"]) == ["fc", "act", "fc"]
    assert list(layers["params"]) == [32 * 32 + 32, 0, 0]  # counted at the first use
    assert (layers["time_s"] > 0).all()
    # the weights are read at each call
    expected = 4 * (32 * 32 + 32 + 2 * 32 + 2 * 32)  # input and output: 2x1x32
    assert list(layers.loc[layers["layer_name"] == "fc", "bytes_moved"]) == [expected] * 2


class TrainOnly(nn.Module):
    """A module that runs only in training: the static (eval) trace never sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.extra = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        return self.extra(x) if self.training else x


def train_only() -> nn.Module:
    return TrainOnly()


def test_calls_the_static_trace_never_saw_are_refused_with_the_reason():
    case = Case(HERE + "train_only", (1, 8), 2, mode="training")
    static = profile(HERE + "train_only", (1, 8), 2).to_frame()
    prepared = prepare_step(case, torch.device("cpu"))
    with pytest.raises(LayerTimeError, match="'extra'"):
        measure_layer_times(
            prepared, case, torch.device("cpu"), steps=2, static=static, step_median_s=1e-3
        )
    res = run_case(case, OPTIONS)  # in a run: the case stays ok and says why
    assert res.row["status"] == "ok"
    assert res.row["layer_time_source"].startswith("not measured: LayerTimeError")
    assert res.row.get("layer_time_coverage") is None


def test_compiled_case_is_not_measured_and_says_why():
    case = Case("lenet5", (1, 32, 32), 1, compile=True)
    static = profile("lenet5").to_frame()
    out = measure_layer_times(
        None, case, torch.device("cpu"), steps=3, static=static, step_median_s=1e-3
    )
    assert out.columns["layer_time_coverage"] is None
    assert "compiled" in out.columns["layer_time_source"]
    assert out.columns["layer_time_source"].startswith("not measured")
    assert out.layers["time_s"].isna().all() and len(out.layers) == len(static)
    assert set(out.layers["layer_kind"]) == {"leaf"}


@pytest.mark.parametrize(("steps", "median"), [(0, 1e-3), (2.5, 1e-3), (2, 0.0)])
def test_bad_arguments_are_typed_errors(steps, median):
    from harness.core.errors import InvalidInputError

    case = Case("lenet5", (1, 32, 32), 1)
    with pytest.raises(InvalidInputError):
        measure_layer_times(
            None, case, torch.device("cpu"), steps=steps, static=pd.DataFrame(),
            step_median_s=median,
        )  # fmt: skip


# ------------------------------------------------------------------------------ result files


def test_layer_rows_go_through_the_result_writer(tmp_path, resnet):
    assert set(resnet.layers.columns) <= set(column_names("layers"))
    with ResultWriter(tmp_path, run_id="layers-test") as writer:
        writer.add_case(resnet.row, layers=resnet.layers)
    back = load_results(tmp_path, table="layers")
    assert len(back) == len(resnet.layers)
    assert list(back["layer_kind"]) == list(resnet.layers["layer_kind"])
    np.testing.assert_allclose(back["time_s"].astype(float), resnet.layers["time_s"].astype(float))
    parents = back[back["layer_kind"] == "parent_ops"]
    assert parents["bytes_moved"].isna().all()  # null, not 0
    assert back["time_s_backward"].isna().all()
    cases = load_results(tmp_path)
    assert cases.loc[0, "layer_time_coverage"] == pytest.approx(resnet.row["layer_time_coverage"])
    assert cases.loc[0, "layer_time_steps"] == 5


# ------------------------------------------------------- nothing attached after a profile


def _dispatch_bound_median(step, rounds: int = 400) -> float:
    """The median of ``rounds`` calls of a step of tiny ops (op dispatch is what a profiler's
    callbacks slow down)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def test_a_case_after_a_profiled_case_runs_as_before_it():
    """Issue 22 item 7, on the CPU: a case's median in this process is unchanged after a
    profiled case. The check can fail: the same step under a profiler still attached is
    measured too, and must be clearly slower (else this machine cannot tell)."""
    x = torch.randn(1)

    def step() -> None:
        y = x
        for _ in range(30):
            y = y + 1.0
        y.sum()

    with torch.inference_mode():
        before = min(_dispatch_bound_median(step) for _ in range(3))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
            attached = min(_dispatch_bound_median(step) for _ in range(3))
        measured("lenet5", (1, 32, 32), 2)  # a profiled case, as a sweep runs it, in-process
        after = min(_dispatch_bound_median(step) for _ in range(3))
    if attached / before < 1.1:
        pytest.skip(f"a profiler slows this step only {attached / before:.2f}x here: no signal")
    # closer to the step without a profiler than to the step with one attached
    assert after - before < (attached - before) / 2, (before, attached, after)
    assert not torch.autograd.profiler._is_profiler_enabled


def test_a_profile_on_a_gpu_tears_cupti_down_and_leaves_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from harness.measure.profiling import TEARDOWN_ENV, cupti_detached_after

    for before in (None, "0"):
        if before is None:
            monkeypatch.delenv(TEARDOWN_ENV, raising=False)
        else:
            monkeypatch.setenv(TEARDOWN_ENV, before)
        with cupti_detached_after(torch.device("cuda", 0)):
            assert os.environ[TEARDOWN_ENV] == "1"  # read by Kineto when the profile stops
        assert os.environ.get(TEARDOWN_ENV) == before
        with cupti_detached_after(torch.device("cpu")):
            assert os.environ.get(TEARDOWN_ENV) == before  # no CUPTI on a CPU


def test_a_process_that_profiled_through_cupti_is_not_used_again():
    from harness.measure.layer_times import _source
    from harness.measure.profiling import profiled_through_cupti

    gpu = _source(torch.device("cuda", 0), False, 5, 1.1)
    cpu = _source(torch.device("cpu"), False, 5, 1.1)
    assert profiled_through_cupti({"layer_time_source": gpu})
    assert not profiled_through_cupti({"layer_time_source": cpu})
    assert not profiled_through_cupti({"layer_time_source": None})
