"""AlexNet as trained on two GPUs (2012), the single-tower AlexNet that torchvision ships, and
ZFNet (Zeiler & Fergus 2013), the AlexNet refinement with a 7x7/2 first layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.models.registry import register_model

ALEXNET_REFERENCE = (
    "Krizhevsky, Sutskever, Hinton. ImageNet classification with deep convolutional neural "
    "networks. NeurIPS 2012"
)
ONE_WEIRD_TRICK = (
    "Krizhevsky. One weird trick for parallelizing convolutional neural networks. "
    "arXiv:1404.5997, 2014 (torchvision's alexnet)"
)
ZFNET_REFERENCE = (
    "Zeiler, Fergus. Visualizing and understanding convolutional networks. ECCV 2014 "
    "(arXiv:1311.2901, 2013)"
)


def paper_lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.Module:
    """Local response normalisation with the constants as AlexNet's paper writes them.

    The paper divides by (k + alpha * sum a^2)^beta; torch's LocalResponseNorm divides by
    (k + alpha / size * sum a^2)^beta, so the paper's alpha is passed as ``alpha * size``.
    """
    return nn.LocalResponseNorm(size=size, alpha=alpha * size, beta=beta, k=k)


def _classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """FC6-FC7-FC8 with dropout before FC6 and FC7 (AlexNet, ZFNet, torchvision's layout)."""
    return nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(in_features, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


class FeaturesClassifier(nn.Module):
    """``features`` -> optional ``avgpool`` -> flatten -> ``classifier`` (torchvision's shape)."""

    def __init__(
        self, features: nn.Sequential, classifier: nn.Sequential, avgpool: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "alexnet_original",
    input_shape=(3, 227, 227),
    # FC6 takes exactly 6x6x256: conv1 must give 55x55, floor((N - 11) / 4) + 1 = 55 -> N >= 227
    # (226 gives 54 -> 26 -> 12 -> 5x5 at pool5, which FC6 rejects).
    min_input_shape=(3, 227, 227),
    family="alexnet",
    description="AlexNet as trained on two GPUs: 96/256/384/384/256 filters, grouped conv2/4/5",
    reference=ALEXNET_REFERENCE,
)
def alexnet_original(num_classes: int = 1000, dropout: float = 0.5) -> FeaturesClassifier:
    """The two-GPU AlexNet of the 2012 paper: 60,965,224 parameters.

    The split over two GPUs is ``groups=2`` on conv2, conv4 and conv5 (each half sees only its
    own half of the input channels); conv3 sees all 256 channels. LRN follows the ReLU of conv1
    and conv2, overlapping 3x3/2 max pooling follows both LRNs and conv5.
    """
    features = nn.Sequential(
        nn.Conv2d(3, 96, kernel_size=11, stride=4),  # 55x55
        nn.ReLU(inplace=True),
        paper_lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),  # 27x27
        nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),
        nn.ReLU(inplace=True),
        paper_lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),  # 13x13
        nn.Conv2d(256, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # 6x6
    )
    return FeaturesClassifier(features, _classifier(256 * 6 * 6, num_classes, dropout))


@register_model(
    "alexnet",
    input_shape=(3, 224, 224),
    # pool5 needs a 3x3 input, pool2 7x7, pool1 15x15, so conv1 needs
    # floor((N + 4 - 11) / 4) + 1 >= 15 -> N >= 63 (torchvision documents min_size 63x63).
    min_input_shape=(3, 63, 63),
    family="alexnet",
    description="single-tower AlexNet as torchvision ships it (64/192/384/256/256 filters)",
    reference=ONE_WEIRD_TRICK,
)
def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> FeaturesClassifier:
    """torchvision's AlexNet, module for module (61,100,840 parameters)."""
    features = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    return FeaturesClassifier(
        features, _classifier(256 * 6 * 6, num_classes, dropout), nn.AdaptiveAvgPool2d((6, 6))
    )


@register_model(
    "zfnet",
    input_shape=(3, 224, 224),
    # FC6 takes exactly 6x6x256. Working back through the ceil-mode pools and the strided convs:
    # pool5 in 12..13, pool2 in 24..27, conv2 in 51..58, pool1 in 102..117, so
    # floor((N + 2 - 7) / 2) + 1 >= 102 -> N >= 207 (206: 101 -> 50 -> 23 -> 11 -> 5x5 at FC6).
    min_input_shape=(3, 207, 207),
    family="zfnet",
    description="ZFNet (2013): AlexNet with a 7x7/2 conv1 and a 5x5/2 conv2, single tower",
    reference=ZFNET_REFERENCE,
)
def zfnet(num_classes: int = 1000, dropout: float = 0.5) -> FeaturesClassifier:
    """ZFNet, with feature maps 110, 55, 26, 13, 13, 13, 6 as in the paper's Figure 3.

    The paper gives no paddings; these reproduce its sizes from a 224x224 input: conv1 pad 1
    (floor((224 + 2 - 7) / 2) + 1 = 110), conv2 pad 0 (floor((55 - 5) / 2) + 1 = 26), conv3-5
    pad 1, and the three 3x3/2 max pools round up (``ceil_mode=True``, as Caffe pools do):
    110 -> 55, 26 -> 13, 13 -> 6. LRN (AlexNet's constants) follows the first two pools.
    """
    features = nn.Sequential(
        nn.Conv2d(3, 96, kernel_size=7, stride=2, padding=1),  # 110x110
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # 55x55
        paper_lrn(),
        nn.Conv2d(96, 256, kernel_size=5, stride=2),  # 26x26
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # 13x13
        paper_lrn(),
        nn.Conv2d(256, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # 6x6
    )
    return FeaturesClassifier(features, _classifier(256 * 6 * 6, num_classes, dropout))
