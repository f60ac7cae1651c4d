"""Inception-ResNet-v1 and -v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016, arXiv:1602.07261).

Each Inception-ResNet block runs its Inception branches (batch-normalised convolutions), joins
them, matches the input depth with a 1x1 convolution without activation ("1x1 Conv Linear",
with a bias, no batch norm), scales that residual by 0.1 to 0.3 (section 3.3: residuals of wide
blocks are scaled down to keep training stable) and adds it to the input before a ReLU.

Three networks are registered:

``inception_resnet_v1``
    The paper's Inception-ResNet-v1 (Fig. 15 with the Fig. 14 stem, 35x35x256): 5 x
    Inception-ResNet-A (Fig. 10, depth 256), Reduction-A with k, l, m, n = 192, 192, 256, 384
    (-> 17x17x896), 10 x Inception-ResNet-B (Fig. 11, depth 896), Reduction-B (Fig. 12,
    -> 8x8x1792), 5 x Inception-ResNet-C (Fig. 13, depth 1792), average pooling, dropout, FC.
    timm has no such model; the blocks agree with facenet-pytorch's ``InceptionResnetV1``
    (which swaps the classifier for a face-embedding head and adds one more, unactivated
    Inception-ResNet-C block). Its parameter count (22,756,328) is derived by formula in
    tests/test_zoo_inception.py.
``inception_resnet_v2``
    The network the authors released with TF-slim and that timm's ``inception_resnet_v2``
    ports (55,843,464 parameters, the count timm and pytorchcv document): same name and state
    dict layout as timm. It differs from the paper's figures: its stem ends in an
    Inception-A-like block (``mixed_5b``) giving 35x35x320 instead of Fig. 3's 35x35x384, so
    the block depths are 320 / 1088 / 2080 instead of 384 / 1152 / 2144; it stacks 10 / 20 /
    10 blocks (the last Inception-ResNet-C without a ReLU and unscaled) instead of 5 / 10 / 5;
    and a final 1x1 convolution takes 2080 channels to 1536 before pooling.
``inception_resnet_v2_paper``
    Inception-ResNet-v2 as the paper draws it: the Fig. 3 stem (35x35x384), 5 x Fig. 16,
    Reduction-A with k, l, m, n = 256, 256, 384, 384 (-> 17x17x1152), 10 x Fig. 17, Reduction-B
    (Fig. 18, -> 8x8x2144), 5 x Fig. 19, pooling over 2144 channels. The figures' own depths
    for the 1x1 linear convolutions (1154 in Fig. 17, 2048 in Fig. 19) cannot be added to
    their 1152- and 2144-channel inputs; they are taken as 1152 and 2144. 32,433,928
    parameters (by formula in tests/test_zoo_inception.py), 42% fewer than the released net.

Residual scales are arguments with TF-slim's and timm's defaults: 0.17 for A, 0.10 for B,
0.20 for C (the paper: "between 0.1 and 0.3"). Dropout defaults to p = 0.2 (keep 0.8).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from harness.models.registry import register_model
from harness.models.zoo.inception_v4 import (
    INPUT_SHAPE,
    MIN_INPUT_SHAPE,
    ConvBnAct,
    ReductionA,
    _avgpool_3x3,
    _Concat,
    classifier_head,
    stem_fig3,
)

SCALE_A, SCALE_B, SCALE_C = 0.17, 0.10, 0.20
REFERENCE = "Szegedy et al. 2016, arXiv:1602.07261"


class _ResidualBlock(nn.Module):
    """Branches -> concat -> 1x1 linear conv -> ``x + scale * residual`` -> ReLU (optional).

    Subclasses build their branches, then call ``_join`` (so parameters are registered in
    timm's order: branches first, then ``conv2d``).
    """

    branches: tuple[str, ...] = ()

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def _join(self, joined: int, channels: int, relu: bool) -> None:
        self.conv2d = nn.Conv2d(joined, channels, 1)
        self.relu = nn.ReLU() if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([getattr(self, name)(x) for name in self.branches], 1)
        out = self.conv2d(out) * self.scale + x
        return self.relu(out) if self.relu is not None else out


class Block35(_ResidualBlock):
    """Inception-ResNet-A (35x35; Fig. 10 for v1, Fig. 16 for v2).

    ``widths = (b0, (b1a, b1b), (b2a, b2b, b2c))``: a 1x1 conv; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3.
    """

    branches = ("branch0", "branch1", "branch2")

    def __init__(
        self,
        channels: int,
        widths: tuple[int, tuple[int, int], tuple[int, int, int]],
        scale: float = SCALE_A,
        relu: bool = True,
    ) -> None:
        super().__init__(scale)
        b0, (b1a, b1b), (b2a, b2b, b2c) = widths
        self.branch0 = ConvBnAct(channels, b0, 1)
        self.branch1 = nn.Sequential(ConvBnAct(channels, b1a, 1), ConvBnAct(b1a, b1b, 3, padding=1))
        self.branch2 = nn.Sequential(
            ConvBnAct(channels, b2a, 1),
            ConvBnAct(b2a, b2b, 3, padding=1),
            ConvBnAct(b2b, b2c, 3, padding=1),
        )
        self._join(b0 + b1b + b2c, channels, relu)


class _FactorizedBlock(_ResidualBlock):
    """A 1x1 conv beside 1x1 -> 1xk -> kx1; shared by Inception-ResNet-B (k=7) and -C (k=3)."""

    branches = ("branch0", "branch1")
    kernel = 7

    def __init__(
        self,
        channels: int,
        widths: tuple[int, tuple[int, int, int]],
        scale: float,
        relu: bool = True,
    ) -> None:
        super().__init__(scale)
        b0, (b1a, b1b, b1c) = widths
        k, p = self.kernel, self.kernel // 2
        self.branch0 = ConvBnAct(channels, b0, 1)
        self.branch1 = nn.Sequential(
            ConvBnAct(channels, b1a, 1),
            ConvBnAct(b1a, b1b, (1, k), padding=(0, p)),
            ConvBnAct(b1b, b1c, (k, 1), padding=(p, 0)),
        )
        self._join(b0 + b1c, channels, relu)


class Block17(_FactorizedBlock):
    """Inception-ResNet-B (17x17; Fig. 11 for v1, Fig. 17 for v2): 1x1 | 1x1 -> 1x7 -> 7x1."""

    kernel = 7

    def __init__(
        self,
        channels: int,
        widths: tuple[int, tuple[int, int, int]],
        scale: float = SCALE_B,
        relu: bool = True,
    ) -> None:
        super().__init__(channels, widths, scale, relu)


class Block8(_FactorizedBlock):
    """Inception-ResNet-C (8x8; Fig. 13 for v1, Fig. 19 for v2): 1x1 | 1x1 -> 1x3 -> 3x1."""

    kernel = 3

    def __init__(
        self,
        channels: int,
        widths: tuple[int, tuple[int, int, int]],
        scale: float = SCALE_C,
        relu: bool = True,
    ) -> None:
        super().__init__(channels, widths, scale, relu)


class ReductionBRes(_Concat):
    """Reduction-B of the Inception-ResNets (Fig. 12 for v1, Fig. 18 for v2): 17x17 -> 8x8.

    ``widths = ((a0, a1), (b0, b1), (c0, c1, c2))``: 1x1 -> 3x3/2; 1x1 -> 3x3/2;
    1x1 -> 3x3 -> 3x3/2; and 3x3/2 max pooling; out = in + a1 + b1 + c2 channels.
    """

    _branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(
        self,
        in_channels: int,
        widths: tuple[tuple[int, int], tuple[int, int], tuple[int, int, int]],
    ) -> None:
        super().__init__()
        (a0, a1), (b0, b1), (c0, c1, c2) = widths
        self.branch0 = nn.Sequential(ConvBnAct(in_channels, a0, 1), ConvBnAct(a0, a1, 3, stride=2))
        self.branch1 = nn.Sequential(ConvBnAct(in_channels, b0, 1), ConvBnAct(b0, b1, 3, stride=2))
        self.branch2 = nn.Sequential(
            ConvBnAct(in_channels, c0, 1),
            ConvBnAct(c0, c1, 3, padding=1),
            ConvBnAct(c1, c2, 3, stride=2),
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)
        self.out_channels = in_channels + a1 + b1 + c2


class Mixed5b(_Concat):
    """End of the TF-slim Inception-ResNet-v2 stem: 35x35x192 -> 35x35x(96+64+96+64 = 320)."""

    _branches = ("branch0", "branch1", "branch2", "branch3")

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(192, 96, 1)
        self.branch1 = nn.Sequential(ConvBnAct(192, 48, 1), ConvBnAct(48, 64, 5, padding=2))
        self.branch2 = nn.Sequential(
            ConvBnAct(192, 64, 1),
            ConvBnAct(64, 96, 3, padding=1),
            ConvBnAct(96, 96, 3, padding=1),
        )
        self.branch3 = nn.Sequential(_avgpool_3x3(), ConvBnAct(192, 64, 1))


def _stem_v1(in_channels: int) -> list[tuple[str, nn.Module]]:
    """The Inception-ResNet-v1 stem (Fig. 14): 299x299x3 -> 35x35x256."""
    return [
        ("conv2d_1a", ConvBnAct(in_channels, 32, 3, stride=2)),  # 149x149x32
        ("conv2d_2a", ConvBnAct(32, 32, 3)),  # 147x147x32
        ("conv2d_2b", ConvBnAct(32, 64, 3, padding=1)),  # 147x147x64
        ("maxpool_3a", nn.MaxPool2d(3, stride=2)),  # 73x73x64
        ("conv2d_3b", ConvBnAct(64, 80, 1)),  # 73x73x80
        ("conv2d_4a", ConvBnAct(80, 192, 3)),  # 71x71x192
        ("conv2d_4b", ConvBnAct(192, 256, 3, stride=2)),  # 35x35x256
    ]


def _stem_tf_slim_v2(in_channels: int) -> list[tuple[str, nn.Module]]:
    """The released (TF-slim / timm) Inception-ResNet-v2 stem: 299x299x3 -> 35x35x320."""
    return [
        *_stem_v1(in_channels)[:6],  # up to conv2d_4a, 71x71x192
        ("maxpool_5a", nn.MaxPool2d(3, stride=2)),  # 35x35x192
        ("mixed_5b", Mixed5b()),  # 35x35x320
    ]


def _repeat(block: type[nn.Module], count: int, *args: object) -> nn.Sequential:
    return nn.Sequential(*(block(*args) for _ in range(count)))


class InceptionResNet(nn.Sequential):
    """An Inception-ResNet as one sequence of named stages (timm's names where timm has them).

    stem, ``repeat`` (n_a x Block35), ``mixed_6a`` (Reduction-A), ``repeat_1`` (n_b x Block17),
    ``mixed_7a`` (Reduction-B), ``repeat_2`` (n_c x Block8), optionally ``block8`` (one more
    Block8, unscaled, without ReLU) and ``conv2d_7b`` (1x1 conv), then the head ``classif``.
    """

    def __init__(
        self,
        stem: Sequence[tuple[str, nn.Module]],
        stem_channels: int,
        counts: tuple[int, int, int],
        block_a: tuple[int, tuple[int, int], tuple[int, int, int]],
        reduction_a: tuple[int, int, int, int],
        block_b: tuple[int, tuple[int, int, int]],
        reduction_b: tuple[tuple[int, int], tuple[int, int], tuple[int, int, int]],
        block_c: tuple[int, tuple[int, int, int]],
        scales: tuple[float, float, float] = (SCALE_A, SCALE_B, SCALE_C),
        final_block: bool = False,
        final_conv: int | None = None,
        num_classes: int = 1000,
        dropout: float = 0.2,
    ) -> None:
        n_a, n_b, n_c = counts
        k, l, m, n = reduction_a  # noqa: E741
        red_a = ReductionA(stem_channels, k=k, l=l, m=m, n=n)
        red_b = ReductionBRes(red_a.out_channels, reduction_b)
        c_channels = red_b.out_channels
        stages: list[tuple[str, nn.Module]] = [
            *stem,
            ("repeat", _repeat(Block35, n_a, stem_channels, block_a, scales[0])),
            ("mixed_6a", red_a),
            ("repeat_1", _repeat(Block17, n_b, red_a.out_channels, block_b, scales[1])),
            ("mixed_7a", red_b),
            ("repeat_2", _repeat(Block8, n_c, c_channels, block_c, scales[2])),
        ]
        if final_block:
            stages.append(("block8", Block8(c_channels, block_c, scale=1.0, relu=False)))
        features = c_channels
        if final_conv is not None:
            stages.append(("conv2d_7b", ConvBnAct(c_channels, final_conv, 1)))
            features = final_conv
        head = classifier_head(features, num_classes, dropout, "classif")
        super().__init__(OrderedDict([*stages, *head]))
        self.num_features = features


@register_model(
    "inception_resnet_v1",
    input_shape=INPUT_SHAPE,
    min_input_shape=MIN_INPUT_SHAPE,
    family="inception",
    description="Inception-ResNet-v1: Fig. 14 stem, 5/10/5 residual A/B/C blocks, 22.8 M params",
    reference=f"{REFERENCE}, Figs. 10-15 (no timm model; blocks as facenet-pytorch)",
)
def inception_resnet_v1(
    num_classes: int = 1000,
    in_channels: int = 3,
    dropout: float = 0.2,
    scale_a: float = SCALE_A,
    scale_b: float = SCALE_B,
    scale_c: float = SCALE_C,
) -> nn.Module:
    """Inception-ResNet-v1 as in the paper; residual scales default to 0.17 / 0.10 / 0.20."""
    return InceptionResNet(
        stem=_stem_v1(in_channels),
        stem_channels=256,
        counts=(5, 10, 5),
        block_a=(32, (32, 32), (32, 32, 32)),
        reduction_a=(192, 192, 256, 384),
        block_b=(128, (128, 128, 128)),
        reduction_b=((256, 384), (256, 256), (256, 256, 256)),
        block_c=(192, (192, 192, 192)),
        scales=(scale_a, scale_b, scale_c),
        num_classes=num_classes,
        dropout=dropout,
    )


@register_model(
    "inception_resnet_v2",
    input_shape=INPUT_SHAPE,
    min_input_shape=MIN_INPUT_SHAPE,
    family="inception",
    description="Inception-ResNet-v2 as released (TF-slim, timm): 10/20/10 blocks, 55.8 M params",
    reference=f"{REFERENCE}; same network and state dict layout as timm inception_resnet_v2",
)
def inception_resnet_v2(
    num_classes: int = 1000,
    in_channels: int = 3,
    dropout: float = 0.2,
    scale_a: float = SCALE_A,
    scale_b: float = SCALE_B,
    scale_c: float = SCALE_C,
) -> nn.Module:
    """Inception-ResNet-v2 as timm and TF-slim build it (see the module docstring)."""
    return InceptionResNet(
        stem=_stem_tf_slim_v2(in_channels),
        stem_channels=320,
        counts=(10, 20, 9),
        block_a=(32, (32, 32), (32, 48, 64)),
        reduction_a=(256, 256, 384, 384),
        block_b=(192, (128, 160, 192)),
        reduction_b=((256, 384), (256, 288), (256, 288, 320)),
        block_c=(192, (192, 224, 256)),
        scales=(scale_a, scale_b, scale_c),
        final_block=True,
        final_conv=1536,
        num_classes=num_classes,
        dropout=dropout,
    )


@register_model(
    "inception_resnet_v2_paper",
    input_shape=INPUT_SHAPE,
    min_input_shape=MIN_INPUT_SHAPE,
    family="inception",
    description="Inception-ResNet-v2 as the paper's figures draw it: Fig. 3 stem, 5/10/5 blocks",
    reference=f"{REFERENCE}, Figs. 3, 7, 15-19 and Table 1",
)
def inception_resnet_v2_paper(
    num_classes: int = 1000,
    in_channels: int = 3,
    dropout: float = 0.2,
    scale_a: float = SCALE_A,
    scale_b: float = SCALE_B,
    scale_c: float = SCALE_C,
) -> nn.Module:
    """Inception-ResNet-v2 per the paper's figures (see the module docstring)."""
    return InceptionResNet(
        stem=[("stem", nn.Sequential(*stem_fig3(in_channels)))],
        stem_channels=384,
        counts=(5, 10, 5),
        block_a=(32, (32, 32), (32, 48, 64)),
        reduction_a=(256, 256, 384, 384),
        block_b=(192, (128, 160, 192)),
        reduction_b=((256, 384), (256, 288), (256, 288, 320)),
        block_c=(192, (192, 224, 256)),
        scales=(scale_a, scale_b, scale_c),
        num_classes=num_classes,
        dropout=dropout,
    )
