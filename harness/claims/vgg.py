"""Claims about VGG (Simonyan & Zisserman) and the cs231n notes' VGG-16 memory table."""

from __future__ import annotations

from typing import Any

from harness.claims.core import Claim, Equals, Near, Range, q
from harness.claims.static import Models, joined
from harness.claims.vgg_memory import NOTES_BYTES_PER_VALUE, NOTES_PARAMS, NOTES_TOTAL
from harness.claims.vgg_memory import vgg16_memory as _vgg16_memory

SIMONYAN = "Simonyan, Zisserman 2014 (arXiv:1409.1556), Table 1 and Section 2.3"
CS231N = "Stanford cs231n notes, 'Convolutional Neural Networks', case study VGGNet"
# Configuration -> registered model and the weight layers Table 1 gives it.
CONFIGS = {"A": ("vgg11", 11), "A-LRN": ("vgg11_lrn", 11), "B": ("vgg13", 13),
           "C": ("vgg16_c", 16), "D": ("vgg16", 16), "E": ("vgg19", 19)}  # fmt: skip


def _kernels(m: Models) -> dict[str, Any]:
    from torch import nn

    out = dict.fromkeys(("conv_3x3_stride_1_pad_1", "conv_1x1_config_c", "other_convs",
                         "maxpool_2x2_stride_2", "other_pools"), 0)  # fmt: skip
    stages: set[int] = set()
    for cfg, (name, _) in CONFIGS.items():
        stage = 1
        for layer in m.model(name).features:
            if isinstance(layer, nn.MaxPool2d):
                stage += 1
                ok = layer.kernel_size == 2 and layer.stride == 2
                out["maxpool_2x2_stride_2" if ok else "other_pools"] += 1
            elif isinstance(layer, nn.Conv2d):
                geometry = (layer.kernel_size, layer.stride, layer.padding)
                if geometry == ((3, 3), (1, 1), (1, 1)):
                    out["conv_3x3_stride_1_pad_1"] += 1
                elif geometry == ((1, 1), (1, 1), (0, 0)) and cfg == "C":
                    out["conv_1x1_config_c"] += 1
                    stages.add(stage)
                else:
                    out["other_convs"] += 1
    return out | {"config_c_1x1_stages": joined(sorted(stages))}


def _depth(m: Models) -> dict[str, Any]:
    from torch import nn

    from harness.claims.depth import weighted_depth

    out = {}
    for cfg, (name, _) in CONFIGS.items():
        model = m.model(name)
        out[f"{cfg}_weight_layers"] = sum(
            isinstance(x, (nn.Conv2d, nn.Linear)) for x in model.modules()
        )
        out[f"{cfg}_longest_weighted_path"] = weighted_depth(model)
    return out


def _params_vs_depth(m: Models) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("vgg11", "vgg13", "vgg16", "vgg19"):
        by_type, total = m.params_by_type(name), m.profile(name).params
        out |= {f"{name}_params": total, f"{name}_conv_params": by_type["Conv2d"],
                f"{name}_fc_share": q(by_type["Linear"] / total, "share")}  # fmt: skip
    change = m.profile("vgg19").params / m.profile("vgg11").params - 1
    return out | {"params_11_to_19_change": q(change, "share")}


def _receptive_field(kernels: list[int], size: int = 15) -> int:
    """Width of the input window one output pixel of a stack of stride-1 convolutions sees,
    by back-propagating from that pixel (a 1-channel 15x15 CPU probe: microseconds)."""
    import torch
    from torch import nn

    probe = nn.Sequential(*(nn.Conv2d(1, 1, k, bias=False) for k in kernels))
    for conv in probe:
        nn.init.constant_(conv.weight, 1.0)
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    out = probe(x)
    (grad,) = torch.autograd.grad(out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2], x)
    rows = (grad[0, 0] != 0).any(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


def _three_3x3(m: Models) -> dict[str, Any]:
    import torch
    from torch import nn

    from harness.profile import profile

    c, hw = 64, 56
    with torch.device("meta"):
        stack = nn.Sequential(*(nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)))
        single = nn.Conv2d(c, c, 7, padding=3, bias=False)
    ps, p1 = profile(stack, (c, hw, hw)), profile(single, (c, hw, hw))
    return {
        "three_3x3_weights_per_c2": q(ps.params / c**2, "count"),
        "one_7x7_weights_per_c2": q(p1.params / c**2, "count"),
        "three_3x3_receptive_field": _receptive_field([3, 3, 3]),
        "one_7x7_receptive_field": _receptive_field([7]),
        "channels": c,
        "three_3x3_macs": q(ps.macs, "MACs"),
        "one_7x7_macs": q(p1.macs, "MACs"),
    }


