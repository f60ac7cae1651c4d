"""run_case end to end on this CPU: rows, statuses, and the measured numbers' ground truth."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import weakref
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch

from harness.core.schema import column_names
from harness.core.spec import Case
from harness.measure.memory import MemoryResult
from harness.run import session
from harness.run.outcome import WindowRecord
from harness.run.runner import RunOptions, run_case

# No test here is about when the rounds stop: a short cap, no interval target and no re-measure
# (the defaults, 30 s and 1%, ran a case on a loaded 2-core machine for up to a minute).
FAST = RunOptions(
    warmup_rounds=1, warmup_time_s=0.0, min_rounds=3, min_time_s=0.01, max_time_s=0.3,
    ci_target=None, remeasure=0, power="off",
)  # fmt: skip
M = "tests.models_for_tests:"


def test_ok_row_has_every_key_metric_and_only_schema_columns():
    res = run_case(Case(M + "tiny_cnn", (3, 16, 16), batch_size=2), FAST)
    row = res.row
    assert row["status"] == "ok", row.get("error")
    assert set(row) <= set(column_names("cases"))
    # parameters from the formula: conv 3*4*3*3+4, linear 4*2+2
    assert row["params"] == 3 * 4 * 9 + 4 + 4 * 2 + 2
    # MACs from the formula: conv N*Cout*Hout*Wout*Cin*k*k + linear N*in*out
    assert row["macs"] == 2 * 4 * 14 * 14 * 3 * 9 + 2 * 4 * 2
    assert row["flops"] == 2 * row["macs"]
    assert row["rounds"] >= 3 and len(row["latency_s_samples"]) == row["rounds"]
    assert row["throughput_per_s"] == pytest.approx(2 / row["latency_s_median"])
    assert row["peak_memory_bytes"] >= row["memory_baseline_bytes"] > 0
    assert row["power_w_mean"] is None and row["power_source"].startswith("off")
    assert row["cpu_threads"] >= 1 and row["device"] == "cpu"
    assert row["float32_matmul_precision"] == "highest"  # torch's default
    assert row["load_avg_1m"] == pytest.approx(os.getloadavg()[0], abs=2.0)
    assert row.get("cudnn_allow_tf32") is None  # a CUDA-only setting: not invented on CPU
    assert list(res.layers["layer_type"]) == [
        "Conv2d",
        "ReLU",
        "AdaptiveAvgPool2d",
        "Flatten",
        "Linear",
    ]


@pytest.mark.serial  # a sleep timed to a few percent: no neighbour test on the CPU
def test_sleeping_model_is_measured_within_a_few_percent():
    res = run_case(
        Case(M + "sleeper_10ms", (1, 2, 2)),
        RunOptions(warmup_rounds=1, min_rounds=20, min_time_s=0.2, power="off"),
    )
    median = res.row["latency_s_median"]
    assert 0.0098 <= median <= 0.0108, median  # time.sleep overshoots by tens of microseconds


def test_training_step_runs_and_needs_more_memory_than_inference():
    inf = run_case(Case(M + "tiny_cnn", (3, 16, 16), batch_size=8), FAST).row
    train = run_case(Case(M + "tiny_cnn", (3, 16, 16), batch_size=8, mode="training"), FAST).row
    assert train["status"] == "ok", train.get("error")
    assert train["peak_memory_bytes"] > inf["peak_memory_bytes"]


@pytest.mark.parametrize("method", ["autocast", "cast"])
def test_channels_last_and_bfloat16_run_on_cpu(method: str):
    case = Case(M + "tiny_cnn", (3, 16, 16), dtype="bfloat16", memory_format="channels_last",
                dtype_method=method)  # fmt: skip
    row = run_case(case, FAST).row
    assert row["status"] == "ok", row.get("error")
    assert row["dtype"] == "bfloat16" and row["dtype_method"] == method


def test_the_dtype_method_defaults_to_cast_for_inference_and_autocast_for_training():
    shape = (3, 16, 16)
    assert Case("m", shape, dtype="bfloat16").dtype_method == "cast"
    assert Case("m", shape, dtype="bfloat16", mode="training").dtype_method == "autocast"
    assert Case("m", shape, dtype="float64", dtype_method="autocast").dtype_method == "cast"
    assert Case("m", shape).dtype_method is None  # does not apply to float32
    assert Case("m", shape, dtype_method="cast").dtype_method is None
    assert not Case("m", shape).cast and not Case("m", shape).autocast


@pytest.mark.parametrize(
    "case, status, message",
    [
        (Case("alexnet", (3, 32, 32)), "error", "too small"),
        (Case("no_such_net", (3, 32, 32)), "error", "unknown model"),
        (
            Case(M + "failing_above_batch_1", (1, 2, 2), batch_size=2),
            "error",
            "ValueError: this model refuses batch 2",
        ),
        (Case(M + "oom_from_batch_4", (1, 2, 2), batch_size=4), "oom", "out of memory"),
        (Case(M + "tiny_cnn", (3, 16, 16), device="cuda"), "skipped", "CUDA is not available"),
    ],
)
def test_failures_become_rows_with_status_and_reason(case, status, message):
    row = run_case(case, FAST).row
    assert row["status"] == status
    assert message in row["error"]
    assert row["model"] == case.model and row["case_id"] == case.case_id
    assert row.get("latency_s_median") is None  # nothing timed, nothing invented


def test_training_with_one_value_per_batch_norm_channel_is_refused_before_running():
    # resnet18 at 3x32x32: layer4's maps are 1x1, so at batch 1 each BN channel sees one value
    row = run_case(Case("resnet18", (3, 32, 32), batch_size=1, mode="training"), FAST).row
    assert row["status"] == "error"
    assert "layer4.0.bn1 (BatchNorm2d) gets 1x512x1x1" in row["error"]
    assert row["params"] == 11_689_512  # torchvision's documented count: the profile is kept


@pytest.fixture
def compiled_calls(monkeypatch):
    """torch.compile through a backend that counts every call of a compiled graph (it runs the
    graph as captured: no C++ compiler needed). Yields the list the calls are appended to."""
    calls: list[int] = []

    def counting_backend(gm, example_inputs):
        def run(*args):
            calls.append(1)
            return gm.forward(*args)

        return run

    compile_counted = functools.partial(torch.compile, backend=counting_backend)
    monkeypatch.setattr(torch, "compile", compile_counted)
    torch.compiler.reset()
    yield calls
    torch.compiler.reset()


def _no_dispatch_memory(step, device, baseline_tensors=()):
    """The step run once outside any dispatch mode, as on CUDA (the allocator's peak)."""
    step()
    return MemoryResult(None, None, "unavailable: not measured in this test")


@pytest.mark.parametrize("memory", ["cpu tracker", "no dispatch mode (as on CUDA)"])
def test_every_compiled_case_of_a_sweep_runs_compiled(compiled_calls, monkeypatch, memory):
    # Dynamo keeps its cache on the code object all torch.compile(module) wrappers share: without
    # a reset between cases, a frame that once ran under the CPU tracker's dispatch mode is never
    # compiled again, and different models exhaust recompile_limit (lowered to 1 here, 8 by
    # default); either way later "compiled" rows would silently measure eager.
    limit = torch._dynamo.config.recompile_limit
    if memory != "cpu tracker":
        monkeypatch.setattr(session, "measure_peak_memory", _no_dispatch_memory)
        limit = 1
    cases = [
        Case(M + "tiny_cnn", (3, 16, 16), batch_size=2, compile=True),
        Case(M + "failing_above_batch_1", (1, 2, 2), batch_size=1, compile=True),
        Case(M + "tiny_cnn", (3, 16, 16), batch_size=3, compile=True, mode="training"),
    ]
    for case in cases:
        before = len(compiled_calls)
        with torch._dynamo.config.patch(recompile_limit=limit):
            row = run_case(case, FAST).row
        assert row["status"] == "ok", row.get("error")
        # every timed round (and the first call and the warm-up) went through the compiled graph
        assert len(compiled_calls) - before >= row["rounds"] + 1 + row["warmup_rounds"], case


def _broken_cuda_context(monkeypatch):
    """A visible CUDA device whose context holds a sticky error: every sync raises it again."""

    def synchronize(device=None):
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)


