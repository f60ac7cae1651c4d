"""Claims about VGG (Simonyan & Zisserman) and the cs231n notes' VGG-16 memory table."""

from __future__ import annotations

import torch
from torch import nn

from harness.claims.base import Claim, Context, Finding, n, pct, verdict
from harness.claims.depth import weighted_depth

SIMONYAN = "Simonyan, Zisserman 2014 (arXiv:1409.1556), Table 1 and Section 2.3"
CS231N = "Stanford cs231n notes, 'Convolutional Neural Networks', case study VGGNet"

# Configuration -> registered model and the weight layers Table 1 of the paper gives it.
CONFIGS = {
    "A": ("vgg11", 11),
    "A-LRN": ("vgg11_lrn", 11),
    "B": ("vgg13", 13),
    "C": ("vgg16_c", 16),
    "D": ("vgg16", 16),
    "E": ("vgg19", 19),
}
# cs231n's VGG-16 total line: "TOTAL memory: 24M * 4 bytes ~= 93MB / image (only forward!)".
NOTES_TOTAL_VALUES = 24_000_000


def _vgg_kernels(ctx: Context) -> Finding:
    three = one = other_conv = pools = other_pool = 0
    one_by_one_stages: set[int] = set()
    for cfg, (name, _) in CONFIGS.items():
        stage = 0
        for m in ctx.model(name).features:
            if isinstance(m, nn.Conv2d):
                geometry = (m.kernel_size, m.stride, m.padding)
                if geometry == ((3, 3), (1, 1), (1, 1)):
                    three += 1
                elif geometry == ((1, 1), (1, 1), (0, 0)) and cfg == "C":
                    one += 1
                    one_by_one_stages.add(stage + 1)
                else:
                    other_conv += 1
            elif isinstance(m, nn.MaxPool2d):
                stage += 1
                pools += m.kernel_size == 2 and m.stride == 2
                other_pool += not (m.kernel_size == 2 and m.stride == 2)
    # torchvision's VGG adds AdaptiveAvgPool2d(7x7), an identity on a 224x224 input
    avg = next(s for s in ctx.profile("vgg16").layers if s.type == "AdaptiveAvgPool2d")
    identity = avg.output_shape[1:] == (512, 7, 7)
    measured = {
        "conv_3x3_stride_1_pad_1": three,
        "conv_1x1_config_c": one,
        "config_c_1x1_stages": "/".join(str(s) for s in sorted(one_by_one_stages)),
        "other_convs": other_conv,
        "maxpool_2x2_stride_2": pools,
        "other_pools": other_pool,
        "torchvision_avgpool_identity_at_224": identity,
    }
    ok = other_conv == 0 and other_pool == 0 and one_by_one_stages == {3, 4, 5}
    text = (
        f"all six configurations: {three} convolutions are 3x3 stride 1 pad 1, the {one} "
        f"others are config C's 1x1 convolutions in stages 3-5, and all {pools} max pools are "
        "2x2/2 (torchvision's extra 7x7 adaptive average pool is an identity at 224x224)"
        if ok
        else f"other kernels or pools found: {measured}"
    )
    return Finding(verdict(ok), text, measured)


def _vgg_depth(ctx: Context) -> Finding:
    measured: dict[str, int] = {}
    wrong = []
    for cfg, (name, layers) in CONFIGS.items():
        model = ctx.model(name)
        counted = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
        longest = weighted_depth(model)
        measured[f"{cfg}_weight_layers"] = counted
        if not counted == longest == layers:
            wrong.append(f"{cfg}: {counted} layers, longest path {longest} (paper {layers})")
    ok = not wrong
    text = (
        "weight layers (conv + FC, also the longest weighted path): A 11, A-LRN 11, B 13, "
        "C 16, D 16, E 19, as in Table 1"
        if ok
        else "; ".join(wrong)
    )
    return Finding(verdict(ok), text, measured)


def _vgg_params_vs_depth(ctx: Context) -> Finding:
    measured: dict[str, float] = {}
    fc_shares = {}
    for cfg in ("A", "B", "D", "E"):
        prof = ctx.profile(CONFIGS[cfg][0])
        by_type = prof.by_type().set_index("layer_type")["params"]
        measured[f"{CONFIGS[cfg][0]}_params"] = prof.params
        fc_shares[cfg] = by_type["Linear"] / prof.params
        measured[f"{CONFIGS[cfg][0]}_conv_params"] = int(by_type["Conv2d"])
    p11, p19 = measured["vgg11_params"], measured["vgg19_params"]
    c11, c19 = measured["vgg11_conv_params"], measured["vgg19_conv_params"]
    fc = int(ctx.profile("vgg11").by_type().set_index("layer_type").loc["Linear", "params"])
    measured |= {
        "depth_11_to_19_change": 19 / 11 - 1,
        "params_11_to_19_change": p19 / p11 - 1,
        "conv_params_11_to_19_change": c19 / c11 - 1,
        "fc_params": fc,
        "vgg11_fc_share": fc_shares["A"],
        "vgg19_fc_share": fc_shares["E"],
    }
    ok = p19 / p11 - 1 < 0.10 and min(fc_shares.values()) > 0.5
    text = (
        f"11 -> 19 weight layers (+{pct(19 / 11 - 1, 1)} depth) adds {pct(p19 / p11 - 1, 1)} "
        f"parameters ({n(p11)} -> {n(p19)}): the conv parameters grow "
        f"{pct(c19 / c11 - 1, 0)}, but the same {n(fc)} FC parameters hold "
        f"{pct(fc_shares['A'], 1)} of A and {pct(fc_shares['E'], 1)} of E"
    )
    return Finding(verdict(ok), text, measured)


