"""Claims about GoogLeNet / Inception v1 and the Inception-ResNets."""

from __future__ import annotations

from typing import Any

from harness.claims.core import Claim, Equals, Near, Range, Ref, q
from harness.claims.static import Models, joined, shape

SZEGEDY_2014 = "Szegedy et al. 2014, Going deeper with convolutions (arXiv:1409.4842)"
SZEGEDY_2016 = "Szegedy, Ioffe, Vanhoucke, Alemi 2016 (arXiv:1602.07261), Section 3.3"
INCEPTION_RESNETS = ("inception_resnet_v1", "inception_resnet_v2_paper", "inception_resnet_v2")


def _convs(module: Any) -> list[Any]:
    from torch import nn

    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _branch_widths(module: Any) -> list[int]:
    """Output channels of the four branches: the last conv's, or the input's for a branch
    without one (the naive module's pooling)."""
    branches = [getattr(module, f"branch{i}") for i in range(1, 5)]
    return [_convs(b)[-1].out_channels if _convs(b) else module.branch1[0].in_channels
            for b in branches]  # fmt: skip


def _3a_channels(m: Models) -> dict[str, Any]:
    import torch

    reduced, naive = m.model("inception_3a"), m.model("inception_3a_naive")
    p = m.profile("inception_3a")
    x = torch.empty(1, *p.input_shape, device="meta")
    with torch.no_grad():
        out, naive_out = reduced(x).shape[1], naive(x).shape[1]
    reductions = [reduced.branch2[0][0].out_channels, reduced.branch3[0][0].out_channels]
    return {"input": shape(p.input_shape), "branches": joined(_branch_widths(reduced)),
            "reductions_3x3_5x5": joined(reductions), "output_channels": out,
            "naive_branches": joined(_branch_widths(naive)),
            "naive_output_channels": naive_out}  # fmt: skip


def _3a_weights(m: Models) -> dict[str, Any]:
    w = sum(c.weight.numel() for c in _convs(m.model("inception_3a")))
    w_naive = sum(c.weight.numel() for c in _convs(m.model("inception_3a_naive")))
    macs, naive_macs = m.profile("inception_3a").macs, m.profile("inception_3a_naive").macs
    return {"weights_ratio": q(w_naive / w, "x"), "weights": w, "naive_weights": w_naive,
            "macs_ratio": q(naive_macs / macs, "x")}  # fmt: skip


def _googlenet_depth(m: Models) -> dict[str, Any]:
    from harness.claims.depth import weighted_depth

    model = m.model("googlenet")
    modules = sum(type(x).__name__ == "Inception" for x in model.modules())
    return {"weighted_depth": weighted_depth(model), "inception_modules": modules,
            "depth_with_pooling": weighted_depth(model, count_pools=True)}  # fmt: skip


def _googlenet_head(m: Models) -> dict[str, Any]:
    import torch

    from harness.models.resolve import get_model

    layers = m.profile("googlenet").layers
    fcs = [i for i, s in enumerate(layers) if s.type == "Linear"]
    pool = next(s for s in reversed(layers[: fcs[0]]) if "Pool" in s.type)
    with torch.device("meta"):
        model = get_model("googlenet", aux_logits=True)
    x = torch.empty(2, 3, 224, 224, device="meta")
    train, evaluated = model.train()(x), model.eval()(x)
    return {
        "fc_layers": len(fcs),
        "pool_before_fc": pool.type,
        "pool_output": shape(pool.output_shape[1:]),
        "outputs_in_training": len(train) if isinstance(train, tuple) else 1,
        "outputs_in_eval": len(evaluated) if isinstance(evaluated, tuple) else 1,
        "aux_params": sum(p.numel() for k, p in model.named_parameters() if k.startswith("aux")),
    }


def _vs_alexnet(m: Models) -> dict[str, Any]:
    from torch import nn

    model = m.model("googlenet")
    g = m.profile("googlenet").params
    two, tv = m.profile("alexnet_original").params, m.profile("alexnet").params
    # The paper's GoogLeNet: true 5x5 convs (torchvision's are 3x3), conv biases, no batch norm.
    channels = sum(c.out_channels for c in _convs(model))
    bn = sum(p.numel() for x in m.layers("googlenet", nn.BatchNorm2d) for p in x.parameters())
    fives = [x.branch3[1].conv for x in model.modules() if type(x).__name__ == "Inception"]
    paper = g - bn + channels + sum(c.in_channels * c.out_channels * (25 - 9) for c in fives)
    return {"two_gpu_ratio": q(two / g, "x"), "torchvision_ratio": q(tv / g, "x"),
            "googlenet_params": g, "alexnet_two_gpu_params": two,
            "alexnet_torchvision_params": tv, "paper_googlenet_params": paper,
            "two_gpu_to_paper_googlenet_ratio": q(two / paper, "x")}  # fmt: skip


def _blocks(model: Any) -> list[Any]:
    from harness.models.zoo.inception_resnet import Block8, Block17, Block35

    return [b for b in model.modules() if isinstance(b, (Block35, Block17, Block8))]


REPEATS = ("repeat", "repeat_1", "repeat_2")  # the A, B and C blocks of the paper's schema