def test_a_failing_cuda_clean_up_becomes_the_rows_error_not_a_crash(monkeypatch):
    _broken_cuda_context(monkeypatch)
    # the input is too small: the case fails before the device is touched, then cleans up
    res = run_case(Case("alexnet", (3, 32, 32), device="cuda"), FAST, environment={})
    row = res.row
    assert row["status"] == "error" and row["device"] == "cuda:0"  # "cuda" resolved
    assert "too small" in row["error"]  # the case's own reason comes first
    assert row["error"].endswith(
        "cleaning up after the case failed: AcceleratorError: CUDA error: an illegal memory "
        "access was encountered"
    )
    assert row["timestamp_utc"] is not None


def test_a_case_that_ran_but_cannot_clean_up_is_an_error(monkeypatch):
    _broken_cuda_context(monkeypatch)
    prepared = SimpleNamespace(
        model=torch.nn.Linear(2, 2), contexts=contextlib.nullcontext, step=lambda: None,
        tensors=[],
    )  # fmt: skip
    monkeypatch.setattr(
        session.CaseSession, "_prepare", lambda self, prof: setattr(self, "prepared", prepared)
    )
    monkeypatch.setattr(
        session.CaseSession,
        "window",
        lambda self, i, n: WindowRecord(
            index=i,
            start_s=float(i),
            samples_s=[0.01] * 3,
            noise={
                "elapsed_s": 0.03,
                "stall_s": None,
                "switches": None,
                "speed_probe_ratio": None,
                "load_avg_1m_end": None,
            },
        ),
    )  # fmt: skip  (measured without error)
    monkeypatch.setattr(session, "measure_peak_memory", lambda *a, **k: MemoryResult(1, 1, "x"))
    row = run_case(Case(M + "tiny_cnn", (3, 16, 16), device="cuda"), FAST, environment={}).row
    assert row["status"] == "error"
    assert row["error"].startswith("cleaning up after the case failed: AcceleratorError")


