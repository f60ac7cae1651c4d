"""What the test modules share: pytester runs of the plugin in this process, and a clean
environment for the runs they start.

The plugin under test (``-p cnnbench``, the entry point) is loaded by each pytester run, in
this process (``pytester.runpytest``: pytest's inline mode; ``--runpytest=subprocess`` runs
them all in a child instead). ``make test`` leaves it out of the outer session (``-p
no:cnnbench`` on its command line, not in pyproject.toml's addopts, which would leave it out of
``pytest suites/`` too): no suite here is a CNN suite, and under ``pytest -n`` its worker role
would pin each test process to its own cores.
"""

from __future__ import annotations

import gc
import os
import sys

import pytest


@pytest.fixture(scope="session")
def plugin_modules() -> None:
    """Import what an in-process run of the plugin imports lazily, once, before any pytester
    fixture snapshots ``sys.modules``: pytester removes the modules first imported inside its
    runs, so each run would import the zoo, the report and the sweep again (seconds each)."""
    import harness.measure.roofs
    import harness.models.zoo
    import harness.plugin.hooks
    import harness.plugin.summary
    import harness.report.build
    import harness.results.runs
    import harness.run.isolation
    import harness.run.sweep  # noqa: F401
    import tests.models_for_tests  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _long_lived_objects_frozen() -> None:
    """Every case the runner measures here starts with ``gc.collect()`` (before the rounds and
    after the case): a full collection walks every object of torch, Dynamo and the harness,
    0.3 s each on this 2-core machine. Those objects live as long as the session, so they are
    moved to the permanent generation once (``gc.freeze``, the fork-server idiom); objects the
    tests make are collected as before."""
    if "torch" in sys.modules:  # a session that measures: what a case's first trace imports
        import torch._dynamo  # noqa: F401

        import harness.models.zoo
        import harness.run.runner  # noqa: F401
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_outer_xdist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``pytest -n``, the runs a test starts (in process or not) must not believe they
    are xdist workers: pytest-benchmark reads ``PYTEST_XDIST_WORKER`` and then refuses
    ``--benchmark-only``."""
    for name in [k for k in os.environ if k.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
