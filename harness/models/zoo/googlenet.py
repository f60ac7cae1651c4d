"""GoogLeNet / Inception v1 (Szegedy et al. 2014) as torchvision ships it, and the paper's
Inception module 3a on its own, with and without the 1x1 reductions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.models.registry import register_model

REFERENCE = (
    "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich. Going deeper "
    "with convolutions. CVPR 2015 (arXiv:1409.4842)"
)


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode with its auxiliary classifiers on."""

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 0.001) -> ReLU, torchvision's GoogLeNet unit."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """torchvision's Inception block: 1x1 | 1x1-3x3 | 1x1-"5x5" | pool-1x1, concatenated.

    As in torchvision (issue pytorch/vision#906), the "5x5" branch uses a 3x3 convolution: the
    released weights were trained that way. ``inception_3a`` below has the paper's true 5x5.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier (training only): avgpool to 4x4, 1x1 conv 128, FC 1024, FC classes."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))


# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): Table 1 of the paper.
INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's module names, so its state_dicts load here unchanged."""

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = False,
        transform_input: bool = False,
        init_weights: bool = True,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(*INCEPTION_TABLE["3a"])
        self.inception3b = Inception(*INCEPTION_TABLE["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(*INCEPTION_TABLE["4a"])
        self.inception4b = Inception(*INCEPTION_TABLE["4b"])
        self.inception4c = Inception(*INCEPTION_TABLE["4c"])
        self.inception4d = Inception(*INCEPTION_TABLE["4d"])
        self.inception4e = Inception(*INCEPTION_TABLE["4e"])
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(*INCEPTION_TABLE["5a"])
        self.inception5b = Inception(*INCEPTION_TABLE["5b"])
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        if init_weights:
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    def _transform_input(self, x: Tensor) -> Tensor:
        """Map ImageNet-normalised input to the (x - 0.5) / 0.5 scaling of the ported weights."""
        x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x_ch0, x_ch1, x_ch2), 1)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        train_aux = self.training and self.aux_logits
        aux1 = self.aux1(x) if train_aux and self.aux1 is not None else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if train_aux and self.aux2 is not None else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = torch.flatten(self.avgpool(x), 1)
        x = self.fc(self.dropout(x))
        if train_aux:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


@register_model(
    "googlenet",
    input_shape=(3, 224, 224),
    # Working back from maxpool3 (3x3/2, ceil mode: needs 2 pixels), maxpool2 needs 4, maxpool1
    # needs 8, so conv1 needs floor((N + 6 - 7) / 2) + 1 >= 8 -> N >= 15 (torchvision: 15x15).
    min_input_shape=(3, 15, 15),
    family="googlenet",
    description="GoogLeNet / Inception v1 as torchvision ships it (aux classifiers off)",
    reference=REFERENCE,
)
def googlenet(
    num_classes: int = 1000,
    aux_logits: bool = False,
    transform_input: bool = False,
    init_weights: bool = True,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """torchvision's GoogLeNet: 6,624,904 parameters without the auxiliary classifiers."""
    return GoogLeNet(num_classes, aux_logits, transform_input, init_weights, dropout, dropout_aux)


def conv_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """The paper's unit: a convolution with bias and 'same' padding, then ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.ReLU(inplace=True),
    )


class PaperInception(nn.Module):
    """The Inception module of Figure 2 of the paper, (b) with 1x1 reductions or (a) naive.

    With reductions: 1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 | 3x3/1 max pool -> 1x1 proj.
    Naive: 1x1 | 3x3 | 5x5 | 3x3/1 max pool, every convolution over all input channels and the
    pooled input passed through, so the output has ch1x1 + ch3x3 + ch5x5 + in_channels maps.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        reductions: bool = True,
    ) -> None:
        super().__init__()
        self.branch1 = conv_relu(in_channels, ch1x1, 1)
        pool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        if reductions:
            self.branch2 = nn.Sequential(
                conv_relu(in_channels, ch3x3red, 1), conv_relu(ch3x3red, ch3x3, 3)
            )
            self.branch3 = nn.Sequential(
                conv_relu(in_channels, ch5x5red, 1), conv_relu(ch5x5red, ch5x5, 5)
            )
            self.branch4 = nn.Sequential(pool, conv_relu(in_channels, pool_proj, 1))
        else:
            self.branch2 = conv_relu(in_channels, ch3x3, 3)
            self.branch3 = conv_relu(in_channels, ch5x5, 5)
            self.branch4 = nn.Sequential(pool)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


@register_model(
    "inception_3a",
    input_shape=(192, 28, 28),
    # every branch keeps the size ('same' padding, 3x3/1 pool with pad 1): 1x1 works
    min_input_shape=(192, 1, 1),
    family="googlenet",
    description="Inception module 3a of the paper with 1x1 reductions: 192 -> 256 channels",
    reference=REFERENCE,
)
def inception_3a() -> PaperInception:
    """Module 3a as in the paper (conv + ReLU, true 5x5), 163,328 weights + 368 biases."""
    return PaperInception(*INCEPTION_TABLE["3a"], reductions=True)


@register_model(
    "inception_3a_naive",
    input_shape=(192, 28, 28),
    min_input_shape=(192, 1, 1),
    family="googlenet",
    description="Inception module 3a without 1x1 reductions (naive): 192 -> 416 channels",
    reference=REFERENCE,
)
def inception_3a_naive() -> PaperInception:
    """Naive module 3a: 1x1, 3x3 and 5x5 over all 192 channels; 387,072 weights + 224 biases."""
    return PaperInception(*INCEPTION_TABLE["3a"], reductions=False)
