"""The built-in test: models named with --cnn-models that no collected suite lists.

``pytest suites/ --benchmark-only --cnn-models=torchvision:resnet50`` benchmarks a model no
suite names (``torchvision:NAME``, ``timm:NAME``, ``package.module:factory``, or a registered
name outside the suites' grid) with the grid below, at its registered or library default input
(``--cnn-input-shape`` replaces it). The plugin adds this file to the collection only when
``--cnn-models`` is given, and drops the test when no such name is left.
"""

from __future__ import annotations

import pytest

GPU_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


@pytest.mark.cnnbench(
    models=["(the --cnn-models names no suite lists)"],
    quick={"batch_sizes": [1]},
    full={
        "batch_sizes": GPU_BATCHES,
        "dtypes": ["float32", "float16", "bfloat16"],
        "memory_formats": ["contiguous", "channels_last"],
    },
)
def test_named_models(cnn_case, cnn_bench):
    """Forward passes of the models named on the command line."""
    cnn_bench(cnn_case)