def _receptive_field(kernels: list[int], size: int = 15) -> int:
    """Width of the input window one output pixel of a stack of stride-1 convolutions with
    these kernel sizes depends on, found by back-propagating from that pixel (a 1-channel
    probe on a 15x15 CPU tensor: microseconds)."""
    probe = nn.Sequential(*(nn.Conv2d(1, 1, k, bias=False, device="cpu") for k in kernels))
    for conv in probe:
        nn.init.constant_(conv.weight, 1.0)
    x = torch.zeros(1, 1, size, size, device="cpu", requires_grad=True)
    out = probe(x)
    (grad,) = torch.autograd.grad(out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2], x)
    rows = (grad[0, 0] != 0).any(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


def _three_3x3(ctx: Context) -> Finding:
    from harness.profile import profile

    c, hw = 64, 56
    with torch.device("meta"):
        stack = nn.Sequential(*(nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)))
        single = nn.Conv2d(c, c, 7, padding=3, bias=False)
    ps, p1 = profile(stack, (c, hw, hw)), profile(single, (c, hw, hw))
    rf_stack, rf_single = _receptive_field([3, 3, 3]), _receptive_field([7])
    measured = {
        "channels": c,
        "three_3x3_weights": ps.params,
        "one_7x7_weights": p1.params,
        "three_3x3_weights_per_c2": ps.params / c**2,
        "one_7x7_weights_per_c2": p1.params / c**2,
        "three_3x3_macs": ps.macs,
        "one_7x7_macs": p1.macs,
        "three_3x3_receptive_field": rf_stack,
        "one_7x7_receptive_field": rf_single,
    }
    ok = (ps.params, p1.params, rf_stack, rf_single) == (27 * c * c, 49 * c * c, 7, 7)
    text = (
        f"with C = {c}: {n(ps.params)} = 27C^2 weights against {n(p1.params)} = 49C^2 "
        f"(MACs in the same 27:49 ratio at {hw}x{hw}); back-propagating from one output pixel "
        f"reaches a {rf_stack}x{rf_stack} input window for the stack, {rf_single}x{rf_single} "
        "for the single 7x7"
    )
    return Finding(verdict(ok), text, measured)


def _vgg16_memory(ctx: Context) -> Finding:
    prof = ctx.profile("vgg16")
    by_type = prof.by_type().set_index("layer_type")
    act = by_type["activation_share"]
    conv_pool = float(act.get("Conv2d", 0) + act.get("MaxPool2d", 0))
    conv_pool += float(act.get("AdaptiveAvgPool2d", 0))
    frame = prof.to_frame()
    second_pool = frame.index[frame["layer_type"] == "MaxPool2d"][1]
    first_two = float(frame.loc[second_pool, "cum_activation_share"])
    fc_params = float(by_type.loc["Linear", "params_share"])
    measured = {
        "activation_bytes": prof.activation_bytes,
        "conv_pool_activation_share": conv_pool,
        "first_two_blocks_activation_share": first_two,
        "fc_activation_share": float(act.get("Linear", 0)),
        "fc_params_share": fc_params,
        "conv_params_share": float(by_type.loc["Conv2d", "params_share"]),
        "first_two_blocks_params_share": float(frame.loc[second_pool, "cum_params_share"]),
    }
    ok = conv_pool > 0.5 and first_two > 0.5 and fc_params > 0.5
    text = (
        f"conv and pooling layers hold {pct(conv_pool)} of the activation memory (the first two "
        f"blocks, 4 convs and 2 pools, alone {pct(first_two, 1)}); the FC layers hold "
        f"{pct(fc_params, 1)} of the parameters and {pct(measured['fc_activation_share'], 3)} "
        "of the activations"
    )
    return Finding(verdict(ok), text, measured)


