"""float64 is a wider precision, not a reduced one: it is always a cast, whatever dtype_method.

torch's autocast has no float64: on the CPU it warns and turns itself off, so a case that
entered ``torch.autocast(dtype=float64)`` ran float32 under a float64 label.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from harness.core.spec import Case
from harness.run.step import prepare_step


def test_torch_autocast_has_no_float64_on_the_cpu() -> None:
    # the premise of the fix, from torch itself: autocast(float64) disables itself
    with pytest.warns(UserWarning, match="not supported"), torch.autocast("cpu", torch.float64):
        out = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("method", ["autocast", "cast"])
@pytest.mark.parametrize("mode", ["inference", "training"])
def test_float64_cases_run_in_float64(method: str, mode: str) -> None:
    case = Case("resnet18", (3, 32, 32), 2, dtype="float64", dtype_method=method, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "autocast disabled" warning
        prepared = prepare_step(case, torch.device("cpu"))
        with prepared.contexts():
            out = prepared.step()
    assert {p.dtype for p in prepared.model.parameters()} == {torch.float64}
    assert prepared.inputs.dtype == torch.float64
    if mode == "inference":
        assert out.dtype == torch.float64
    else:  # every gradient of the step is float64
        assert {p.grad.dtype for p in prepared.model.parameters()} == {torch.float64}
        assert torch.isfinite(out)


def test_reduced_precision_still_autocasts() -> None:
    case = Case("resnet18", (3, 32, 32), 2, dtype="bfloat16", dtype_method="autocast")
    prepared = prepare_step(case, torch.device("cpu"))
    assert {p.dtype for p in prepared.model.parameters()} == {torch.float32}
    with prepared.contexts():
        assert prepared.step().dtype == torch.bfloat16  # the last Linear ran under autocast
