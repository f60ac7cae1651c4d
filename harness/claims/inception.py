"""Claims about GoogLeNet / Inception v1 and the Inception-ResNets."""

from __future__ import annotations

import torch
from torch import nn

from harness.claims.base import PARTLY, Claim, Context, Finding, n, verdict
from harness.claims.depth import weighted_depth

SZEGEDY_2014 = "Szegedy et al. 2014, Going deeper with convolutions (arXiv:1409.4842)"
SZEGEDY_2016 = "Szegedy, Ioffe, Vanhoucke, Alemi 2016 (arXiv:1602.07261), Section 3.3"
INCEPTION_RESNETS = ("inception_resnet_v1", "inception_resnet_v2_paper", "inception_resnet_v2")


def _branch_widths(module: nn.Module) -> list[int]:
    """Output channels of each of the four branches: the last conv's, or the input's for a
    branch without one (the naive module's pooling)."""
    widths = []
    for name in ("branch1", "branch2", "branch3", "branch4"):
        convs = [m for m in getattr(module, name).modules() if isinstance(m, nn.Conv2d)]
        widths.append(convs[-1].out_channels if convs else module.branch1[0].in_channels)
    return widths


def _conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def _out_channels(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Channels of the module's output for one input on the meta device (the concatenation
    is not a layer of its own, so the profile's layer rows do not show it)."""
    with torch.no_grad():
        return int(module(torch.empty(1, *input_shape, device="meta")).shape[1])


def _inception_3a_channels(ctx: Context) -> Finding:
    reduced, naive = ctx.model("inception_3a"), ctx.model("inception_3a_naive")
    p = ctx.profile("inception_3a")
    out, naive_out = _out_channels(reduced, p.input_shape), _out_channels(naive, p.input_shape)
    widths, naive_widths = _branch_widths(reduced), _branch_widths(naive)
    reduces = [reduced.branch2[0][0].out_channels, reduced.branch3[0][0].out_channels]
    measured = {
        "input": "x".join(map(str, p.input_shape)),
        "branches": "/".join(map(str, widths)),
        "reductions_3x3_5x5": "/".join(map(str, reduces)),
        "output_channels": out,
        "naive_branches": "/".join(map(str, naive_widths)),
        "naive_output_channels": naive_out,
    }
    ok = (
        p.input_shape == (192, 28, 28)
        and widths == [64, 128, 32, 32]
        and reduces == [96, 16]
        and out == sum(widths) == 256
        and naive_out == sum(naive_widths) == 416
    )
    text = (
        f"28x28x192 in; branches 64 + 128 + 32 + 32 = {out} channels out (3x3 and 5x5 "
        f"after 96 and 16 reductions); without reductions 64 + 128 + 32 + 192 (the pooled "
        f"input) = {naive_out}"
    )
    return Finding(verdict(ok), text, measured)


def _inception_3a_weights(ctx: Context) -> Finding:
    w = _conv_weights(ctx.model("inception_3a"))
    w_naive = _conv_weights(ctx.model("inception_3a_naive"))
    p, q = ctx.profile("inception_3a"), ctx.profile("inception_3a_naive")
    ratio = w_naive / w
    measured = {
        "weights": w,
        "naive_weights": w_naive,
        "weights_ratio": ratio,
        "params": p.params,
        "naive_params": q.params,
        "macs": p.macs,
        "naive_macs": q.macs,
        "macs_ratio": q.macs / p.macs,
    }
    text = (
        f"without the 1x1 reductions module 3a holds {ratio:.2f}x the weights "
        f"({n(w_naive)} vs {n(w)}), not about 3x; its MACs grow by the same "
        f"{q.macs / p.macs:.2f}x ({q.macs / 1e6:.1f} M vs {p.macs / 1e6:.1f} M)"
    )
    return Finding(verdict(2.5 <= ratio < 3.5), text, measured)


def _googlenet_depth(ctx: Context) -> Finding:
    model = ctx.model("googlenet")
    weighted, with_pools = weighted_depth(model), weighted_depth(model, count_pools=True)
    modules = sum(type(m).__name__ == "Inception" for m in model.modules())
    measured = {
        "weighted_depth": weighted,
        "depth_with_pooling": with_pools,
        "inception_modules": modules,
    }
    ok = (weighted, with_pools) == (22, 27)
    text = (
        f"the longest path through GoogLeNet crosses {weighted} layers with parameters (3 stem "
        f"convs, {modules} Inception modules 2 deep: 1x1 reduce -> 3x3, 1 FC) and {with_pools} "
        "counting pooling, the paper's own two numbers (batch norm, torchvision's addition, "
        "not counted)"
    )
    return Finding(verdict(ok), text, measured)


def _googlenet_head(ctx: Context) -> Finding:
    from harness.models import get_model

    layers = ctx.profile("googlenet").layers
    fcs = [i for i, s in enumerate(layers) if s.type == "Linear"]
    pool = next(s for s in reversed(layers[: fcs[0]]) if "Pool" in s.type)
    with torch.device("meta"):
        model = get_model("googlenet", aux_logits=True)
    x = torch.empty(2, 3, 224, 224, device="meta")
    train_out, eval_out = model.train()(x), model.eval()(x)
    aux_params = sum(p.numel() for k, p in model.named_parameters() if k.startswith("aux"))
    measured = {
        "fc_layers": len(fcs),
        "pool_before_fc": f"{pool.type} -> {'x'.join(map(str, pool.output_shape[1:]))}",
        "outputs_in_training": len(train_out) if isinstance(train_out, tuple) else 1,
        "outputs_in_eval": len(eval_out) if isinstance(eval_out, tuple) else 1,
        "aux_params": aux_params,
    }
    ok = (
        len(fcs) == 1
        and pool.type.endswith("AvgPool2d")
        and (measured["outputs_in_training"], measured["outputs_in_eval"]) == (3, 1)
    )
    text = (
        f"one FC layer after {pool.type} to 1024x1x1; with the auxiliary classifiers on "
        f"({n(aux_params)} more parameters) the model returns 3 outputs in training and 1 "
        "in eval"
    )
    return Finding(verdict(ok), text, measured)


def _googlenet_vs_alexnet(ctx: Context) -> Finding:
    model = ctx.model("googlenet")
    g = ctx.profile("googlenet").params
    a_two, a_tv = ctx.profile("alexnet_original").params, ctx.profile("alexnet").params
    # The paper's GoogLeNet: true 5x5 convs (torchvision uses 3x3), conv biases, no batch norm.
    channels = sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
             for p in m.parameters())  # fmt: skip
    five = [m.branch3[1].conv for m in model.modules() if type(m).__name__ == "Inception"]
    extra_5x5 = sum(c.in_channels * c.out_channels * (25 - 9) for c in five)
    paper = g - bn + channels + extra_5x5
    fc = model.fc.weight.numel() + model.fc.bias.numel()
    ratios = (a_two / g, a_tv / g)
    measured = {
        "googlenet_params": g,
        "alexnet_two_gpu_params": a_two,
        "alexnet_torchvision_params": a_tv,
        "two_gpu_ratio": ratios[0],
        "torchvision_ratio": ratios[1],
        "paper_googlenet_params": paper,
        "two_gpu_to_paper_googlenet_ratio": a_two / paper,
        "googlenet_without_fc_params": g - fc,
    }
    near_twelve = [11 <= r <= 13 for r in ratios]
    v = verdict(all(near_twelve)) if all(near_twelve) or not any(near_twelve) else PARTLY
    text = (
        f"AlexNet holds {ratios[0]:.2f}x GoogLeNet's parameters (two-GPU {n(a_two)}; "
        f"torchvision's {n(a_tv)}: {ratios[1]:.2f}x; GoogLeNet {n(g)}), about a ninth, not a "
        f"twelfth; the paper's GoogLeNet (true 5x5 convs, biases, no batch norm, {n(paper)}) "
        f"makes it {a_two / paper:.2f}x (Inception-v3's paper quotes 5 M vs 60 M; GoogLeNet "
        f"without its FC holds {(g - fc) / 1e6:.1f} M)"
    )
    return Finding(v, text, measured)


