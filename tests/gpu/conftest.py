"""Every test under tests/gpu is marked ``gpu`` and, without a usable CUDA device, skipped with
one reason, so ``make test`` stays CPU-only and ``make test-gpu`` (``pytest tests/gpu -m gpu``)
runs them where a GPU is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


def no_cuda_reason() -> str | None:
    if torch.version.cuda is None:
        return f"needs a CUDA GPU: torch {torch.__version__} is a build without CUDA"
    if not torch.cuda.is_available():
        return "needs a CUDA GPU: torch.cuda.is_available() is False (no GPU or no driver)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (tests/gpu; make test-gpu)")


@pytest.hookimpl(tryfirst=True)  # before `-m gpu` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = no_cuda_reason()
    for item in items:
        if HERE not in Path(item.path).parents:
            continue
        item.add_marker(pytest.mark.gpu)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def cuda() -> torch.device:
    """The GPU the tests run on (cuda:0), clean: cuBLAS workspaces and cached blocks released."""
    from harness.measure.cuda_state import release_between_cases

    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.compiler.reset()
    release_between_cases(device)
    return device
