"""Claims about LeNet-5, AlexNet and the convolution arithmetic of the course notes."""

from __future__ import annotations

from torch import nn

from harness.cases import shape_str
from harness.claims.base import (
    CONFIRMED,
    REFUTED,
    Claim,
    Context,
    Finding,
    n,
    pct,
    verdict,
)

LECUN = "LeCun, Bottou, Bengio, Haffner 1998 (Proc. IEEE 86(11)), Table I and Section II-B"
KRIZHEVSKY = "Krizhevsky, Sutskever, Hinton 2012 (NeurIPS), Section 3 and Figure 2"
NOTES = "Stanford cs231n notes, 'Convolutional Neural Networks' (conv layer arithmetic)"

# The paper's per-layer counts: (trainable parameters, connections).
LENET_PAPER = {
    "c1": (156, 122_304),
    "s2": (12, 5_880),
    "c3": (1_516, 151_600),
    "s4": (32, 2_000),
    "c5": (48_120, 48_120),
    "f6": (10_164, 10_164),
}
LENET_MAPS = {
    "c1": (6, 28, 28),
    "s2": (6, 14, 14),
    "c3": (16, 10, 10),
    "s4": (16, 5, 5),
    "c5": (120, 1, 1),
    "f6": (84,),
    "output": (10,),
}


def _lenet_maps(ctx: Context) -> Finding:
    prof = ctx.profile("lenet5")
    got = {s.name: tuple(s.output_shape[1:]) for s in prof.layers if s.name in LENET_MAPS}
    wrong = [k for k, v in LENET_MAPS.items() if got.get(k) != v]
    measured = {"input": shape_str(prof.input_shape)}
    measured |= {k: shape_str(v) for k, v in got.items()}
    ok = not wrong and prof.input_shape == (1, 32, 32)
    text = (
        "the profiler's output shapes on a 1x32x32 input are the paper's: C1 6x28x28, S2 "
        "6x14x14, C3 16x10x10, S4 16x5x5, C5 120x1x1, F6 84, output 10"
        if ok
        else f"these layers' outputs differ from the paper: {', '.join(wrong)}"
    )
    return Finding(verdict(ok), text, measured)


def _lenet_layers(ctx: Context) -> Finding:
    rows = {s.name: s for s in ctx.profile("lenet5").layers}
    measured: dict[str, int] = {}
    wrong = []
    for name, (params, connections) in LENET_PAPER.items():
        got = (rows[name].params, rows[name].connections)
        measured[f"{name}_params"], measured[f"{name}_connections"] = got
        if got != (params, connections):
            wrong.append(f"{name.upper()} {n(got[0])}/{n(got[1])} (paper {params}/{connections})")
    ok = not wrong
    text = (
        "all six layers match the paper exactly, parameters and connections (MACs plus one "
        f"bias addition per output): C3 {n(rows['c3'].params)} / {n(rows['c3'].connections)}, "
        f"C1 {n(rows['c1'].params)} / {n(rows['c1'].connections)}"
        if ok
        else "params/connections differ: " + "; ".join(wrong)
    )
    return Finding(verdict(ok), text, measured)


def _is_adjacent(maps: tuple[int, ...], total: int = 6) -> bool:
    return any(set(maps) == {(j + i) % total for i in range(len(maps))} for j in range(total))


def _lenet_c3(ctx: Context) -> Finding:
    table = ctx.model("lenet5").c3.table
    sizes = [len(t) for t in table]
    groups = {
        "maps_0_5_see_3_adjacent": sum(len(t) == 3 and _is_adjacent(t) for t in table[:6]),
        "maps_6_11_see_4_adjacent": sum(len(t) == 4 and _is_adjacent(t) for t in table[6:12]),
        "maps_12_14_see_4_non_adjacent": sum(
            len(t) == 4 and not _is_adjacent(t) for t in table[12:15]
        ),
        "map_15_sees_all_6": int(len(table[15]) == 6),
    }
    kernels = sum(sizes)
    c3 = next(s for s in ctx.profile("lenet5").layers if s.name == "c3")
    dense = 16 * 6 * 25 + 16
    measured = {**groups, "connected_kernels": kernels, "c3_params": c3.params}
    measured["dense_c3_params"] = dense
    ok = list(groups.values()) == [6, 6, 3, 1] and len(table) == 16
    text = (
        f"the zoo's C3 table has 6 + 6 + 3 + 1 maps as described: {kernels} connected 5x5 "
        f"kernels, so C3 holds {n(c3.params)} parameters ({kernels} x 25 + 16 biases) instead "
        f"of {n(dense)} for a full connection"
        if ok
        else f"the C3 table does not follow the description: {groups}"
    )
    return Finding(verdict(ok), text, measured)


