"""Models: the registry (a leaf: ``registry``), the zoo (``zoo``, registered on first use),
the names users type resolved to entries (``resolve``) and suite files (``suites``)."""

from __future__ import annotations

from harness.models.registry import ModelEntry, Shape, register_model, unregister_model
from harness.models.resolve import get_entry, get_model, list_models
from harness.models.suites import load_suites

__all__ = [
    "ModelEntry",
    "Shape",
    "get_entry",
    "get_model",
    "list_models",
    "load_suites",
    "register_model",
    "unregister_model",
]
