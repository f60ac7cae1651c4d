"""ResNets (He et al. 2015) as torchvision ships them, their plain counterparts without shortcuts,
and a pre-activation ResNet-18 (He et al. 2016); one ``_make_layer``, thin builders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from harness.core.errors import InvalidInputError
from harness.models.registry import register_model

REFERENCE = (
    "He, Zhang, Ren, Sun. Deep residual learning for image recognition. CVPR 2016 "
    "(arXiv:1512.03385)"
)
PREACT_REFERENCE = (
    "He, Zhang, Ren, Sun. Identity mappings in deep residual networks. ECCV 2016 (arXiv:1603.05027)"
)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, pad 1, no bias (batch norm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias: bottleneck reductions and projection shortcuts."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN, ReLU between, the input added before the last ReLU (``shortcut``)."""

    expansion = 1
    preact = False

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision's "v1.5"), 1x1 expand x4, each with BN."""

    expansion = 4
    preact = False

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class PreActBlock(nn.Module):
    """Full pre-activation basic block (He 2016, Fig. 4e): BN-ReLU-conv3x3-BN-ReLU-conv3x3 + x.

    Where the shape changes, the projection (a 1x1 convolution, no BN) takes the pre-activated
    input, as in the authors' code; nothing follows the addition.
    """

    expansion = 1
    preact = True

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample
        self.stride = stride
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))  # in place on BN's output: x stays intact for the shortcut
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(pre))
        return out


Block = type[BasicBlock] | type[Bottleneck] | type[PreActBlock]
BLOCKS: dict[str, Block] = {"basic": BasicBlock, "bottleneck": Bottleneck, "preact": PreActBlock}


class ResNet(nn.Module):
    """Stem (7x7/2 conv 64, 3x3/2 max pool), four stages of blocks (64, 128, 256, 512 planes,
    stages 2-4 halving the size in their first block), global average pool, one FC layer.

    ``shortcut=False`` gives the paper's plain network: no additions and no projections.
    Pre-activation blocks drop the stem's BN-ReLU (each block starts with its own), use bare 1x1
    projections and add a final BN-ReLU before the pooling, as in the 2016 paper.
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        num_classes: int = 1000,
        shortcut: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.shortcut = shortcut
        self.preact = block.preact
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = None if self.preact else nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.final_bn = nn.BatchNorm2d(512 * block.expansion) if self.preact else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:  # each residual branch starts as zero (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        out_planes = planes * block.expansion
        if self.shortcut and (stride != 1 or self.inplanes != out_planes):
            projection: list[nn.Module] = [conv1x1(self.inplanes, out_planes, stride)]
            if not block.preact:
                projection.append(nn.BatchNorm2d(out_planes))
            downsample = nn.Sequential(*projection)
        layers = [block(self.inplanes, planes, stride, downsample, self.shortcut)]
        self.inplanes = out_planes
        layers += [block(self.inplanes, planes, shortcut=self.shortcut) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.final_bn is not None:
            x = self.relu(self.final_bn(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _register(
    name: str, block: str, layers: tuple[int, int, int, int], description: str, **extra: object
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    return register_model(
        name,
        input_shape=(3, 224, 224),
        # every conv and pool has padding >= (F - 1) / 2, so floor((N - F + 2P) / S) + 1 >= 1
        # for any N >= 1: a 1x1 input reaches the pooling as 1x1 (torchvision: min_size 1x1)
        min_input_shape=(3, 1, 1),
        family="resnet",
        description=description,
        reference=PREACT_REFERENCE if block == "preact" else REFERENCE,
        block=block,
        layers=layers,
        **extra,
    )


@_register("resnet18", "basic", (2, 2, 2, 2), "ResNet-18: basic blocks, 18 weighted layers")
@_register("resnet34", "basic", (3, 4, 6, 3), "ResNet-34: basic blocks")
@_register("resnet50", "bottleneck", (3, 4, 6, 3), "ResNet-50: bottleneck blocks")
@_register("resnet101", "bottleneck", (3, 4, 23, 3), "ResNet-101: bottleneck blocks")
@_register("resnet152", "bottleneck", (3, 8, 36, 3), "ResNet-152: bottleneck blocks")
@_register("plain18", "basic", (2, 2, 2, 2), "plain 18-layer net: ResNet-18 without shortcuts",
           shortcut=False)  # fmt: skip
@_register("plain34", "basic", (3, 4, 6, 3), "plain 34-layer net: ResNet-34 without shortcuts",
           shortcut=False)  # fmt: skip
@_register("preact_resnet18", "preact", (2, 2, 2, 2), "ResNet-18 with pre-activation blocks")
def resnet(
    block: str = "basic",
    layers: Sequence[int] = (2, 2, 2, 2),
    shortcut: bool = True,
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """A ResNet of ``block`` ("basic", "bottleneck" or "preact") with ``layers`` blocks a stage."""
    if block not in BLOCKS:
        raise InvalidInputError(f"unknown ResNet block {block!r}; use one of {list(BLOCKS)}")
    if len(layers) != 4:
        raise InvalidInputError(f"a ResNet has 4 stages; got layers={tuple(layers)}")
    return ResNet(BLOCKS[block], layers, num_classes, shortcut, zero_init_residual)