def _lenet_params(ctx: Context) -> Finding:
    prof = ctx.profile("lenet5")
    out = next(s for s in prof.layers if s.name == "output")
    centres = ctx.model("lenet5").output.centers.numel()
    measured = {
        "trainable_params": prof.trainable_params,
        "params": prof.params,
        "output_trainable_params": out.params,
        "output_fixed_centres": centres,
    }
    ok = abs(prof.trainable_params - 60_000) <= 600 and out.params == 0
    text = (
        f"{n(prof.trainable_params)} trainable parameters; the 10 RBF output units hold no "
        f"trainable parameter (their {centres} fixed centre values are a buffer)"
    )
    return Finding(verdict(ok), text, measured)


ALEXNET_EXPECTED = {
    "filters": "96/256/384/384/256",
    "kernels": "11/5/3/3/3",
    "strides": "4/1/1/1/1",
    "paddings": "0/2/1/1/1",
    "groups": "1/2/1/2/2",
    "input_channels_per_filter": "3/48/256/192/192",
    "conv1_output": "96x55x55",
    "pool5_output": "256x6x6",
    "fc": "9216->4096->4096->1000",
    "overlapping_pools_3x3_stride_2": 3,
    "lrn_layers": 2,
    "dropout_layers": 2,
}


def _alexnet_layout(ctx: Context) -> Finding:
    model = ctx.model("alexnet_original")
    prof = ctx.profile("alexnet_original")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]

    def join(values: list[int]) -> str:
        return "/".join(str(v) for v in values)

    conv_shapes = [s.output_shape for s in prof.layers if s.type == "Conv2d"]
    pool_shapes = [s.output_shape for s in prof.layers if s.type == "MaxPool2d"]
    measured: dict[str, int | str] = {
        "input": shape_str(prof.input_shape),
        "filters": join([c.out_channels for c in convs]),
        "kernels": join([c.kernel_size[0] for c in convs]),
        "strides": join([c.stride[0] for c in convs]),
        "paddings": join([c.padding[0] for c in convs]),
        "groups": join([c.groups for c in convs]),
        "input_channels_per_filter": join([c.in_channels // c.groups for c in convs]),
        "conv1_output": shape_str(conv_shapes[0][1:]),
        "pool5_output": shape_str(pool_shapes[-1][1:]),
        "fc": "->".join(str(v) for v in [fcs[0].in_features, *(f.out_features for f in fcs)]),
        "overlapping_pools_3x3_stride_2": sum(p.kernel_size == 3 and p.stride == 2 for p in pools),
        "lrn_layers": sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()),
        "dropout_layers": sum(isinstance(m, nn.Dropout) for m in model.modules()),
    }
    wrong = [k for k, v in ALEXNET_EXPECTED.items() if measured[k] != v]
    ok = not wrong and prof.input_shape == (3, 227, 227)
    text = (
        "the two-GPU model has the described layout: conv2, conv4 and conv5 in two groups "
        "(conv2's filters see 48 channels each), conv3 over all 256, 227 -> 55x55 after conv1, "
        "6x6x256 into FC6"
        if ok
        else f"layout differs from the description in: {', '.join(wrong)}"
    )
    return Finding(verdict(ok), text, measured)


def _conv_fc(ctx: Context, name: str) -> tuple[int, int, int]:
    prof = ctx.profile(name)
    by_type = prof.by_type().set_index("layer_type")["params"]
    return int(by_type.get("Conv2d", 0)), int(by_type.get("Linear", 0)), prof.params


def _alexnet_split(ctx: Context) -> Finding:
    conv, fc, total = _conv_fc(ctx, "alexnet_original")
    measured = {
        "params": total,
        "conv_params": conv,
        "fc_params": fc,
        "conv_share": conv / total,
        "fc_share": fc / total,
    }
    ok = (
        abs(conv / total - 0.038) < 0.0015
        and abs(fc / total - 0.962) < 0.0015
        and abs(total - 61e6) < 1e6
    )
    text = (
        f"conv layers {pct(conv / total)} ({n(conv)}), FC layers {pct(fc / total)} ({n(fc)}) "
        f"of {n(total)} parameters"
    )
    return Finding(verdict(ok), text, measured)


def _alexnet_single_tower(ctx: Context) -> Finding:
    model = ctx.model("alexnet")
    filters = "/".join(str(m.out_channels) for m in model.modules() if isinstance(m, nn.Conv2d))
    conv, _, total = _conv_fc(ctx, "alexnet")
    orig = ctx.profile("alexnet_original")
    prof = ctx.profile("alexnet")
    measured = {
        "filters": filters,
        "params": total,
        "two_gpu_params": orig.params,
        "macs": prof.macs,
        "two_gpu_macs": orig.macs,
        "conv_share": conv / total,
        "input": shape_str(prof.input_shape),
    }
    ok = filters == "64/192/384/256/256" and total != orig.params
    text = (
        f"torchvision's alexnet ({filters} filters, ungrouped, 224x224 input) has {n(total)} "
        f"parameters and {prof.macs / 1e6:,.1f} M MACs against {n(orig.params)} and "
        f"{orig.macs / 1e6:,.1f} M for the two-GPU model; its conv layers hold "
        f"{pct(conv / total)}, not 3.8%"
    )
    return Finding(verdict(ok), text, measured)


def _conv_output(c_in: int, c_out: int, k: int, pad: int, size: int) -> tuple[int, ...]:
    from harness.profile import profile

    conv = nn.Conv2d(c_in, c_out, k, padding=pad, device="meta")
    return profile(conv, (c_in, size, size)).layers[0].output_shape[1:]


def _output_size(ctx: Context) -> Finding:
    from harness.profile import output_size

    formula = output_size(32, 5, 1, 0)
    profiled = _conv_output(1, 1, 5, 0, 32)[-1]
    measured: dict[str, int] = {"5x5_on_32_stride_1": formula, "5x5_on_32_profiled": profiled}
    kept = []
    for k in (3, 5, 7, 11):
        size = output_size(32, k, 1, (k - 1) // 2)
        measured[f"{k}x{k}_pad_{(k - 1) // 2}_on_32"] = size
        kept.append(size == 32 == _conv_output(1, 1, k, (k - 1) // 2, 32)[-1])
    measured["alexnet_conv1_227_11_stride_4"] = output_size(227, 11, 4, 0)
    ok = formula == profiled == 28 and all(kept)
    text = (
        "(32 - 5 + 0) / 1 + 1 = 28, and the profiled convolution agrees; pad (F - 1) / 2 keeps "
        "32x32 at stride 1 for F = 3, 5, 7, 11 (formula and torch agree)"
        if ok
        else f"formula or torch disagree with the claim: {measured}"
    )
    return Finding(verdict(ok), text, measured)


def _one_by_one(ctx: Context) -> Finding:
    from harness.profile import profile

    conv = nn.Conv2d(192, 32, 1, device="meta")
    layer = profile(conv, (192, 28, 28)).layers[0]
    weights = conv.weight.numel()
    measured = {
        "output": shape_str(layer.output_shape[1:]),
        "weights": weights,
        "params": layer.params,
        "macs": layer.macs,
    }
    ok = layer.output_shape[1:] == (32, 28, 28) and weights == 32 * 192
    text = (
        f"192x28x28 -> {measured['output']}: {n(weights)} weights (32 filters of 1x1x192) plus "
        f"32 biases, {n(layer.macs)} MACs (28 x 28 x 192 x 32)"
    )
    return Finding(CONFIRMED if ok else REFUTED, text, measured)


CLASSIC_CLAIMS = [
    Claim(
        "lenet5.maps",
        LECUN,
        "32x32 single-channel input; C1 6 maps 28x28, S2 6 maps 14x14, C3 16 maps 10x10, S4 16 "
        "maps 5x5, C5 120 maps 1x1, F6 84 units, output 10 Euclidean RBF units.",
        _lenet_maps,
        method="Profiles lenet5 on the meta device and reads each layer's output shape.",
        tests=("tests/test_zoo.py::test_lenet5_feature_maps_match_the_paper",),
    ),
    Claim(
        "lenet5.layers",
        LECUN,
        "Trainable parameters and connections per layer as the paper counts them: C1 156 / "
        "122,304, S2 12 / 5,880, C3 1,516 / 151,600, S4 32 / 2,000, C5 48,120 / 48,120, "
        "F6 10,164 / 10,164.",
        _lenet_layers,
        method=(
            "The profiler's params and connections (MACs plus one bias addition per output) of "
            "each layer, compared with the paper's table."
        ),
        tests=(
            "tests/test_profile.py::test_lenet5_matches_the_paper_layer_by_layer",
            "tests/test_claims.py::test_lenet_layers_against_the_paper_table",
        ),
    ),
    Claim(
        "lenet5.c3_table",
        LECUN,
        "C3 map k sees only a subset of S2's maps: the first 6 see 3 adjacent maps, the next 6 "
        "see 4 adjacent maps, the next 3 see 4 non-adjacent maps, the last one sees all 6.",
        _lenet_c3,
        method=(
            "Reads the zoo's C3 connection table and classifies each map's inputs (adjacent or "
            "not); C3's params from the profiler."
        ),
        tests=("tests/test_zoo.py::test_c3_connection_table_is_table_one",),
    ),
    Claim(
        "lenet5.params",
        LECUN,
        "About 60,000 trainable parameters; the 10 output RBF units have fixed parameters.",
        _lenet_params,
        method="The profiler's trainable params of lenet5, and those of its RBF output layer.",
        tests=("tests/test_zoo.py::test_lenet5_trainable_params_per_layer_match_the_paper",),
    ),
    Claim(
        "alexnet.layout",
        KRIZHEVSKY,
        "Two-GPU AlexNet: conv1 96 11x11/4 on 227x227, LRN, overlapping 3x3/2 max pooling; conv2 "
        "256 5x5 pad 2 in two groups (48 input channels each); conv3 384 3x3 over all 256 "
        "channels; conv4 384 and conv5 256 3x3 in two groups; FC6 4096 from 6x6x256, FC7 4096, "
        "FC8 1000, dropout on FC6 and FC7.",
        _alexnet_layout,
        method=(
            "Reads the two-GPU model's modules (filters, kernels, strides, paddings, groups, LRN, "
            "dropout) and the profiled output shapes."
        ),
        tests=("tests/test_zoo.py::test_alexnet_original_two_gpu_layout",),
    ),
    Claim(
        "alexnet.conv_fc_split",
        KRIZHEVSKY + " (as the course notes count it)",
        "The convolutional layers hold about 3.8% of the parameters and the fully connected "
        "layers about 96.2%, of about 61 million.",
        _alexnet_split,
        method="The profiler's params per layer type (Conv2d against Linear) of alexnet_original.",
        tests=(
            "tests/test_zoo.py::test_alexnet_original_params_and_conv_fc_split",
            "tests/test_claims.py::test_alexnet_split_by_formula",
        ),
    ),
    Claim(
        "alexnet.single_tower",
        "torchvision's alexnet (Krizhevsky 2014, 'One weird trick', arXiv:1404.5997)",
        "The single-tower variant that libraries ship (64/192/384/256/256 filters) is a "
        "different model and is reported separately.",
        _alexnet_single_tower,
        method=(
            "Profiles torchvision's alexnet beside alexnet_original: filters, params, MACs, conv "
            "share."
        ),
        tests=("tests/test_zoo.py::test_alexnet_is_torchvisions",),
    ),
    Claim(
        "formula.output_size",
        NOTES,
        "Output size (N - F + 2P) / S + 1: a 5x5 filter on 32x32 at stride 1 gives 28x28; pad "
        "(F - 1) / 2 keeps the size at stride 1.",
        _output_size,
        method=(
            "harness.profile.output_size and a profiled Conv2d on a meta 32x32 input for the "
            "notes' examples."
        ),
        tests=("tests/test_zoo.py::test_output_size_formula_examples",),
    ),
    Claim(
        "formula.conv1x1",
        NOTES,
        "1x1 convolution: 32 filters of 1x1x192 turn 28x28x192 into 28x28x32.",
        _one_by_one,
        method="Profiles Conv2d(192, 32, 1) on a meta 192x28x28 input.",
        tests=(
            "tests/test_zoo.py::test_one_by_one_convolution_reduces_channels",
            "tests/test_profile.py::test_one_by_one_conv_of_the_notes",
        ),
    ),
]
