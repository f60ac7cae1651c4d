"""Every test under tests/gpu is marked ``gpu`` and, without a usable CUDA device, skipped with
one reason, so ``make test`` stays CPU-only; ``make test-gpu`` runs them where a GPU is, and
where CUDA was asked for (``CNNBENCH_REQUIRE_GPU=1``, which the target sets) but does not work
it fails at once naming why (no driver, a driver too old for this torch, no GPU), instead of
passing with every test skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


REQUIRE_ENV = "CNNBENCH_REQUIRE_GPU"


def no_cuda_reason() -> str | None:
    """Why these tests cannot run here (harness.measure.devices: the driver, the wheel, the
    GPUs), or None."""
    from harness.measure.devices import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    return None if reason is None else f"needs a CUDA GPU: {reason}"


def gpu_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (tests/gpu; make test-gpu)")


@pytest.hookimpl(tryfirst=True)  # before `-m gpu` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = no_cuda_reason()
    if reason is not None and gpu_required() and any(_here(i) for i in items):
        raise pytest.UsageError(
            f"make test-gpu: CUDA does not work on this machine ({REQUIRE_ENV}=1): {reason}"
        )
    for item in items:
        if not _here(item):
            continue
        item.add_marker(pytest.mark.gpu)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def _here(item: pytest.Item) -> bool:
    return HERE in Path(item.path).parents


@pytest.fixture
def cuda() -> torch.device:
    """The GPU the tests run on (cuda:0), clean: cuBLAS workspaces and cached blocks released."""
    from harness.measure.cuda_state import release_between_cases

    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.compiler.reset()
    release_between_cases(device)
    return device