def _residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, block) of every Inception-ResNet-A/B/C block, in order."""
    from harness.zoo.inception_resnet import Block8, Block17, Block35

    return [(k, m) for k, m in model.named_modules() if isinstance(m, (Block35, Block17, Block8))]


def _scales(ctx: Context) -> Finding:
    measured: dict[str, int | str] = {}
    outside: dict[str, list[str]] = {}
    paper_scales: list[float] = []
    for name in INCEPTION_RESNETS:
        blocks = _residual_blocks(ctx.model(name))
        counts: dict[float, int] = {}
        for _, b in blocks:
            counts[b.scale] = counts.get(b.scale, 0) + 1
        measured[f"{name}_scales"] = ", ".join(f"{s:g} x{c}" for s, c in counts.items())
        bad = [f"{k} ({b.scale:g})" for k, b in blocks if not 0.1 <= b.scale <= 0.3]
        measured[f"{name}_outside_0.1_0.3"] = len(bad)
        if bad:
            outside[name] = bad
        if name != "inception_resnet_v2":  # the paper's own networks
            paper_scales += [b.scale for _, b in blocks]
    paper_ok = all(0.1 <= s <= 0.3 for s in paper_scales)
    v = verdict(paper_ok) if not outside or not paper_ok else PARTLY
    released = outside.get("inception_resnet_v2", [])
    text = (
        f"the paper's networks (v1, v2 as drawn) scale all {len(paper_scales)} residuals by "
        f"{min(paper_scales):g}-{max(paper_scales):g}"
    )
    if released:
        text += (
            f"; the released Inception-ResNet-v2 (TF-slim, timm) scales "
            f"{measured['inception_resnet_v2_scales']}: {', '.join(released)} outside 0.1-0.3"
        )
    if not paper_ok:
        text = "residual scales outside 0.1-0.3: " + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in outside.items()
        )
    return Finding(v, text, measured)


def _projection(ctx: Context) -> Finding:
    checked = matched = 0
    for name in INCEPTION_RESNETS:
        for _, block in _residual_blocks(ctx.model(name)):
            checked += 1
            conv = block.conv2d
            in_channels = block.branch0.conv.in_channels
            matched += (
                conv.kernel_size == (1, 1)
                and conv.out_channels == in_channels
                and conv.bias is not None  # a linear conv: no batch norm, no activation
            )
    measured = {"residual_blocks": checked, "joined_by_1x1_to_input_depth": matched}
    text = (
        f"in all {checked} residual blocks of the three Inception-ResNets, the concatenated "
        "branches pass a 1x1 linear convolution (bias, no BN, no ReLU) whose output depth is "
        "the block's input depth, then the scaled addition"
    )
    if matched != checked:
        text = f"only {matched} of {checked} residual blocks join through a depth-matching 1x1"
    return Finding(verdict(matched == checked > 0), text, measured)


INCEPTION_CLAIMS = [
    Claim(
        "googlenet.inception_3a_channels",
        SZEGEDY_2014 + ", Figure 2 and Table 1",
        "Module 3a takes 28x28x192: four branches (64 1x1; 96 reduce + 128 3x3; 16 reduce + 32 "
        "5x5; 32 pool projections) concatenated to 256 channels; without the reductions the "
        "same module would output 416 channels.",
        _inception_3a_channels,
        method=(
            "Reads the branches of inception_3a and inception_3a_naive and runs both on a meta "
            "192x28x28 input."
        ),
        tests=("tests/test_zoo.py::test_inception_3a_with_and_without_reductions",),
    ),
    Claim(
        "googlenet.inception_3a_weights",
        SZEGEDY_2014 + " (as the course notes present it)",
        "Without the 1x1 reductions module 3a would hold about three times the weights.",
        _inception_3a_weights,
        method="Counts the conv weights of both modules; their MACs from the profiler.",
        tests=(
            "tests/test_zoo.py::test_inception_3a_with_and_without_reductions",
            "tests/test_claims.py::test_inception_3a_weights_claim_is_refuted_by_hand_count",
        ),
    ),
    Claim(
        "googlenet.depth",
        SZEGEDY_2014 + ", Section 5",
        "22 layers deep (counting only layers with parameters; 27 with pooling).",
        _googlenet_depth,
        method=(
            "The longest path of conv and FC layers (and with pooling layers) through GoogLeNet, "
            "traced with torch.fx."
        ),
        tests=(
            "tests/test_zoo.py::test_googlenet_structure_and_ratio_to_alexnet",
            "tests/test_claims.py::test_depths_by_the_papers_convention",
        ),
    ),
    Claim(
        "googlenet.head",
        SZEGEDY_2014 + ", Section 5",
        "Average pooling before a single FC layer; two auxiliary classifiers are used only in "
        "training.",
        _googlenet_head,
        method=(
            "The profiled layers before the single Linear; googlenet(aux_logits=True) run on meta "
            "in training and eval mode."
        ),
        tests=("tests/test_zoo.py::test_googlenet_aux_classifiers_in_training",),
    ),
    Claim(
        "googlenet.params_vs_alexnet",
        SZEGEDY_2014 + ", Section 1",
        "GoogLeNet has about a twelfth of AlexNet's parameters.",
        _googlenet_vs_alexnet,
        method=(
            "The profiler's params of googlenet, alexnet_original and alexnet; a count for the "
            "paper's GoogLeNet derived from the modules."
        ),
        tests=(
            "tests/test_zoo.py::test_googlenet_structure_and_ratio_to_alexnet",
            "tests/test_claims.py::test_googlenet_alexnet_ratio_is_refuted",
        ),
    ),
    Claim(
        "inception_resnet.scale",
        SZEGEDY_2016,
        "Inception-ResNet v1/v2: residuals scaled by 0.1 to 0.3 before the addition.",
        _scales,
        method=(
            "Reads the scale of every Inception-ResNet-A/B/C block of the three Inception-ResNets."
        ),
        tests=(
            "tests/test_zoo_inception.py::test_residual_scales_are_arguments_with_"
            "documented_defaults",
        ),
    ),
    Claim(
        "inception_resnet.projection",
        SZEGEDY_2016,
        "Inception modules with residual connections use 1x1 convolutions to match the depth "
        "before the addition.",
        _projection,
        method=(
            "Checks each residual block's joining conv: 1x1, with bias, output depth equal to the "
            "block's input depth."
        ),
        tests=("tests/test_zoo_inception.py::test_residual_block_adds_scaled_linear_projection",),
    ),
]
