"""cnnbench: a benchmarking and profiling harness for convolutional neural networks."""

from __future__ import annotations

from harness.cases import Case, sweep
from harness.models import get_entry, get_model, list_models, register_model
from harness.profile import ModelProfile, profile
from harness.results import load_results

__version__ = "0.1.0"

__all__ = [
    "Case",
    "ModelProfile",
    "__version__",
    "get_entry",
    "get_model",
    "list_models",
    "load_results",
    "profile",
    "register_model",
    "sweep",
]