def _vgg16_total(ctx: Context) -> Finding:
    prof = ctx.profile("vgg16")
    bytes_per_value = 4  # float32, as the notes count
    counted = ("Conv2d", "MaxPool2d", "Linear")  # the notes' rows; not torchvision's avgpool
    outputs = sum(s.activation_bytes for s in prof.layers if s.type in counted)
    input_values = 3 * 224 * 224
    rows = outputs // bytes_per_value + input_values
    measured = {
        "rows_sum_values": rows,
        "rows_sum_bytes": rows * bytes_per_value,
        "input_values": input_values,
        "notes_total_values": NOTES_TOTAL_VALUES,
        "notes_total_bytes": NOTES_TOTAL_VALUES * bytes_per_value,
        "notes_total_to_rows_ratio": NOTES_TOTAL_VALUES / rows,
        "params": prof.params,
    }
    ok = abs(NOTES_TOTAL_VALUES - rows) / rows < 0.1
    text = (
        f"the notes' own rows (the input plus every conv, pool and FC output, which the "
        f"profiler reproduces) add up to {n(rows)} values, {rows * 4 / 1e6:.1f} MB "
        f"({rows * 4 / 2**20:.1f} MiB) per image at 4 bytes: the rows are right and the '24M' "
        f"total is {NOTES_TOTAL_VALUES / rows:.2f}x too high (24M x 4 bytes is 96 MB, not 93); "
        f"the params line agrees with its rows ({n(prof.params)})"
    )
    return Finding(verdict(ok), text, measured)


VGG_CLAIMS = [
    Claim(
        "vgg.kernels",
        SIMONYAN,
        "Only 3x3 convolutions (stride 1, pad 1) and 2x2/2 max pooling; configuration C has 1x1 "
        "convolutions in the last three stages.",
        _vgg_kernels,
        method=(
            "Inspects every Conv2d and MaxPool2d of configurations A to E (kernel, stride, "
            "padding) and the stage of each 1x1 conv in C."
        ),
        tests=(
            "tests/test_zoo.py::test_vgg_weight_layers",
            "tests/test_zoo.py::test_vgg16_c_and_lrn_from_formula",
        ),
    ),
    Claim(
        "vgg.depth",
        SIMONYAN,
        "Configurations A (11 weight layers), A-LRN (11), B (13), C (16), D (16) and E (19).",
        _vgg_depth,
        method=(
            "Counts Conv2d and Linear modules and the longest weighted path (torch.fx) of each "
            "configuration."
        ),
        tests=("tests/test_zoo.py::test_vgg_weight_layers",),
    ),
    Claim(
        "vgg.params_vs_depth",
        SIMONYAN + ", Table 2",
        "Going from 11 to 19 layers barely changes the parameter count, because the parameters "
        "sit in the fully connected layers.",
        _vgg_params_vs_depth,
        method="The profiler's params, total and per layer type, of vgg11, vgg13, vgg16 and vgg19.",
        tests=(
            "tests/test_zoo.py::test_vgg_depth_barely_changes_params_because_fc_dominates",
            "tests/test_claims.py::test_vgg_params_change_by_formula",
        ),
    ),
    Claim(
        "vgg.three_3x3",
        SIMONYAN + ", Section 2.3",
        "Three stacked 3x3 convolutions see a 7x7 field with 27C^2 weights against 49C^2 for "
        "one 7x7 convolution.",
        _three_3x3,
        method=(
            "Profiles three 3x3 convs against one 7x7 (C = 64, 56x56, meta) and back-propagates "
            "from one output pixel of 1-channel probes to measure the receptive field."
        ),
        tests=(
            "tests/test_zoo.py::test_three_3x3_convs_see_7x7_with_27c2_weights_against_49c2",
            "tests/test_profile.py::test_three_3x3_against_one_7x7",
        ),
    ),
    Claim(
        "cs231n.vgg16_memory",
        CS231N,
        "Most of VGG-16's activation memory is spent in the early convolutional layers, while "
        "most of its parameters sit in the fully connected layers.",
        _vgg16_memory,
        method=(
            "The profiler's activation bytes of vgg16 per layer type and cumulatively along the "
            "depth; the params share of the Linear layers."
        ),
        tests=(
            "tests/test_profile.py::test_vgg16_memory_in_conv_and_pool_params_in_fc",
            "tests/test_claims.py::test_vgg16_memory_shares_by_formula",
        ),
    ),
    Claim(
        "cs231n.vgg16_total",
        CS231N,
        "The notes' total line: 'TOTAL memory: 24M * 4 bytes ~= 93MB / image' (forward only), "
        "which does not agree with the sum of their own per-layer rows.",
        _vgg16_total,
        method=(
            "Sums the input and every Conv2d, MaxPool2d and Linear output of the profiled vgg16, "
            "as the notes' rows count them, against their 24M total."
        ),
        tests=(
            "tests/test_profile.py::test_vgg16_per_layer_activations_match_the_cs231n_table",
            "tests/test_claims.py::test_vgg16_total_is_refuted_by_the_rows",
        ),
    ),
]
