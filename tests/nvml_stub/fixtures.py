"""pytest fixtures for tests that run the stand-in NVML library: import them into a test module
(``from tests.nvml_stub.fixtures import stub_dir, stub_lib``)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.nvml_stub.build import build_stub, compiler_or_skip


@pytest.fixture(scope="session")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler_or_skip()  # fails instead under CI
    return tmp_path_factory.mktemp("nvml_stub")


@pytest.fixture(scope="session")
def stub_lib(stub_dir: Path) -> str:
    return str(build_stub(stub_dir))


def spawn_pool() -> ProcessPoolExecutor:
    """One spawned worker: the stub is loaded there, never in the pytest process."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
