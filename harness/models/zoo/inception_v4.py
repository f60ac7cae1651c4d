"""Inception-v4 (Szegedy, Ioffe, Vanhoucke, Alemi 2016, arXiv:1602.07261), at 3x299x299.

The layout follows the paper's figures and is the same network, module for module and weight
shape for weight shape, as timm's ``inception_v4`` (a port of the TF-slim model the paper's
authors released), so a timm state_dict loads into it:

* stem (Fig. 3): 299x299x3 -> 35x35x384, shared with the paper's Inception-ResNet-v2;
* 4 x Inception-A (Fig. 4), 35x35x384;
* Reduction-A (Fig. 7) with k, l, m, n = 192, 224, 256, 384 (Table 1), -> 17x17x1024;
* 7 x Inception-B (Fig. 5), 17x17x1024;
* Reduction-B (Fig. 8), -> 8x8x1536;
* 3 x Inception-C (Fig. 6), 8x8x1536;
* average pooling, dropout (keep 0.8 in the paper: p = 0.2), a 1000-way fully connected layer.

Every convolution is followed by batch norm (eps 1e-3, as in TF-slim and timm) and a ReLU and
has no bias. "V" in the figures means valid (no) padding; the others keep the size. Where a
figure stacks a 1x7 and a 7x1 convolution the order here is timm's (and TF-slim's); in a few
places the paper draws them the other way round, which changes neither the parameter count nor
the receptive field. The parameter count is 42,679,816 (timm, and keras-hub's preset table).

The blocks here (``ConvBnAct``, the stem, ``ReductionA``) are shared with
``harness.models.zoo.inception_resnet``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from harness.models.registry import register_model

IntPair = int | tuple[int, int]

INPUT_SHAPE = (3, 299, 299)
# Smallest input every valid (unpadded) stride-2 stage accepts: the last one, Reduction-B, needs
# 3 rows in; walking the output-size formula (N - F + 2P) / S + 1 back through the stem gives 75.
MIN_INPUT_SHAPE = (3, 75, 75)
BN_EPS = 1e-3


class ConvBnAct(nn.Module):
    """Conv2d without bias -> BatchNorm2d (eps 1e-3) -> ReLU: every "Conv" box of the paper."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: int = 1,
        padding: IntPair = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _avgpool_3x3() -> nn.AvgPool2d:
    """3x3/1 average pooling that keeps the size (the pooling branch of Inception-A/B/C)."""
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class _Concat(nn.Module):
    """Runs the branches named in ``_branches`` on one input and concatenates along channels."""

    _branches: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, name)(x) for name in self._branches], 1)


class Mixed3a(_Concat):
    """Stem, first split (Fig. 3): 3x3/2 max pooling beside a 3x3/2 conv of 96: 64 -> 160."""

    _branches = ("maxpool", "conv")

    def __init__(self) -> None:
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, stride=2)
        self.conv = ConvBnAct(64, 96, 3, stride=2)


class Mixed4a(_Concat):
    """Stem, second split (Fig. 3): two towers ending in a valid 3x3 conv of 96: 160 -> 192."""

    _branches = ("branch0", "branch1")

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(ConvBnAct(160, 64, 1), ConvBnAct(64, 96, 3))
        self.branch1 = nn.Sequential(
            ConvBnAct(160, 64, 1),
            ConvBnAct(64, 64, (1, 7), padding=(0, 3)),
            ConvBnAct(64, 64, (7, 1), padding=(3, 0)),
            ConvBnAct(64, 96, 3),
        )


class Mixed5a(_Concat):
    """Stem, third split (Fig. 3): 3x3/2 conv of 192 beside 3x3/2 max pooling: 192 -> 384."""

    _branches = ("conv", "maxpool")

    def __init__(self) -> None:
        super().__init__()
        self.conv = ConvBnAct(192, 192, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2)


def stem_fig3(in_channels: int = 3) -> list[nn.Module]:
    """The stem of Inception-v4 and Inception-ResNet-v2 (Fig. 3): 299x299x3 -> 35x35x384."""
    return [
        ConvBnAct(in_channels, 32, 3, stride=2),  # 149x149x32
        ConvBnAct(32, 32, 3),  # 147x147x32
        ConvBnAct(32, 64, 3, padding=1),  # 147x147x64
        Mixed3a(),  # 73x73x160
        Mixed4a(),  # 71x71x192
        Mixed5a(),  # 35x35x384
    ]


class InceptionA(_Concat):
    """Inception-A (Fig. 4), 35x35: 96 + 96 + 96 + 96 = 384 channels in and out."""

    _branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(384, 96, 1)
        self.branch1 = nn.Sequential(ConvBnAct(384, 64, 1), ConvBnAct(64, 96, 3, padding=1))
        self.branch2 = nn.Sequential(
            ConvBnAct(384, 64, 1),
            ConvBnAct(64, 96, 3, padding=1),
            ConvBnAct(96, 96, 3, padding=1),
        )
        self.branch3 = nn.Sequential(_avgpool_3x3(), ConvBnAct(384, 96, 1))