class _OomAfterAllocating(torch.nn.Module):
    """Allocates an activation, then runs out of memory (as CUDA does mid-forward)."""

    alive: ClassVar[list] = []

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            activation = torch.empty(256, 256)
            _OomAfterAllocating.alive += [weakref.ref(self), weakref.ref(activation)]
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.fc(x.flatten(1)[:, :4])


def oom_after_allocating() -> torch.nn.Module:
    return _OomAfterAllocating()


oom_after_allocating.input_shape = (1, 2, 2)  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_an_oom_case_holds_nothing_when_the_clean_up_empties_the_cache(monkeypatch, mode):
    # The exception's traceback holds the frames (model, activations) until the except clause
    # ends; the clean-up (gc.collect, then torch.cuda.empty_cache) must come after that.
    _OomAfterAllocating.alive = []
    held_at_collect: list[int] = []

    real_collect = gc.collect

    def collect() -> int:
        found = real_collect()
        held_at_collect.append(sum(ref() is not None for ref in _OomAfterAllocating.alive))
        return found

    monkeypatch.setattr(session.gc, "collect", collect)
    case = Case("tests.test_runner:oom_after_allocating", (1, 2, 2), batch_size=2, mode=mode)
    row = run_case(case, FAST).row
    assert row["status"] == "oom" and "Tried to allocate 2.00 GiB" in row["error"]
    assert len(_OomAfterAllocating.alive) == 2  # the model and its activation were made
    assert held_at_collect[-1] == 0  # and nothing of them was left when the runner cleaned up


def test_out_of_memory_while_compiling_is_an_oom_row(monkeypatch):
    # Dynamo wraps whatever the backend raises in BackendCompilerFailed (raised `from None`,
    # the original kept as inner_exception): the row must still say oom, with the reason.
    def backend_out_of_memory(gm, example_inputs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    compile_oom = functools.partial(torch.compile, backend=backend_out_of_memory)
    monkeypatch.setattr(torch, "compile", compile_oom)
    torch.compiler.reset()
    row = run_case(Case(M + "tiny_cnn", (3, 16, 16), compile=True), FAST).row
    assert row["status"] == "oom", row["error"]
    assert row["error"] == "out of memory: CUDA out of memory. Tried to allocate 20.00 GiB"


def test_ops_no_counter_handles_are_named_in_the_row():
    row = run_case(Case(M + "with_uncounted_op", (1, 4, 4)), FAST).row
    assert row["status"] == "ok", row.get("error")
    assert row["macs"] == 16  # the 1x1 conv on 4x4: N*Cout*H*W*Cin = 16; erf has no MACs formula
    assert row["unhandled_ops"] == "aten.erf x2"
    assert run_case(Case(M + "tiny_cnn", (3, 16, 16)), FAST).row["unhandled_ops"] == ""


@pytest.mark.parametrize(
    ("model", "shape"),
    [("lenet5", (1, 32, 32)), ("resnet18", (3, 64, 64)), ("inception_3a", (192, 28, 28)),
     ("resnet1d18", (1, 500)), ("googlenet", (3, 96, 96))],
)  # fmt: skip
def test_a_profile_scaled_from_batch_one_is_the_trace_at_that_batch(model, shape):
    """Issue 22 item 11: a model is traced on meta once per input and dtype (batches 1 and 2)
    and scaled; ground truth: the trace at batch 5 itself, layer by layer."""
    from harness.profile import profile
    from harness.run.profiles import _LINEAR, batch_profile

    case = Case(model, shape, batch_size=5)
    scaled = batch_profile(case)
    assert _LINEAR[(model, shape, "float32")] is not None  # linear: scaled, not traced
    traced = profile(model, shape, 5, torch.float32)
    assert scaled.to_dict() == traced.to_dict()


def test_a_profile_that_is_not_linear_in_the_batch_is_traced_per_batch(monkeypatch):
    from harness.run import profiles

    real = profiles.profile

    def odd(model, shape, batch, dtype):  # a model whose MACs do not double with the batch
        p = real(model, shape, batch, dtype)
        return profiles.replace(p, macs=p.macs + (7 if batch == 2 else 0))

    monkeypatch.setattr(profiles, "profile", odd)
    monkeypatch.setattr(profiles, "_LINEAR", {})
    prof = profiles.batch_profile(Case(M + "tiny_cnn", (3, 16, 16), batch_size=3))
    assert profiles._LINEAR[(M + "tiny_cnn", (3, 16, 16), "float32")] is None
    assert (
        prof.batch_size == 3
        and prof.macs == real(M + "tiny_cnn", (3, 16, 16), 3, torch.float32).macs
    )
