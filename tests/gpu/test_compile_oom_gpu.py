"""torch.compile really compiles on the GPU (Dynamo graphs counted, no silent eager fallback),
and an out-of-memory case in a sweep leaves nothing behind for the next case."""

from __future__ import annotations

import torch

from harness.core.spec import Case
from harness.doctor import checks
from harness.doctor import compile as compile_check
from harness.measure.cuda_state import dynamo_stats
from harness.run.runner import RunOptions, run_case
from harness.run.step import prepare_step

MIB = 1 << 20
QUICK = RunOptions(
    warmup_rounds=2,
    warmup_time_s=0.0,
    min_rounds=5,
    min_time_s=0.1,
    max_time_s=5.0,
    ci_target=None,
    remeasure=0,
    power="off",
    memory_check=False,  # let the huge case really run out of memory
)


def test_a_compiled_case_is_compiled_not_eager(cuda: torch.device) -> None:
    case = Case("resnet18", (3, 224, 224), 8, compile=True, device=str(cuda))
    eager_case = Case("resnet18", (3, 224, 224), 8, device=str(cuda))
    torch.compiler.reset()
    compiled = prepare_step(case, cuda)
    with dynamo_stats() as stats, compiled.contexts():
        out = compiled.step()
        compiled.step()
    eager = prepare_step(eager_case, cuda)
    with eager.contexts():
        ref = eager.step()
    torch.compiler.reset()
    assert stats["dynamo_graphs"] >= 1, "Dynamo compiled nothing: the 'compiled' case ran eager"
    assert stats["dynamo_graph_breaks"] == 0
    assert torch.allclose(out.float(), ref.float(), rtol=1e-2, atol=1e-3)


def test_the_doctor_compile_check_passes(cuda: torch.device) -> None:
    check = compile_check.check_compile(cuda)
    assert check.status == checks.PASS, check


def test_an_oom_in_a_sweep_leaves_the_next_case_uninflated(cuda: torch.device) -> None:
    small = Case("vgg16", (3, 224, 224), 8, mode="training", device=str(cuda))
    # 8192 images of VGG-16 training: several TB of activations, more than any GPU has
    huge = Case("vgg16", (3, 224, 224), 8192, mode="training", device=str(cuda))
    start = torch.cuda.memory_allocated(cuda)
    first = run_case(small, QUICK).row
    oom = run_case(huge, QUICK).row
    again = run_case(small, QUICK).row
    assert first["status"] == "ok", first.get("error")
    assert oom["status"] == "oom", (oom["status"], oom.get("error"))
    assert again["status"] == "ok", again.get("error")
    # the same case before and after the OOM: same resident memory, same peak (1 MiB slack for
    # allocator rounding)
    assert abs(again["memory_baseline_bytes"] - first["memory_baseline_bytes"]) <= MIB
    assert abs(again["peak_memory_bytes"] - first["peak_memory_bytes"]) <= MIB
    torch.cuda.synchronize(cuda)
    import gc

    gc.collect()
    assert torch.cuda.memory_allocated(cuda) <= start + 64 * MIB  # nothing of the cases kept
