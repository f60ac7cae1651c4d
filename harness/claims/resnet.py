"""Claims about ResNets (He et al. 2015, 2016): layout, depth, blocks, plain nets."""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.claims.base import Claim, Context, Finding, n, n_params, verdict
from harness.claims.depth import weighted_depth

HE_2015 = "He, Zhang, Ren, Sun 2015, Deep residual learning (arXiv:1512.03385), Table 1"
HE_2016 = "He, Zhang, Ren, Sun 2016, Identity mappings in deep residual networks (arXiv:1603.05027)"
DEPTHS = (18, 34, 50, 101, 152)


def _stage_outputs(ctx: Context, name: str) -> list[tuple[int, ...]]:
    """Output shape (without batch) of the last layer call of each of the four stages."""
    layers = ctx.profile(name).layers
    return [
        tuple(next(s for s in reversed(layers) if s.name.startswith(f"layer{i}.")).output_shape[1:])
        for i in range(1, 5)
    ]


def _resnet18_layout(ctx: Context) -> Finding:
    model, prof = ctx.model("resnet18"), ctx.profile("resnet18")
    rows = {s.name: s for s in prof.layers}
    stages = [getattr(model, f"layer{i}") for i in range(1, 5)]
    outputs = _stage_outputs(ctx, "resnet18")
    main_convs = sum(
        isinstance(m, nn.Conv2d) and "downsample" not in k for k, m in model.named_modules()
    )
    fcs = sum(isinstance(m, nn.Linear) for m in model.modules())
    c1, pool = model.conv1, model.maxpool
    measured = {
        "conv1": f"{c1.out_channels} {c1.kernel_size[0]}x{c1.kernel_size[1]}/{c1.stride[0]} -> "
        + "x".join(map(str, rows["conv1"].output_shape[1:])),
        "maxpool": f"{pool.kernel_size}x{pool.kernel_size}/{pool.stride} -> "
        + "x".join(map(str, rows["maxpool"].output_shape[1:])),
        "blocks_per_stage": "/".join(str(len(s)) for s in stages),
        "stage_channels": "/".join(str(o[0]) for o in outputs),
        "stage_sizes": "/".join(str(o[1]) for o in outputs),
        "main_path_convs": main_convs,
        "fc_layers": fcs,
        "weighted_depth": weighted_depth(model),
    }
    expected = {
        "conv1": "64 7x7/2 -> 64x112x112",
        "maxpool": "3x3/2 -> 64x56x56",
        "blocks_per_stage": "2/2/2/2",
        "stage_channels": "64/128/256/512",
        "stage_sizes": "56/28/14/7",
        "main_path_convs": 17,
        "fc_layers": 1,
        "weighted_depth": 18,
    }
    wrong = [k for k, v in expected.items() if measured[k] != v]
    text = (
        "7x7/2 conv 64 (112x112), 3x3/2 max pool (56x56), four stages of two blocks with "
        "64/128/256/512 channels at 56/28/14/7 (stages 2-4 halve the size), average pooling "
        "and one FC: 17 convs + 1 FC = 18 weighted layers on the longest path"
        if not wrong
        else f"differs from the paper in: {', '.join(wrong)}"
    )
    return Finding(verdict(not wrong), text, measured)


def _shortcut_before_last_relu() -> bool:
    """A real 2x4x6x6 check: with the residual branch zeroed (bn2 weight 0) a block must
    return relu(x); adding after the ReLU would return x itself."""
    from harness.zoo.resnet import BasicBlock

    block = BasicBlock(4, 4).eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return bool(torch.equal(block(x), torch.relu(x))) and bool((x < 0).any())


