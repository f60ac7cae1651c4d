"""Static analysis on the meta device: parameters, MACs, activation memory, layer by layer.

Nothing here times anything. ``profile`` gives a ``ModelProfile``; ``validate_input`` fails
early, with the layer and the arithmetic, on an input a model cannot take.
"""

from __future__ import annotations

from harness.profile.flops import fvcore_macs, reconcile
from harness.profile.layers import LayerStat, ModelProfile, profile
from harness.profile.shapes import output_size, smallest_input
from harness.profile.validate import validate_input

__all__ = [
    "LayerStat",
    "ModelProfile",
    "fvcore_macs",
    "output_size",
    "profile",
    "reconcile",
    "smallest_input",
    "validate_input",
]
