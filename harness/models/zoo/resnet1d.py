"""1D residual networks for signals (C x L inputs): a plain ResNet-18 and a multi-scale ResNet.

Both take a default input of 1 x 5000: one lead of a 10 s electrocardiogram sampled at 500 Hz
(the record format of PTB-XL, Wagner et al. 2020, Sci. Data 7:154), and default to 5 classes
(PTB-XL's diagnostic superclasses). ``in_channels`` (12 for all leads) and ``num_classes`` are
arguments.

``resnet1d18``
    He et al. 2015 (arXiv:1512.03385) ResNet-18 with every 2D layer made 1D, layer for layer
    as torchvision's ``resnet18``: Conv1d 7/2 (64), BatchNorm1d, ReLU, MaxPool1d 3/2, four
    stages of two BasicBlock1d (64, 128, 256, 512 channels; stages 2 to 4 halve the length in
    their first block, with a 1x1 projection on the shortcut), AdaptiveAvgPool1d, one FC.
``resnet1d_multiscale``
    A multi-scale 1D ResNet after Wang's "Multi-Scale 1D ResNet" (MSResNet,
    github.com/geekfeiw/Multi-Scale-1D-ResNet, kernel sizes 3, 5 and 7, also used for ECG and
    other time series): the same stem (Conv1d 7/2, max pooling 3/2) and three stages of
    64, 128, 256 channels, each halving the length. MSResNet runs one full tower per kernel size
    and concatenates the towers at the end; here, as the source documents describe it, the
    scales meet *inside every residual block*: each block runs one branch per kernel size
    (conv k -> BN -> ReLU -> conv k -> BN, "same" padding k // 2, so odd k only), concatenates
    the branches along channels and matches the block's depth with a 1x1 convolution + BN (as
    Inception-ResNet does before its addition), adds the shortcut and applies a ReLU.
    ``fusion="sum"`` adds the branch outputs instead (no 1x1 convolution). Global average
    pooling replaces MSResNet's fixed-size pooling, so any length works.

With "same" padding everywhere (and MaxPool1d 3/2 padded by 1), every layer's output length is
floor((L - 1) / S) + 1 >= 1 for L >= 1: the smallest input is one sample (``min_input_shape`` =
(C, 1)). Training with batch norm needs more than one value per channel, i.e. batch x final
length > 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.core.errors import InvalidInputError
from harness.models.registry import register_model

INPUT_SHAPE = (1, 5000)
MIN_INPUT_SHAPE = (1, 1)
NUM_CLASSES = 5
ECG_NOTE = "default input: one ECG lead, 10 s at 500 Hz (PTB-XL), 5 classes"


def _stem(in_channels: int, width: int) -> list[tuple[str, nn.Module]]:
    """Conv1d 7/2 pad 3 -> BN -> ReLU -> MaxPool1d 3/2 pad 1: L -> ceil(L / 4)."""
    return [
        ("conv1", nn.Conv1d(in_channels, width, 7, stride=2, padding=3, bias=False)),
        ("bn1", nn.BatchNorm1d(width)),
        ("relu", nn.ReLU(inplace=True)),
        ("maxpool", nn.MaxPool1d(3, stride=2, padding=1)),
    ]


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """1x1 conv + BN on the shortcut where the block changes depth or length, else None."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm1d(out_channels),
    )


