"""VGG (Simonyan & Zisserman 2014), configurations A, A-LRN, B, C, D and E as data.

Each configuration is a list read left to right: an int is a 3x3 convolution (stride 1, pad 1)
with that many filters followed by ReLU, ``(n, 1)`` a 1x1 convolution with n filters (config C),
``"M"`` a 2x2/2 max pool and ``"LRN"`` a local response normalisation (config A-LRN). The
builder, pooling and classifier are torchvision's, so ``vgg11`` ... ``vgg19_bn`` have its module
names and its parameter counts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from harness.core.errors import InvalidInputError
from harness.models.registry import register_model
from harness.models.zoo.alexnet import paper_lrn

REFERENCE = (
    "Simonyan, Zisserman. Very deep convolutional networks for large-scale image recognition. "
    "ICLR 2015 (arXiv:1409.1556)"
)
BN_REFERENCE = REFERENCE + "; batch norm: Ioffe, Szegedy. ICML 2015 (arXiv:1502.03167)"

Layer = int | str | tuple[int, int]

# Table 1 of the paper, one column per configuration.
CONFIGS: dict[str, list[Layer]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M",
          512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}  # fmt: skip


def make_layers(cfg: list[Layer], batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The convolutional part of a VGG configuration (see the module docstring for tokens)."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "LRN":
            layers.append(paper_lrn())
        elif isinstance(v, str):
            raise ValueError(f"unknown VGG config token {v!r}")  # a bug in CONFIGS, not input
        else:
            channels, kernel = v if isinstance(v, tuple) else (v, 3)
            conv = nn.Conv2d(in_channels, channels, kernel_size=kernel, padding=kernel // 2)
            layers += [conv, nn.BatchNorm2d(channels)] if batch_norm else [conv]
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """features -> AdaptiveAvgPool2d(7x7) -> FC 4096 -> FC 4096 -> FC num_classes (torchvision)."""

    def __init__(
        self,
        features: nn.Sequential,
        num_classes: int = 1000,
        init_weights: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _register(
    name: str, cfg: str, batch_norm: bool, description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    return register_model(
        name,
        input_shape=(3, 224, 224),
        # five 2x2/2 pools: floor(N / 32) >= 1 -> N >= 32 (torchvision documents 32x32)
        min_input_shape=(3, 32, 32),
        family="vgg",
        description=description,
        reference=BN_REFERENCE if batch_norm else REFERENCE,
        cfg=cfg,
        batch_norm=batch_norm,
    )


@_register("vgg11", "A", False, "VGG config A: 11 weight layers (8 conv + 3 FC)")
@_register("vgg11_lrn", "A-LRN", False, "VGG config A-LRN: A with LRN after the first conv")
@_register("vgg13", "B", False, "VGG config B: 13 weight layers")
@_register("vgg16_c", "C", False, "VGG config C: 16 layers, 1x1 convs in stages 3-5")
@_register("vgg16", "D", False, "VGG config D: 16 weight layers (13 conv + 3 FC)")
@_register("vgg19", "E", False, "VGG config E: 19 weight layers")
@_register("vgg11_bn", "A", True, "VGG config A with batch norm after every conv")
@_register("vgg13_bn", "B", True, "VGG config B with batch norm after every conv")
@_register("vgg16_bn", "D", True, "VGG config D with batch norm after every conv")
@_register("vgg19_bn", "E", True, "VGG config E with batch norm after every conv")
def vgg(
    cfg: str = "D",
    batch_norm: bool = False,
    num_classes: int = 1000,
    dropout: float = 0.5,
    init_weights: bool = True,
) -> VGG:
    """A VGG network for configuration ``cfg`` (a key of ``CONFIGS``)."""
    if cfg not in CONFIGS:
        raise InvalidInputError(f"unknown VGG configuration {cfg!r}; use one of {list(CONFIGS)}")
    return VGG(
        make_layers(CONFIGS[cfg], batch_norm=batch_norm),
        num_classes=num_classes,
        init_weights=init_weights,
        dropout=dropout,
    )
