"""The classic-CNN suite: every zoo family at its native input size.

`pytest suites/ --benchmark-only` runs the quick grid on a CPU-only machine (a few minutes on
2 cores) and the full sweep on a GPU (batch 1 to 256 or until out of memory, three dtypes, two
memory formats, inference and training). `--cnn-scale`, `--cnn-models`, `--cnn-batch-sizes`,
... narrow or widen it; see `pytest --help`, section "CNN benchmarking".
"""

from __future__ import annotations

import pytest

# On a CPU the quick grid keeps a few members of each family (the whole ResNet depth series and
# its plain twins, VGG at 11, 16 and 19 layers), so the whole suite stays within a few minutes
# on 2 cores; the full grid (the default on a GPU) runs every model.
QUICK = [
    "lenet5",
    "alexnet_original",
    "alexnet",
    "zfnet",
    "vgg11",
    "vgg16",
    "vgg19",
    "googlenet",
    "inception_3a",
    "inception_3a_naive",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "plain18",
    "plain34",
    "preact_resnet18",
    "inception_v4",
    "inception_resnet_v2",
    "resnet1d18",
    "resnet1d_multiscale",
]
# Every classic model: the quick ones plus the other VGG configurations and Inception-ResNets.
CLASSIC = [*QUICK, "vgg*", "inception_resnet_v1", "inception_resnet_v2_paper"]
GPU_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


@pytest.mark.cnnbench(
    models=CLASSIC,
    quick={"models": QUICK, "batch_sizes": [1]},
    full={
        "batch_sizes": GPU_BATCHES,
        "dtypes": ["float32", "float16", "bfloat16"],
        "memory_formats": ["contiguous", "channels_last"],
    },
)
def test_inference(cnn_case, cnn_bench):
    """Forward passes under inference_mode: latency, throughput, memory, energy."""
    cnn_bench(cnn_case)


@pytest.mark.cnnbench(
    models=["lenet5", "alexnet", "resnet18", "resnet1d18"],
    quick={"batch_sizes": [8], "memory_formats": ["contiguous", "channels_last"]},
    full=None,
)
def test_batch_and_layout(cnn_case, cnn_bench):
    """On CPU: how batching and channels_last change throughput for small models
    (the GPU sweep covers both dimensions in test_inference)."""
    cnn_bench(cnn_case)


@pytest.mark.cnnbench(
    models=["lenet5", "resnet18"],
    modes=["training"],
    quick={"batch_sizes": [8]},
    full={
        "models": CLASSIC,
        "batch_sizes": [16, 32, 64, 128, 256],
        "dtypes": ["float32", "bfloat16"],
    },
)
def test_training(cnn_case, cnn_bench):
    """One training step: forward, backward and an SGD optimizer step."""
    cnn_bench(cnn_case)