def _resnet_blocks(ctx: Context) -> Finding:
    blocks = [
        b
        for name in ("resnet18", "resnet34")
        for stage in range(1, 5)
        for b in getattr(ctx.model(name), f"layer{stage}")
    ]
    two_3x3 = sum(
        b.conv1.kernel_size == b.conv2.kernel_size == (3, 3)
        and isinstance(b.bn1, nn.BatchNorm2d)
        and isinstance(b.bn2, nn.BatchNorm2d)
        for b in blocks
    )
    reshaping = [b for b in blocks if b.stride != 1 or b.conv1.in_channels != b.conv2.out_channels]
    projections = [b for b in blocks if b.downsample is not None]
    one_by_one = all(b.downsample[0].kernel_size == (1, 1) for b in projections)
    added_before_relu = _shortcut_before_last_relu()
    measured = {
        "blocks_checked": len(blocks),
        "blocks_two_3x3_conv_bn": two_3x3,
        "blocks_changing_shape": len(reshaping),
        "blocks_with_1x1_projection": len(projections),
        "added_before_last_relu": added_before_relu,
    }
    ok = two_3x3 == len(blocks) and projections == reshaping and one_by_one and added_before_relu
    text = (
        f"all {len(blocks)} blocks of ResNet-18/34 are two 3x3 conv-BN; the {len(projections)} "
        "with a 1x1 projection are exactly those changing shape; with the residual branch "
        "zeroed a real block returns relu(x), so the input is added before the last ReLU"
    )
    return Finding(verdict(ok), text, measured)


def _deeper(ctx: Context) -> Finding:
    measured: dict[str, int | str] = {}
    wrong = []
    for depth in DEPTHS:
        name = f"resnet{depth}"
        model = ctx.model(name)
        block = type(model.layer1[0]).__name__
        got = weighted_depth(model)
        prof = ctx.profile(name)
        measured |= {
            f"{name}_weighted_depth": got,
            f"{name}_block": block,
            f"{name}_params": prof.params,
            f"{name}_macs": prof.macs,
        }
        want = "Bottleneck" if depth >= 50 else "BasicBlock"
        if got != depth or block != want:
            wrong.append(f"{name}: depth {got}, {block}")
    text = (
        "the longest weighted path of each is its name (18, 34, 50, 101, 152); 18 and 34 use "
        "basic blocks, 50 and deeper bottleneck blocks (1x1-3x3-1x1): "
        + ", ".join(
            f"{d}: {measured[f'resnet{d}_params'] / 1e6:.1f} M params, "
            f"{measured[f'resnet{d}_macs'] / 1e9:.2f} GMACs"
            for d in DEPTHS
        )
        if not wrong
        else "; ".join(wrong)
    )
    return Finding(verdict(not wrong), text, measured)


def _elementwise_adds(ctx: Context, name: str) -> int:
    """Values added by the shortcuts of one forward pass: each block's output size."""
    layers = ctx.profile(name).layers
    blocks = {
        ".".join(s.name.split(".")[:2])
        for s in layers
        if s.name.startswith("layer") and s.name.count(".") >= 2
    }
    total = 0
    for block in blocks:
        last = next(
            s
            for s in reversed(layers)
            if s.name.startswith(block + ".") and "downsample" not in s.name
        )
        total += math.prod(last.output_shape)
    return total


def _plain(ctx: Context) -> Finding:
    measured: dict[str, int] = {}
    ok = True
    for depth in (18, 34):
        res, plain = f"resnet{depth}", f"plain{depth}"
        model = ctx.model(res)
        proj = [m for k, m in model.named_modules() if k.endswith("downsample")]
        proj_params = sum(n_params(m) for m in proj)
        p, q = ctx.profile(res), ctx.profile(plain)
        proj_macs = sum(s.macs for s in p.layers if ".downsample." in s.name)
        has_proj = any("downsample" in k for k, _ in ctx.model(plain).named_modules())
        measured |= {
            f"{res}_params": p.params,
            f"{plain}_params": q.params,
            f"{res}_projection_params": proj_params,
            f"{res}_macs": p.macs,
            f"{plain}_macs": q.macs,
            f"{res}_projection_macs": proj_macs,
            f"{res}_shortcut_adds": _elementwise_adds(ctx, res),
            f"{plain}_weighted_depth": weighted_depth(ctx.model(plain)),
        }
        ok &= (
            p.params - q.params == proj_params
            and p.macs - q.macs == proj_macs
            and not has_proj
            and measured[f"{plain}_weighted_depth"] == depth
        )
    text = (
        f"plain18/34 have the ResNets' depth (18, 34) without shortcuts: they lack exactly the "
        f"3 projection shortcuts ({n(measured['resnet18_projection_params'])} params, "
        f"{n(measured['resnet18_projection_macs'])} MACs, "
        f"{measured['resnet18_projection_macs'] / measured['resnet18_macs']:.2%} of ResNet-18's "
        f"MACs); the identity additions are {n(measured['resnet18_shortcut_adds'])} "
        "element-wise adds, not MACs"
    )
    return Finding(verdict(ok), text, measured)


