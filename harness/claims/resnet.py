"""Claims about ResNets (He et al. 2015, 2016): layout, blocks, depth, plain nets."""

from __future__ import annotations

import math
from typing import Any

from harness.claims.core import Claim, Equals, Ref, q
from harness.claims.static import Models, joined, n_params, shape

HE_2015 = "He, Zhang, Ren, Sun 2015, Deep residual learning (arXiv:1512.03385), Table 1"
HE_2016 = "He, Zhang, Ren, Sun 2016, Identity mappings in deep residual networks (arXiv:1603.05027)"
DEPTHS = (18, 34, 50, 101, 152)
RESNET18 = {"conv1": "64 7x7/2", "conv1_output": "64x112x112", "maxpool": "3x3/2",
            "maxpool_output": "64x56x56", "blocks_per_stage": "2/2/2/2",
            "stage_channels": "64/128/256/512", "stage_sizes": "56/28/14/7",
            "main_path_convs": 17, "fc_layers": 1, "weighted_depth": 18}  # fmt: skip
PREACT_ORDER = "BatchNorm2d ReLU Conv2d BatchNorm2d ReLU Conv2d"
ORIGINAL_ORDER = "Conv2d BatchNorm2d ReLU Conv2d BatchNorm2d ReLU"


def _layout(m: Models) -> dict[str, Any]:
    from torch import nn

    from harness.claims.depth import weighted_depth

    model, layers = m.model("resnet18"), m.profile("resnet18").layers
    rows = {s.name: s for s in layers}
    stages = [next(s for s in reversed(layers) if s.name.startswith(f"layer{i}.")).output_shape
              for i in range(1, 5)]  # fmt: skip
    c1, pool = model.conv1, model.maxpool
    return {
        "conv1": f"{c1.out_channels} {c1.kernel_size[0]}x{c1.kernel_size[1]}/{c1.stride[0]}",
        "conv1_output": shape(rows["conv1"].output_shape[1:]),
        "maxpool": f"{pool.kernel_size}x{pool.kernel_size}/{pool.stride}",
        "maxpool_output": shape(rows["maxpool"].output_shape[1:]),
        "blocks_per_stage": joined(len(getattr(model, f"layer{i}")) for i in range(1, 5)),
        "stage_channels": joined(s[1] for s in stages),
        "stage_sizes": joined(s[2] for s in stages),
        "main_path_convs": sum(isinstance(x, nn.Conv2d) and "downsample" not in k
                               for k, x in model.named_modules()),
        "fc_layers": len(m.layers("resnet18", nn.Linear)),
        "weighted_depth": weighted_depth(model),
    }  # fmt: skip


def _added_before_last_relu() -> bool:
    """A real 2x4x6x6 check: with the residual branch zeroed (bn2 weight 0) a block returns
    relu(x); adding after the ReLU would return x itself (the input has negative values)."""
    import torch
    from torch import nn

    from harness.models.zoo.resnet import BasicBlock

    block = BasicBlock(4, 4).eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return bool(torch.equal(block(x), torch.relu(x))) and bool((x < 0).any())


def _two_3x3_conv_bn(block: Any) -> bool:
    from torch import nn

    bns = isinstance(block.bn1, nn.BatchNorm2d) and isinstance(block.bn2, nn.BatchNorm2d)
    return block.conv1.kernel_size == block.conv2.kernel_size == (3, 3) and bns


def _blocks(m: Models) -> dict[str, Any]:
    blocks = [b for name in ("resnet18", "resnet34") for i in range(1, 5)
              for b in getattr(m.model(name), f"layer{i}")]  # fmt: skip
    reshaping = [b.stride != 1 or b.conv1.in_channels != b.conv2.out_channels for b in blocks]
    return {
        "blocks_checked": len(blocks),
        "blocks_two_3x3_conv_bn": sum(map(_two_3x3_conv_bn, blocks)),
        "projections_exactly_where_shape_changes": [b.downsample is not None for b in blocks]
        == reshaping,
        "projections_are_1x1": all(b.downsample[0].kernel_size == (1, 1)
                                   for b in blocks if b.downsample),
        "added_before_last_relu": _added_before_last_relu(),
    }  # fmt: skip


def _deeper(m: Models) -> dict[str, Any]:
    from harness.claims.depth import weighted_depth

    out: dict[str, Any] = {}
    for d in DEPTHS:
        model, prof = m.model(f"resnet{d}"), m.profile(f"resnet{d}")
        out |= {f"resnet{d}_weighted_depth": weighted_depth(model),
                f"resnet{d}_block": type(model.layer1[0]).__name__,
                f"resnet{d}_params": prof.params,
                f"resnet{d}_macs": q(prof.macs, "MACs")}  # fmt: skip
    return out


def _shortcut_adds(m: Models, name: str) -> int:
    """Values the shortcuts add in one forward pass: each block's output size."""
    layers = m.profile(name).layers
    blocks = {".".join(s.name.split(".")[:2]) for s in layers
              if s.name.startswith("layer") and s.name.count(".") >= 2}  # fmt: skip
    return sum(
        math.prod(next(s for s in reversed(layers)
                       if s.name.startswith(b + ".") and "downsample" not in s.name).output_shape)
        for b in blocks
    )  # fmt: skip