class BasicBlock1d(nn.Module):
    """ResNet basic block in 1D: conv3 -> BN -> ReLU -> conv3 -> BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


class MultiScaleBlock1d(nn.Module):
    """Residual block with one branch per kernel size, joined by concatenation or sum.

    Branch k: Conv1d(k, stride, pad k // 2) -> BN -> ReLU -> Conv1d(k, pad k // 2) -> BN.
    ``fusion="concat"``: concatenate (len(kernel_sizes) x out_channels) -> 1x1 conv -> BN.
    ``fusion="sum"``: add the branches. Then add the shortcut and apply a ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int],
        stride: int = 1,
        fusion: str = "concat",
    ) -> None:
        super().__init__()
        self.fusion = fusion
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(in_channels, out_channels, k, stride, padding=k // 2, bias=False),
                nn.BatchNorm1d(out_channels),
                nn.ReLU(inplace=True),
                nn.Conv1d(out_channels, out_channels, k, padding=k // 2, bias=False),
                nn.BatchNorm1d(out_channels),
            )
            for k in kernel_sizes
        )
        self.fuse = (
            nn.Sequential(
                nn.Conv1d(len(kernel_sizes) * out_channels, out_channels, 1, bias=False),
                nn.BatchNorm1d(out_channels),
            )
            if fusion == "concat"
            else None
        )
        self.downsample = _projection(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        outs = [branch(x) for branch in self.branches]
        out = self.fuse(torch.cat(outs, 1)) if self.fuse is not None else torch.stack(outs).sum(0)
        return self.relu(out + identity)


class ResNet1d(nn.Module):
    """Stem, stages of residual blocks, global average pooling, FC (torchvision's names)."""

    def __init__(
        self,
        stages: Sequence[nn.Sequential],
        stem_width: int,
        features: int,
        in_channels: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        for name, module in _stem(in_channels, stem_width):
            self.add_module(name, module)
        for i, stage in enumerate(stages, start=1):
            self.add_module(f"layer{i}", stage)
        self.n_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.n_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value}")


@register_model(
    "resnet1d18",
    input_shape=INPUT_SHAPE,
    min_input_shape=MIN_INPUT_SHAPE,
    family="resnet1d",
    description=f"ResNet-18 made 1D (Conv1d 7/2, 4 x 2 BasicBlock1d); {ECG_NOTE}",
    reference="He et al. 2015, arXiv:1512.03385 (ResNet-18), layers as torchvision resnet18",
)
def resnet1d18(num_classes: int = NUM_CLASSES, in_channels: int = 1) -> nn.Module:
    """ResNet-18 with Conv1d/BatchNorm1d/MaxPool1d; input (in_channels, L), any L >= 1."""
    _check_positive("num_classes", num_classes)
    _check_positive("in_channels", in_channels)
    widths, stages, prev = (64, 128, 256, 512), [], 64
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        stages.append(nn.Sequential(BasicBlock1d(prev, width, stride), BasicBlock1d(width, width)))
        prev = width
    return ResNet1d(stages, 64, prev, in_channels, num_classes)


@register_model(
    "resnet1d_multiscale",
    input_shape=INPUT_SHAPE,
    min_input_shape=MIN_INPUT_SHAPE,
    family="resnet1d",
    description=f"multi-scale 1D ResNet, kernel 3/5/7 branches in every block; {ECG_NOTE}",
    reference="Wang, Multi-Scale 1D ResNet (github.com/geekfeiw/Multi-Scale-1D-ResNet); "
    "branches joined inside each residual block, as in Szegedy et al. 2016",
)
def resnet1d_multiscale(
    num_classes: int = NUM_CLASSES,
    in_channels: int = 1,
    kernel_sizes: Sequence[int] = (3, 5, 7),
    widths: Sequence[int] = (64, 128, 256),
    blocks: Sequence[int] = (1, 1, 1),
    fusion: str = "concat",
) -> nn.Module:
    """Multi-scale 1D ResNet: stem 7/2 + pool 3/2, then stages of ``blocks[i]`` multi-scale
    blocks of ``widths[i]`` channels, each stage halving the length (as MSResNet).

    ``kernel_sizes``: one branch per (odd) kernel length; ``fusion``: "concat" or "sum".
    """
    _check_positive("num_classes", num_classes)
    _check_positive("in_channels", in_channels)
    kernel_sizes = tuple(int(k) for k in kernel_sizes)
    if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
        raise InvalidInputError(
            f"kernel_sizes {kernel_sizes} must be odd positive lengths (e.g. (3, 5, 7)): "
            "'same' padding k // 2 keeps every branch at the same length only for odd k"
        )
    if fusion not in ("concat", "sum"):
        raise InvalidInputError(f"fusion must be 'concat' or 'sum', got {fusion!r}")
    if len(widths) != len(blocks) or not widths:
        raise InvalidInputError(
            f"widths {tuple(widths)} and blocks {tuple(blocks)} must be non-empty and of equal "
            "length (one entry per stage)"
        )
    stages, prev = [], 64
    for width, count in zip(widths, blocks, strict=True):
        _check_positive("widths entry", width)
        _check_positive("blocks entry", count)
        layer = [MultiScaleBlock1d(prev, width, kernel_sizes, 2, fusion)]
        layer += [
            MultiScaleBlock1d(width, width, kernel_sizes, 1, fusion) for _ in range(count - 1)
        ]
        stages.append(nn.Sequential(*layer))
        prev = width
    return ResNet1d(stages, 64, prev, in_channels, num_classes)
