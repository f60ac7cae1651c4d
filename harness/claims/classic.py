"""Claims about LeNet-5, AlexNet and the convolution arithmetic of the course notes."""

from __future__ import annotations

from typing import Any

from harness.claims.core import Claim, Equals, Near, q
from harness.claims.static import Models, joined, shape

LECUN = "LeCun, Bottou, Bengio, Haffner 1998 (Proc. IEEE 86(11)), Table I and Section II-B"
KRIZHEVSKY = "Krizhevsky, Sutskever, Hinton 2012 (NeurIPS), Section 3 and Figure 2"
NOTES = "Stanford cs231n notes, 'Convolutional Neural Networks' (conv layer arithmetic)"

LENET_MAPS = {"input": "1x32x32", "c1": "6x28x28", "s2": "6x14x14", "c3": "16x10x10",
              "s4": "16x5x5", "c5": "120x1x1", "f6": "84", "output": "10"}  # fmt: skip
LENET_TABLE = {  # the paper's (trainable parameters, connections) per layer
    "c1": (156, 122_304),
    "s2": (12, 5_880),
    "c3": (1_516, 151_600),
    "s4": (32, 2_000),
    "c5": (48_120, 48_120),
    "f6": (10_164, 10_164),
}
ALEXNET_LAYOUT = {"input": "3x227x227", "filters": "96/256/384/384/256", "kernels": "11/5/3/3/3",
                  "strides": "4/1/1/1/1", "paddings": "0/2/1/1/1", "groups": "1/2/1/2/2",
                  "input_channels_per_filter": "3/48/256/192/192", "conv1_output": "96x55x55",
                  "pool5_output": "256x6x6", "fc": "9216/4096/4096/1000",
                  "overlapping_pools_3x3_stride_2": 3, "lrn_layers": 2,
                  "dropout_layers": 2}  # fmt: skip


def equals(expected: dict[str, Any]) -> tuple[Equals, ...]:
    return tuple(Equals(k, v) for k, v in expected.items())


def _lenet_maps(m: Models) -> dict[str, Any]:
    prof = m.profile("lenet5")
    maps = {s.name: shape(s.output_shape[1:]) for s in prof.layers if s.name in LENET_MAPS}
    return {"input": shape(prof.input_shape)} | maps


def _lenet_layers(m: Models) -> dict[str, Any]:
    rows = {s.name: s for s in m.profile("lenet5").layers}
    return {f"{k}_{what}": getattr(rows[k], what) for k in LENET_TABLE
            for what in ("params", "connections")}  # fmt: skip


def _adjacent(maps: tuple[int, ...], total: int = 6) -> bool:
    return any(set(maps) == {(j + i) % total for i in range(len(maps))} for j in range(total))


def _lenet_c3(m: Models) -> dict[str, Any]:
    t = m.model("lenet5").c3.table
    return {
        "maps_0_5_see_3_adjacent": sum(len(x) == 3 and _adjacent(x) for x in t[:6]),
        "maps_6_11_see_4_adjacent": sum(len(x) == 4 and _adjacent(x) for x in t[6:12]),
        "maps_12_14_see_4_non_adjacent": sum(len(x) == 4 and not _adjacent(x) for x in t[12:15]),
        "map_15_sees_all_6": len(t) == 16 and len(t[15]) == 6,
        "connected_kernels": sum(len(x) for x in t),
        "c3_params": next(s.params for s in m.profile("lenet5").layers if s.name == "c3"),
    }


def _lenet_params(m: Models) -> dict[str, Any]:
    prof = m.profile("lenet5")
    return {
        "trainable_params": prof.trainable_params,
        "output_trainable_params": next(s.params for s in prof.layers if s.name == "output"),
        "output_fixed_centres": m.model("lenet5").output.centers.numel(),
    }