def _plain(m: Models) -> dict[str, Any]:
    from harness.claims.depth import weighted_depth

    out: dict[str, Any] = {}
    for d in (18, 34):
        res, plain = f"resnet{d}", f"plain{d}"
        p, pp = m.profile(res), m.profile(plain)
        proj = [x for k, x in m.model(res).named_modules() if k.endswith("downsample")]
        proj_macs = sum(s.macs for s in p.layers if ".downsample." in s.name)
        out |= {
            f"{res}_minus_{plain}_params": p.params - pp.params,
            f"{res}_projection_params": sum(n_params(x) for x in proj),
            f"{res}_minus_{plain}_macs": q(p.macs - pp.macs, "MACs"),
            f"{res}_projection_macs": q(proj_macs, "MACs"),
            f"{plain}_has_shortcut_modules": any(
                "downsample" in k for k, _ in m.model(plain).named_modules()),
            f"{plain}_weighted_depth": weighted_depth(m.model(plain)),
            f"{res}_shortcut_adds": _shortcut_adds(m, res),
        }  # fmt: skip
    return out


def _preact(m: Models) -> dict[str, Any]:
    def order(name: str) -> str:
        return " ".join(s.type for s in m.profile(name).layers if s.name.startswith("layer1.0."))

    return {"preact_block_order": order("preact_resnet18"), "resnet_block_order": order("resnet18")}


RESNET_CLAIMS = (
    Claim(
        "resnet18.layout", "structural", HE_2015,
        "ResNet-18: 7x7/2 convolution with 64 filters, 3x3/2 max pooling, four stages of two "
        "blocks (64, 128, 256, 512 channels; stages 2 to 4 halve the size in their first block), "
        "average pooling and one FC layer: 18 weighted layers.",
        "The zoo's resnet18 has this stem, these stages and sizes, and 18 weighted layers on its "
        "longest path.",
        _layout, tuple(Equals(k, v) for k, v in RESNET18.items()),
        tests=("tests/test_zoo.py::test_resnet18_has_18_weighted_layers",),
    ),
    Claim(
        "resnet.blocks", "structural", HE_2015 + ", Figure 2",
        "Residual blocks of two 3x3 convolutions with batch norm and ReLU, the input added before "
        "the last ReLU, a 1x1 projection where shapes differ.",
        "Every block of resnet18/34 is two 3x3 conv-BN, has a 1x1 projection exactly where the "
        "shape changes, and a real block with its residual branch zeroed returns relu(x).",
        _blocks,
        (Equals("blocks_two_3x3_conv_bn", Ref("blocks_checked")),
         Equals("projections_exactly_where_shape_changes", True),
         Equals("projections_are_1x1", True), Equals("added_before_last_relu", True)),
        tests=("tests/test_zoo.py::test_shortcut_adds_the_input",),
    ),
    Claim(
        "resnet.deeper", "structural", HE_2015,
        "Deeper variants (34, 50, 101, 152) use bottleneck blocks from 50 on.",
        "The longest weighted path of each ResNet is its name; 18 and 34 use basic blocks, 50 "
        "and deeper bottlenecks.",
        _deeper,
        tuple(e for d in DEPTHS for e in (
            Equals(f"resnet{d}_weighted_depth", d),
            Equals(f"resnet{d}_block", "Bottleneck" if d >= 50 else "BasicBlock"))),
        tests=("tests/test_zoo.py::test_bottleneck_resnets_expand_four_times",),
    ),
    Claim(
        "resnet.plain", "structural", HE_2015 + ", Section 4.1",
        "A plain network of the same depth without shortcuts is the comparison the paper draws.",
        "plain18/34 have the ResNets' depth, no shortcut modules, and differ from them by exactly "
        "the projections' parameters and MACs.",
        _plain,
        tuple(e for d in (18, 34) for e in (
            Equals(f"resnet{d}_minus_plain{d}_params", Ref(f"resnet{d}_projection_params")),
            Equals(f"resnet{d}_minus_plain{d}_macs", Ref(f"resnet{d}_projection_macs")),
            Equals(f"plain{d}_has_shortcut_modules", False),
            Equals(f"plain{d}_weighted_depth", d))),
        tests=("tests/test_zoo.py::test_plain_nets_are_resnets_without_shortcuts",),
    ),
    Claim(
        "resnet.preact", "structural", HE_2016,
        "Pre-activation blocks (He 2016) move BN and ReLU before the convolutions.",
        "The first block of preact_resnet18 runs BN, ReLU, conv twice; resnet18's conv, BN, ReLU.",
        _preact,
        (Equals("preact_block_order", PREACT_ORDER), Equals("resnet_block_order", ORIGINAL_ORDER)),
        tests=("tests/test_zoo.py::test_preact_resnet18_params_from_formula",),
    ),
)  # fmt: skip
