"""The classic architectures, one module per family; importing this package registers them all
in harness.models.registry. ``harness.models.resolve`` imports it on first use; an import that
fails is not cached by Python, so the next use raises the same error again rather than finding
no model.

Modules written in parallel by others (Inception-v4, Inception-ResNet, 1D ResNets) are imported
only when present, so the package imports while they are being written.
"""

from __future__ import annotations

import importlib
import importlib.util

from harness.models.zoo import alexnet, googlenet, lenet, resnet, vgg

_OPTIONAL = ("inception_v4", "inception_resnet", "resnet1d")

for _name in _OPTIONAL:
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")

__all__ = ["alexnet", "googlenet", "lenet", "resnet", "vgg"]