def _alexnet_layout(m: Models) -> dict[str, Any]:
    from torch import nn

    model, prof = m.model("alexnet_original"), m.profile("alexnet_original")
    convs, fcs, pools = (m.layers("alexnet_original", t) for t in (nn.Conv2d, nn.Linear,
                                                                  nn.MaxPool2d))  # fmt: skip
    outputs = {t: [s.output_shape[1:] for s in prof.layers if s.type == t]
               for t in ("Conv2d", "MaxPool2d")}  # fmt: skip
    return {
        "input": shape(prof.input_shape),
        "filters": joined(c.out_channels for c in convs),
        "kernels": joined(c.kernel_size[0] for c in convs),
        "strides": joined(c.stride[0] for c in convs),
        "paddings": joined(c.padding[0] for c in convs),
        "groups": joined(c.groups for c in convs),
        "input_channels_per_filter": joined(c.in_channels // c.groups for c in convs),
        "conv1_output": shape(outputs["Conv2d"][0]),
        "pool5_output": shape(outputs["MaxPool2d"][-1]),
        "fc": joined([fcs[0].in_features, *(f.out_features for f in fcs)]),
        "overlapping_pools_3x3_stride_2": sum(p.kernel_size == 3 and p.stride == 2 for p in pools),
        "lrn_layers": sum(isinstance(x, nn.LocalResponseNorm) for x in model.modules()),
        "dropout_layers": sum(isinstance(x, nn.Dropout) for x in model.modules()),
    }


def _alexnet_split(m: Models) -> dict[str, Any]:
    by_type, total = m.params_by_type("alexnet_original"), m.profile("alexnet_original").params
    conv, fc = by_type.get("Conv2d", 0), by_type.get("Linear", 0)
    return {"params": total, "conv_params": conv, "fc_params": fc,
            "conv_share": q(conv / total, "share"), "fc_share": q(fc / total, "share")}  # fmt: skip


def _alexnet_single_tower(m: Models) -> dict[str, Any]:
    from torch import nn

    convs = m.layers("alexnet", nn.Conv2d)
    tower, two = m.profile("alexnet"), m.profile("alexnet_original")
    return {
        "filters": joined(c.out_channels for c in convs),
        "groups": joined(c.groups for c in convs),
        "input": shape(tower.input_shape),
        "params": tower.params,
        "two_gpu_params": two.params,
        "macs": q(tower.macs, "MACs"),
        "two_gpu_macs": q(two.macs, "MACs"),
        "conv_share": q(m.params_by_type("alexnet")["Conv2d"] / tower.params, "share"),
    }


def _conv(c_in: int, c_out: int, k: int, pad: int, size: int) -> tuple[Any, Any]:
    """One Conv2d and its profiled layer on a meta c_in x size x size input."""
    from torch import nn

    from harness.profile import profile

    conv = nn.Conv2d(c_in, c_out, k, padding=pad, device="meta")
    return conv, profile(conv, (c_in, size, size)).layers[0]


def _output_size(m: Models) -> dict[str, Any]:
    from harness.profile import output_size

    out = {"5x5_on_32_stride_1": output_size(32, 5, 1, 0),
           "5x5_on_32_profiled": _conv(1, 1, 5, 0, 32)[1].output_shape[-1]}  # fmt: skip
    for k in (3, 5, 7, 11):
        p = (k - 1) // 2
        out[f"{k}x{k}_pad_{p}_on_32"] = output_size(32, k, 1, p)
        out[f"{k}x{k}_pad_{p}_on_32_profiled"] = _conv(1, 1, k, p, 32)[1].output_shape[-1]
    return out


def _conv1x1(m: Models) -> dict[str, Any]:
    conv, layer = _conv(192, 32, 1, 0, 28)
    return {"output": shape(layer.output_shape[1:]), "weights": conv.weight.numel(),
            "params": layer.params, "macs": q(layer.macs, "MACs")}  # fmt: skip


CLASSIC_CLAIMS = (
    Claim(
        "lenet5.maps", "structural", LECUN,
        "32x32 single-channel input. C1: 6 maps, 5x5 convolution, 28x28. S2: ... 14x14. C3: 16 "
        "maps, 5x5, 10x10 ... S4: like S2, 16 maps, 5x5. C5: 120 maps ... 1x1. F6: 84 units. "
        "Output: 10 Euclidean RBF units.",
        "The profiled output shape of every LeNet-5 layer is the paper's.",
        _lenet_maps, equals(LENET_MAPS),
        tests=("tests/test_zoo.py::test_lenet5_feature_maps_match_the_paper",),
    ),
    Claim(
        "lenet5.layers", "static", LECUN,
        "The documents count trainable parameters and 'connections' (multiply-adds including the "
        "bias term) layer by layer.",
        "The profiler's parameters and connections of each layer equal the paper's table.",
        _lenet_layers,
        tuple(Equals(f"{k}_{what}", v[i]) for k, v in LENET_TABLE.items()
              for i, what in enumerate(("params", "connections"))),
        tests=("tests/test_profile.py::test_lenet5_matches_the_paper_layer_by_layer",),
    ),
    Claim(
        "lenet5.c3_table", "structural", LECUN,
        "C3 ... map k sees only a subset of S2's maps: the first 6 see 3 adjacent maps, the next "
        "6 see 4 adjacent maps, the next 3 see 4 non-adjacent maps, the last one sees all 6.",
        "The zoo's C3 connection table groups its 16 maps as the paper's Table I does.",
        _lenet_c3,
        equals({"maps_0_5_see_3_adjacent": 6, "maps_6_11_see_4_adjacent": 6,
                "maps_12_14_see_4_non_adjacent": 3, "map_15_sees_all_6": True}),
        tests=("tests/test_zoo.py::test_c3_connection_table_is_table_one",),
    ),
    Claim(
        "lenet5.params", "static", LECUN,
        "About 60,000 trainable parameters; output: 10 Euclidean RBF units with fixed parameters.",
        "LeNet-5 has 60,000 trainable parameters (to the nearest thousand); its RBF output layer "
        "has none.",
        _lenet_params,
        (Near("trainable_params", 60_000, 500), Equals("output_trainable_params", 0)),
        tests=("tests/test_zoo.py::test_lenet5_trainable_params_per_layer_match_the_paper",),
    ),
    Claim(
        "alexnet.layout", "structural", KRIZHEVSKY,
        "conv1 96 filters 11x11 stride 4 on a 227x227 input, ReLU, local response normalisation, "
        "overlapping 3x3/2 max pooling; conv2 256 filters 5x5 pad 2 split in two groups ...; "
        "conv3 384 filters 3x3 over all 256 channels; conv4 384 and conv5 256 filters 3x3, each "
        "in two groups; FC6 4096 from 6x6x256, FC7 4096, FC8 1000, dropout on FC6 and FC7.",
        "The zoo's two-GPU AlexNet has the described filters, kernels, strides, groups, pools, "
        "LRN and dropout layers and output shapes.",
        _alexnet_layout, equals(ALEXNET_LAYOUT),
        tests=("tests/test_zoo.py::test_alexnet_original_two_gpu_layout",),
    ),
    Claim(
        "alexnet.conv_fc_split", "static", KRIZHEVSKY + " (as the course notes count it)",
        "The convolutional layers hold about 3.8% of the parameters and the fully connected "
        "layers about 96.2%, of about 61 million.",
        "The two-GPU AlexNet's conv and FC parameter shares and its total equal the stated "
        "figures at the precision they are given.",
        _alexnet_split,
        (Near("conv_share", 0.038, 0.0005), Near("fc_share", 0.962, 0.0005),
         Near("params", 61_000_000, 500_000)),
        tests=("tests/test_zoo.py::test_alexnet_original_params_and_conv_fc_split",),
    ),
    Claim(
        "alexnet.single_tower", "structural",
        "torchvision's alexnet (Krizhevsky 2014, 'One weird trick', arXiv:1404.5997)",
        "The single-tower variant that libraries ship (64/192/384/256/256 filters) is a different "
        "model and is reported separately.",
        "torchvision's alexnet has 64/192/384/256/256 filters and no groups.",
        _alexnet_single_tower, equals({"filters": "64/192/384/256/256", "groups": "1/1/1/1/1"}),
        tests=("tests/test_zoo.py::test_alexnet_is_torchvisions",),
    ),
    Claim(
        "formula.output_size", "static", NOTES,
        "Output size: (N - F + 2P) / S + 1; a 5x5 filter on 32x32 at stride 1 gives 28x28; pad "
        "(F - 1) / 2 keeps the size at stride 1.",
        "The formula and a profiled convolution give 28 for 5x5 on 32, and 32 with pad (F-1)/2 "
        "for F = 3, 5, 7, 11.",
        _output_size,
        (Equals("5x5_on_32_stride_1", 28), Equals("5x5_on_32_profiled", 28),
         *(Equals(f"{k}x{k}_pad_{(k - 1) // 2}_on_32{s}", 32) for k in (3, 5, 7, 11)
           for s in ("", "_profiled"))),
        tests=("tests/test_zoo.py::test_output_size_formula_examples",),
    ),
    Claim(
        "formula.conv1x1", "static", NOTES,
        "1x1 convolution: 32 filters of 1x1x192 turn 28x28x192 into 28x28x32.",
        "Conv2d(192, 32, 1) on 192x28x28 gives 32x28x28 with 32 x 192 weights.",
        _conv1x1, (Equals("output", "32x28x28"), Equals("weights", 32 * 192)),
        tests=("tests/test_profile.py::test_one_by_one_conv_of_the_notes",),
    ),
)  # fmt: skip
