"""The classic architectures, one module per family; importing this package registers them all
in harness.models.registry. ``harness.models.resolve`` imports it on first use; an import that
fails is not cached by Python, so the next use raises the same error again rather than finding
no model.
"""

from __future__ import annotations

from harness.models.zoo import (
    alexnet,
    googlenet,
    inception_resnet,
    inception_v4,
    lenet,
    resnet,
    resnet1d,
    vgg,
)

__all__ = [
    "alexnet",
    "googlenet",
    "inception_resnet",
    "inception_v4",
    "lenet",
    "resnet",
    "resnet1d",
    "vgg",
]