def _scales(m: Models) -> dict[str, Any]:
    """The scales of the repeated A/B/C blocks (the paper's residual blocks), and the scale of
    the released v2's extra last Block8 apart (TF-slim's and timm's: unscaled, no ReLU)."""
    out: dict[str, Any] = {}
    for name in INCEPTION_RESNETS:
        model = m.model(name)
        scales = [float(b.scale) for stage in REPEATS for b in getattr(model, stage)]
        out |= {f"{name}_min_scale": q(min(scales), "number"),
                f"{name}_max_scale": q(max(scales), "number"),
                f"{name}_residual_blocks": len(scales)}  # fmt: skip
    final = getattr(m.model("inception_resnet_v2"), "block8", None)
    out["inception_resnet_v2_final_block_scale"] = q(
        None if final is None else float(final.scale), "number", why="no final block"
    )
    return out


def _projection(m: Models) -> dict[str, Any]:
    blocks = [b for name in INCEPTION_RESNETS for b in _blocks(m.model(name))]
    joined_ok = sum(
        b.conv2d.kernel_size == (1, 1)
        and b.conv2d.out_channels == b.branch0.conv.in_channels
        and b.conv2d.bias is not None  # a linear conv: no batch norm, no activation
        for b in blocks
    )
    return {"residual_blocks": len(blocks), "joined_by_1x1_to_input_depth": joined_ok}


INCEPTION_CLAIMS = (
    Claim(
        "googlenet.inception_3a_channels", "structural", SZEGEDY_2014 + ", Figure 2 and Table 1",
        "Module 3a takes 28x28x192 and has 64 1x1, 96 reduce + 128 3x3, 16 reduce + 32 5x5, and "
        "32 pool projections (256 channels out); without the reductions the same module would "
        "output 416 channels.",
        "The zoo's module 3a has these branches and outputs 256 channels; its naive twin 416.",
        _3a_channels,
        (Equals("input", "192x28x28"), Equals("branches", "64/128/32/32"),
         Equals("reductions_3x3_5x5", "96/16"), Equals("output_channels", 256),
         Equals("naive_branches", "64/128/32/192"), Equals("naive_output_channels", 416)),
        tests=("tests/test_zoo.py::test_inception_3a_with_and_without_reductions",),
    ),
    Claim(
        "googlenet.inception_3a_weights", "static", SZEGEDY_2014 + " (as the course notes put it)",
        "Without the reductions the same module would ... hold about three times the weights.",
        "The naive module's conv weights are 3x the reduced module's, at the precision of "
        "'about three' (±0.5).",
        _3a_weights, (Near("weights_ratio", 3, 0.5),),
        tests=("tests/test_zoo.py::test_inception_3a_with_and_without_reductions",),
    ),
    Claim(
        "googlenet.depth", "structural", SZEGEDY_2014 + ", Section 5",
        "22 layers deep (counting only layers with parameters; 27 with pooling).",
        "The longest path through the zoo's GoogLeNet crosses 22 weighted layers, 27 with "
        "pooling.",
        _googlenet_depth,
        (Equals("weighted_depth", 22), Equals("depth_with_pooling", 27)),
        tests=("tests/test_zoo.py::test_googlenet_structure_and_ratio_to_alexnet",),
    ),
    Claim(
        "googlenet.head", "structural", SZEGEDY_2014 + ", Section 5",
        "Average pooling before a single FC layer; two auxiliary classifiers are used only in "
        "training.",
        "One Linear after an average pool to 1024x1x1; with the auxiliary classifiers the model "
        "returns 3 outputs in training and 1 in eval.",
        _googlenet_head,
        (Equals("fc_layers", 1), Equals("pool_before_fc", "AdaptiveAvgPool2d"),
         Equals("pool_output", "1024x1x1"), Equals("outputs_in_training", 3),
         Equals("outputs_in_eval", 1)),
        tests=("tests/test_zoo.py::test_googlenet_aux_classifiers_in_training",),
    ),
    Claim(
        "googlenet.params_vs_alexnet", "static", SZEGEDY_2014 + ", Section 1",
        "About a twelfth of AlexNet's parameters.",
        "AlexNet (two-GPU and torchvision's) holds 12x GoogLeNet's parameters, ±0.5 (the "
        "precision of 'a twelfth').",
        _vs_alexnet,
        (Near("two_gpu_ratio", 12, 0.5), Near("torchvision_ratio", 12, 0.5)),
        tests=("tests/test_claims_static.py::test_googlenet_alexnet_ratio_by_hand",),
    ),
    Claim(
        "inception_resnet.scale", "structural", SZEGEDY_2016,
        "Inception modules with residual connections ... residuals scaled by 0.1 to 0.3.",
        "Every block of the A, B and C repeats (the paper's 5/10/5 or 10/20/10 residual blocks) "
        "scales its residual by 0.1 to 0.3, in the paper's Inception-ResNets and in the released "
        "v2; the released v2's one extra Block8 after the repeats is unscaled (scale 1, no ReLU, "
        "as in TF-slim and timm) and is not one of the paper's scaled blocks.",
        _scales,
        (*(Range(f"{n}_{end}_scale", 0.1, 0.3) for n in INCEPTION_RESNETS
           for end in ("min", "max")),
         Equals("inception_resnet_v2_final_block_scale", 1.0)),
        tests=("tests/test_zoo_inception.py::test_residual_scales_are_arguments_with_"
               "documented_defaults",),
    ),
    Claim(
        "inception_resnet.projection", "structural", SZEGEDY_2016,
        "Inception modules with residual connections, 1x1 convolutions to match depth before the "
        "addition.",
        "Every residual block joins its branches by a linear 1x1 conv to its input depth.",
        _projection, (Equals("joined_by_1x1_to_input_depth", Ref("residual_blocks")),),
        tests=("tests/test_zoo_inception.py::test_residual_block_adds_scaled_linear_projection",),
    ),
)  # fmt: skip