def _preact(ctx: Context) -> Finding:
    def order(name: str) -> list[str]:
        return [s.type for s in ctx.profile(name).layers if s.name.startswith("layer1.0.")]

    pre, post = order("preact_resnet18"), order("resnet18")
    measured = {"preact_block_order": " ".join(pre), "resnet_block_order": " ".join(post)}
    ok = pre[:3] == ["BatchNorm2d", "ReLU", "Conv2d"] and post[0] == "Conv2d"
    text = (
        f"the first pre-activation block runs {' -> '.join(pre)} (BN and ReLU before each "
        f"conv), the original block {' -> '.join(post)}"
    )
    return Finding(verdict(ok), text, measured)


RESNET_CLAIMS = [
    Claim(
        "resnet18.layout",
        HE_2015,
        "ResNet-18: 7x7/2 convolution with 64 filters, 3x3/2 max pooling, four stages of two "
        "blocks (64, 128, 256, 512 channels; stages 2 to 4 halve the size in their first "
        "block), average pooling and one FC layer: 18 weighted layers.",
        _resnet18_layout,
        method=(
            "Reads resnet18's stem and stages, the profiled output shapes and the longest weighted"
            " path (torch.fx)."
        ),
        tests=(
            "tests/test_zoo.py::test_resnet18_has_18_weighted_layers",
            "tests/test_claims.py::test_depths_by_the_papers_convention",
        ),
    ),
    Claim(
        "resnet.blocks",
        HE_2015 + ", Figure 2",
        "Residual blocks of two 3x3 convolutions with batch norm and ReLU, the input added "
        "before the last ReLU, a 1x1 projection where shapes differ.",
        _resnet_blocks,
        method=(
            "Inspects every block of resnet18 and resnet34 (convs, batch norm, projections) and "
            "runs one real 4-channel block with its residual branch zeroed."
        ),
        tests=("tests/test_zoo.py::test_shortcut_adds_the_input",),
    ),
    Claim(
        "resnet.deeper",
        HE_2015,
        "Deeper variants (34, 50, 101, 152) use bottleneck blocks from 50 on.",
        _deeper,
        method=(
            "The longest weighted path and block type of resnet18 to resnet152; profiled params "
            "and MACs."
        ),
        tests=(
            "tests/test_zoo.py::test_bottleneck_resnets_expand_four_times",
            "tests/test_claims.py::test_depths_by_the_papers_convention",
        ),
    ),
    Claim(
        "resnet.plain",
        HE_2015 + ", Section 4.1",
        "A plain network of the same depth without shortcuts is the comparison the paper draws.",
        _plain,
        method=(
            "Profiles resnet18/34 and plain18/34: their params and MACs differences against the "
            "projection shortcuts'; shortcut additions from the block outputs."
        ),
        tests=(
            "tests/test_zoo.py::test_plain_nets_are_resnets_without_shortcuts",
            "tests/test_claims.py::test_plain_nets_differ_by_the_projections",
        ),
    ),
    Claim(
        "resnet.preact",
        HE_2016,
        "Pre-activation blocks move BN and ReLU before the convolutions.",
        _preact,
        method="The profiled call order of the first block of preact_resnet18 and of resnet18.",
        tests=("tests/test_zoo.py::test_preact_resnet18_params_from_formula",),
    ),
]
