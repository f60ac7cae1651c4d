"""The doctor's compile check: a case through torch.compile and the harness's own step,
compared with eager in IEEE float32 (TF32 off: its 10 mantissa bits would differ from eager by
more than float32's tolerance, rtol 1e-3)."""

from __future__ import annotations

import time
from typing import Any

import torch

from harness.core.spec import Case
from harness.doctor.report import FAIL, PASS, WARN, Check
from harness.measure.cuda_state import dynamo_stats, ieee_float32

COMPILE_CASE = ("lenet5", (1, 32, 32), 8)
COMPILE_RULE = (
    "torch.compile through the harness's step: PASS when Dynamo compiled at least one graph, "
    "with no graph break, and the output matches eager (rtol 1e-3, atol 1e-4, both in IEEE "
    "float32: TF32 off); WARN with graph breaks (partly eager); FAIL with no graph (silently "
    "eager), a different output, or an error"
)


def judge_compile(graphs: int, breaks: int, matches: bool, **numbers: Any) -> Check:
    numbers = {"dynamo_graphs": graphs, "dynamo_graph_breaks": breaks, **numbers}
    if graphs == 0:
        return Check(
            "compile", FAIL, "Dynamo compiled nothing: the case ran eager", COMPILE_RULE, numbers
        )
    if not matches:
        return Check(
            "compile", FAIL, "the compiled output differs from eager", COMPILE_RULE, numbers
        )
    if breaks:
        return Check(
            "compile", WARN, f"{breaks} graph break(s): parts ran eager", COMPILE_RULE, numbers
        )
    return Check("compile", PASS, "one whole graph, output as eager", COMPILE_RULE, numbers)


def _prepared(device: torch.device, **kw: Any) -> Any:
    from harness.run.step import prepare_step

    model, shape, batch = COMPILE_CASE
    return prepare_step(Case(model, shape, batch, device=str(device), **kw), device)


def check_compile(device: torch.device) -> Check:
    model, shape, batch = COMPILE_CASE
    torch.compiler.reset()
    try:
        with ieee_float32():
            eager = _prepared(device)
            compiled = _prepared(device, compile=True)
            t0 = time.perf_counter()
            with dynamo_stats() as stats, compiled.contexts():
                out = compiled.step()
                compile_s = time.perf_counter() - t0
                compiled.step()
            with eager.contexts():
                ref = eager.step()
        matches = bool(torch.allclose(out.float(), ref.float(), rtol=1e-3, atol=1e-4))
        max_diff = float((out.float() - ref.float()).abs().max())
    finally:
        torch.compiler.reset()
    return judge_compile(
        int(stats["dynamo_graphs"] or 0),
        int(stats["dynamo_graph_breaks"] or 0),
        matches,
        max_abs_diff=max_diff,
        first_call_s=compile_s,
        tf32=False,
        case=f"{model} {'x'.join(map(str, shape))} batch {batch} float32 inference",
    )