def _memory(m: Models) -> dict[str, Any]:
    mem = _vgg16_memory(m.profile("vgg16").to_frame(), batch_size=1, dtype="float32",
                        input_shape="3x224x224")  # fmt: skip
    shares = {k: q(v, "share") for k, v in mem.shares.items() if "time" not in k}
    return shares | {
        "rows_values": int(mem.rows_values), "input_values": mem.input_values,
        "other_values": int(mem.values["other"]), "params": int(mem.params["all"]),
        "fc_params": int(mem.params["fc"]),
        "rows_bytes_at_4_bytes": q(mem.rows_values * NOTES_BYTES_PER_VALUE, "bytes"),
        "notes_total_to_rows_ratio": q(mem.total_line_ratio, "x"),
    }  # fmt: skip


VGG_CLAIMS = (
    Claim(
        "vgg.kernels", "structural", SIMONYAN,
        "Only 3x3 convolutions (stride 1, pad 1) and 2x2/2 max pooling; configuration C has 1x1 "
        "convolutions in the last three stages.",
        "Every conv of configurations A to E is 3x3/1/1 except C's 1x1 convs in stages 3-5, and "
        "every max pool is 2x2/2.",
        _kernels,
        (Equals("other_convs", 0), Equals("other_pools", 0),
         Equals("config_c_1x1_stages", "3/4/5")),
        tests=("tests/test_zoo.py::test_vgg16_c_and_lrn_from_formula",),
    ),
    Claim(
        "vgg.depth", "structural", SIMONYAN,
        "Configurations A (11 weight layers), A-LRN, B (13), C (16, with 1x1 convolutions in the "
        "last three stages), D (16) and E (19).",
        "Each configuration has Table 1's weight layers, counted as modules and as the longest "
        "weighted path.",
        _depth,
        tuple(Equals(f"{cfg}_{what}", layers) for cfg, (_, layers) in CONFIGS.items()
              for what in ("weight_layers", "longest_weighted_path")),
        tests=("tests/test_zoo.py::test_vgg_weight_layers",),
    ),
    Claim(
        "vgg.params_vs_depth", "static", SIMONYAN + ", Table 2",
        "Going from 11 to 19 layers barely changes the parameter count, because the parameters "
        "sit in the fully connected layers.",
        "VGG-19 has at most 10% more parameters than VGG-11 ('barely', the harness's reading), "
        "and the FC layers hold more than half of both.",
        _params_vs_depth,
        (Range("params_11_to_19_change", high=0.10), Range("vgg11_fc_share", 0.5, strict=True),
         Range("vgg19_fc_share", 0.5, strict=True)),
        tests=("tests/test_zoo.py::test_vgg_depth_barely_changes_params_because_fc_dominates",),
    ),
    Claim(
        "vgg.three_3x3", "static", SIMONYAN + ", Section 2.3",
        "Three stacked 3x3 convolutions see a 7x7 field with 27C^2 weights against 49C^2 for one "
        "7x7 convolution.",
        "Profiled weights per C^2 are 27 and 49; back-propagation from one output pixel reaches "
        "7x7 inputs for both.",
        _three_3x3,
        (Equals("three_3x3_weights_per_c2", 27), Equals("one_7x7_weights_per_c2", 49),
         Equals("three_3x3_receptive_field", 7), Equals("one_7x7_receptive_field", 7)),
        tests=("tests/test_profile.py::test_three_3x3_against_one_7x7",),
    ),
    Claim(
        "cs231n.vgg16_memory", "static", CS231N,
        "Most of VGG-16's activation memory is spent in the early convolutional layers, while "
        "most of its parameters sit in the fully connected layers.",
        "Of the notes' rows (input, conv, pool and FC outputs), conv and pool layers hold more "
        "than half, the first two blocks alone more than half; FC layers hold more than half of "
        "the parameters.",
        _memory,
        (Range("conv_pool_activation_share", 0.5, strict=True),
         Range("early_activation_share", 0.5, strict=True),
         Range("fc_params_share", 0.5, strict=True)),
        tests=("tests/test_profile.py::test_vgg16_memory_in_conv_and_pool_params_in_fc",),
    ),
    Claim(
        "cs231n.vgg16_total", "static", CS231N, NOTES_TOTAL.quote,
        "The sum of the notes' own rows (input, conv, pool and FC outputs per image) is 24M "
        "values at the precision the total line gives.",
        _memory, (Near("rows_values", NOTES_TOTAL.value, NOTES_TOTAL.tolerance),),
        tests=("tests/test_profile.py::test_vgg16_per_layer_activations_match_the_cs231n_table",),
    ),
    Claim(
        "cs231n.vgg16_params", "static", CS231N, NOTES_PARAMS.quote,
        "VGG-16 has 138M parameters at the precision the notes give.",
        _memory, (Near("params", NOTES_PARAMS.value, NOTES_PARAMS.tolerance),),
        tests=("tests/test_claims_static.py::test_vgg16_memory_by_formula",),
    ),
)  # fmt: skip