class ReductionA(_Concat):
    """Reduction-A (Fig. 7): 35x35 -> 17x17, out = in + n + m channels.

    ``k, l, m, n`` are the filter counts of Table 1: a 3x3/2 conv of n; 1x1 of k -> 3x3 of l
    -> 3x3/2 of m; 3x3/2 max pooling passing the input channels through.
    """

    _branches = ("branch0", "branch1", "branch2")

    def __init__(self, in_channels: int, k: int, l: int, m: int, n: int) -> None:  # noqa: E741
        super().__init__()
        self.branch0 = ConvBnAct(in_channels, n, 3, stride=2)
        self.branch1 = nn.Sequential(
            ConvBnAct(in_channels, k, 1),
            ConvBnAct(k, l, 3, padding=1),
            ConvBnAct(l, m, 3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)
        self.out_channels = in_channels + n + m


class InceptionB(_Concat):
    """Inception-B (Fig. 5), 17x17: 384 + 256 + 256 + 128 = 1024 channels in and out."""

    _branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(1024, 384, 1)
        self.branch1 = nn.Sequential(
            ConvBnAct(1024, 192, 1),
            ConvBnAct(192, 224, (1, 7), padding=(0, 3)),
            ConvBnAct(224, 256, (7, 1), padding=(3, 0)),
        )
        self.branch2 = nn.Sequential(
            ConvBnAct(1024, 192, 1),
            ConvBnAct(192, 192, (7, 1), padding=(3, 0)),
            ConvBnAct(192, 224, (1, 7), padding=(0, 3)),
            ConvBnAct(224, 224, (7, 1), padding=(3, 0)),
            ConvBnAct(224, 256, (1, 7), padding=(0, 3)),
        )
        self.branch3 = nn.Sequential(_avgpool_3x3(), ConvBnAct(1024, 128, 1))


class ReductionB(_Concat):
    """Reduction-B of Inception-v4 (Fig. 8): 17x17x1024 -> 8x8x(192 + 320 + 1024 = 1536)."""

    _branches = ("branch0", "branch1", "branch2")

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(ConvBnAct(1024, 192, 1), ConvBnAct(192, 192, 3, stride=2))
        self.branch1 = nn.Sequential(
            ConvBnAct(1024, 256, 1),
            ConvBnAct(256, 256, (1, 7), padding=(0, 3)),
            ConvBnAct(256, 320, (7, 1), padding=(3, 0)),
            ConvBnAct(320, 320, 3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)


class InceptionC(nn.Module):
    """Inception-C (Fig. 6), 8x8: 256 + (256 + 256) + (256 + 256) + 256 = 1536 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(1536, 256, 1)
        self.branch1_0 = ConvBnAct(1536, 384, 1)
        self.branch1_1a = ConvBnAct(384, 256, (1, 3), padding=(0, 1))
        self.branch1_1b = ConvBnAct(384, 256, (3, 1), padding=(1, 0))
        self.branch2_0 = ConvBnAct(1536, 384, 1)
        self.branch2_1 = ConvBnAct(384, 448, (3, 1), padding=(1, 0))
        self.branch2_2 = ConvBnAct(448, 512, (1, 3), padding=(0, 1))
        self.branch2_3a = ConvBnAct(512, 256, (1, 3), padding=(0, 1))
        self.branch2_3b = ConvBnAct(512, 256, (3, 1), padding=(1, 0))
        self.branch3 = nn.Sequential(_avgpool_3x3(), ConvBnAct(1536, 256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.branch1_0(x)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                self.branch0(x),
                self.branch1_1a(x1),
                self.branch1_1b(x1),
                self.branch2_3a(x2),
                self.branch2_3b(x2),
                self.branch3(x),
            ],
            1,
        )


def classifier_head(
    features: int, num_classes: int, dropout: float, name: str
) -> list[tuple[str, nn.Module]]:
    """Global average pooling, dropout and the fully connected layer, as named children."""
    return [
        ("global_pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten(1)),
        ("head_drop", nn.Dropout(dropout)),
        (name, nn.Linear(features, num_classes)),
    ]


class InceptionV4(nn.Sequential):
    """Inception-v4 (Fig. 9): stem, 4 x A, Reduction-A, 7 x B, Reduction-B, 3 x C, head.

    ``features`` holds the 22 feature blocks under timm's indices; the classifier is
    ``last_linear``; ``num_features`` is 1536.
    """

    num_features = 1536

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2):
        blocks: list[nn.Module] = stem_fig3(in_channels)
        blocks += [InceptionA() for _ in range(4)]
        blocks.append(ReductionA(384, k=192, l=224, m=256, n=384))
        blocks += [InceptionB() for _ in range(7)]
        blocks.append(ReductionB())
        blocks += [InceptionC() for _ in range(3)]
        super().__init__(
            OrderedDict(
                [
                    ("features", nn.Sequential(*blocks)),
                    *classifier_head(self.num_features, num_classes, dropout, "last_linear"),
                ]
            )
        )


@register_model(
    "inception_v4",
    input_shape=INPUT_SHAPE,
    min_input_shape=MIN_INPUT_SHAPE,
    family="inception",
    description="Inception-v4: Fig. 3 stem, 4/7/3 Inception-A/B/C, 42.7 M parameters",
    reference="Szegedy et al. 2016, arXiv:1602.07261, Fig. 9; same network as timm inception_v4",
)
def inception_v4(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2) -> nn.Module:
    """Inception-v4 at 3x299x299; ``dropout`` is the probability of dropping (paper: keep 0.8)."""
    return InceptionV4(num_classes=num_classes, in_channels=in_channels, dropout=dropout)
