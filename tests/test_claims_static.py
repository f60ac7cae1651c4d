"""The static and structural claims' quantities against ground truth computed here by hand: the
papers' tables, torchvision's documented parameter counts and the formulas (conv params =
out * in / groups * F * F + out, MACs = out_h * out_w * in * out * F * F / groups, output =
(N - F + 2P) / S + 1), never numbers printed by the code under test. Also the one VGG-16 memory
function the report shares, on layer tables built here.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from harness.claims import CLAIMS, CONFIRMED, REFUTED, vgg16_memory
from harness.claims.core import as_quantity, evaluate
from harness.claims.depth import weighted_depth
from harness.claims.static import Models
from harness.claims.vgg_memory import NOTES_TOTAL
from harness.core.errors import InvalidInputError


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def fc_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


@pytest.fixture(scope="module")
def got() -> dict[str, dict[str, object]]:
    """Each static/structural claim's measured values, by claim id and quantity name."""
    models = Models()
    return {
        c.id: {k: as_quantity(v).value for k, v in c.measure(models).items()}
        for c in CLAIMS
        if c.kind != "measured"
    }


def test_lenet_against_the_paper_table(got: dict) -> None:
    paper = {"c1": (156, 122_304), "s2": (12, 5_880), "c3": (1_516, 151_600),
             "s4": (32, 2_000), "c5": (48_120, 48_120), "f6": (10_164, 10_164)}  # fmt: skip
    for layer, (params, connections) in paper.items():
        assert got["lenet5.layers"][f"{layer}_params"] == params
        assert got["lenet5.layers"][f"{layer}_connections"] == connections
    assert got["lenet5.params"]["trainable_params"] == sum(p for p, _ in paper.values()) == 60_000
    assert got["lenet5.c3_table"]["connected_kernels"] == 6 * 3 + 6 * 4 + 3 * 4 + 6
    assert got["lenet5.c3_table"]["c3_params"] == 60 * 25 + 16
    assert got["lenet5.maps"]["c3"] == "16x10x10"


def test_alexnet_split_by_formula(got: dict) -> None:
    conv = (
        conv_params(3, 96, 11)
        + conv_params(96, 256, 5, groups=2)
        + conv_params(256, 384, 3)
        + conv_params(384, 384, 3, groups=2)
        + conv_params(384, 256, 3, groups=2)
    )
    fc = fc_params(6 * 6 * 256, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    split = got["alexnet.conv_fc_split"]
    assert (split["conv_params"], split["fc_params"], split["params"]) == (conv, fc, conv + fc)
    assert split["conv_share"] == pytest.approx(conv / (conv + fc))
    tower = got["alexnet.single_tower"]
    assert tower["params"] == 61_100_840  # torchvision's documented count
    tower_conv = (
        conv_params(3, 64, 11)
        + conv_params(64, 192, 5)
        + conv_params(192, 384, 3)
        + conv_params(384, 256, 3)
        + conv_params(256, 256, 3)
    )
    assert tower["conv_share"] == pytest.approx(tower_conv / 61_100_840)
    assert got["alexnet.layout"]["groups"] == "1/2/1/2/2"  # fmt: skip


def test_vgg_params_and_depth_by_formula(got: dict) -> None:
    fc = fc_params(512 * 7 * 7, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    r = got["vgg.params_vs_depth"]
    # torchvision's documented counts for configurations A and E
    assert r["params_11_to_19_change"] == pytest.approx(143_667_240 / 132_863_336 - 1)
    assert r["vgg11_fc_share"] == pytest.approx(fc / 132_863_336)
    depth = got["vgg.depth"]
    assert [depth[f"{c}_weight_layers"] for c in ("A", "A-LRN", "B", "C", "D", "E")] == [
        11, 11, 13, 16, 16, 19]  # fmt: skip
    # convs: A 8, A-LRN 8, B 10, C 13 (3 of them 1x1), D 13, E 16; five pools each
    assert got["vgg.kernels"]["conv_3x3_stride_1_pad_1"] == 8 + 8 + 10 + 10 + 13 + 16
    assert got["vgg.kernels"]["maxpool_2x2_stride_2"] == 6 * 5


VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]  # fmt: skip


def vgg16_outputs() -> list[int]:
    """Values each conv and pool of VGG-16 outputs on 224x224 (3x3 pad 1 keeps, 2x2/2 halves)."""
    out, c, hw = [], 3, 224
    for v in VGG16_CFG:
        hw, c = (hw // 2, c) if v == "M" else (hw, int(v))
        out.append(c * hw * hw)
    return out


def test_vgg16_memory_by_formula(got: dict) -> None:
    convs_pools, fc, image = vgg16_outputs(), 4096 + 4096 + 1000, 3 * 224 * 224
    rows = image + sum(convs_pools) + fc  # the notes' rows: input, convs, pools, FC outputs
    assert rows == 15_237_608
    m = got["cs231n.vgg16_memory"]
    assert m["rows_values"] == rows
    assert m["other_values"] == 512 * 7 * 7  # torchvision's avgpool: not one of the notes' rows
    assert m["conv_pool_activation_share"] == pytest.approx(sum(convs_pools) / rows)
    assert m["early_activation_share"] == pytest.approx(sum(convs_pools[:6]) / rows)
    assert m["fc_params_share"] == pytest.approx(123_642_856 / 138_357_544)
    assert m["notes_total_to_rows_ratio"] == pytest.approx(24e6 / rows)
    assert got["cs231n.vgg16_params"]["params"] == 138_357_544


def test_three_3x3_and_conv_arithmetic(got: dict) -> None:
    r = got["vgg.three_3x3"]
    c = r["channels"]
    assert (r["three_3x3_weights_per_c2"] * c * c, r["one_7x7_weights_per_c2"] * c * c) == (
        3 * conv_params(c, c, 3, bias=False), conv_params(c, c, 7, bias=False))  # fmt: skip
    assert r["three_3x3_receptive_field"] == 1 + 3 * (3 - 1) == 7
    out = got["formula.output_size"]
    assert out["5x5_on_32_stride_1"] == (32 - 5 + 0) // 1 + 1 == 28
    one = got["formula.conv1x1"]
    assert (one["output"], one["weights"]) == ("32x28x28", 192 * 32)


def test_inception_3a_by_hand_count(got: dict) -> None:
    reduced = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    naive = 192 * 64 + 192 * 128 * 9 + 192 * 32 * 25
    w = got["googlenet.inception_3a_weights"]
    assert (w["weights"], w["naive_weights"]) == (reduced, naive) == (163_328, 387_072)
    assert w["weights_ratio"] == pytest.approx(naive / reduced)
    assert w["macs_ratio"] == pytest.approx(naive / reduced)  # both x 28 x 28
    ch = got["googlenet.inception_3a_channels"]
    assert ch["output_channels"] == 64 + 128 + 32 + 32
    assert ch["naive_output_channels"] == 64 + 128 + 32 + 192


# GoogLeNet's Table 1: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per module.
GOOGLENET_TABLE = [
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
]  # fmt: skip


def test_googlenet_alexnet_ratio_by_hand(got: dict) -> None:
    r = got["googlenet.params_vs_alexnet"]
    assert r["torchvision_ratio"] == pytest.approx(61_100_840 / 6_624_904)
    assert r["two_gpu_ratio"] == pytest.approx(60_965_224 / 6_624_904)
    # the paper's net: a true 5x5 (16 more weights per kernel than torchvision's 3x3), one bias
    # per conv channel instead of batch norm's two (stem convs 64, 64, 192)
    extra_5x5 = sum(red * out * 16 for _, _, _, red, out, _ in GOOGLENET_TABLE)
    channels = 64 + 64 + 192 + sum(sum(row) for row in GOOGLENET_TABLE)
    assert r["paper_googlenet_params"] == 6_624_904 - channels + extra_5x5


def test_depths_by_the_papers_convention(got: dict) -> None:
    class Branches(nn.Module):  # a 1-deep and a 3-deep branch: the longest path counts
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 1, 1)
            self.b = nn.Sequential(nn.Conv2d(1, 1, 1), nn.MaxPool2d(1), nn.Conv2d(1, 1, 1))
            self.fc = nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.cat([self.a(x), self.b(x)], 1).mean((2, 3)))

    assert weighted_depth(Branches()) == 3 and weighted_depth(Branches(), count_pools=True) == 4
    assert got["googlenet.depth"]["weighted_depth"] == 22
    assert got["resnet.deeper"]["resnet50_params"] == 25_557_032  # torchvision's count


def test_plain_nets_differ_by_the_projections(got: dict) -> None:
    params = sum(conv_params(c, 2 * c, 1, bias=False) + 2 * 2 * c for c in (64, 128, 256))
    # each projection: 1x1, stride 2, onto the halved map (28, 14, 7)
    macs = sum(c * 2 * c * hw * hw for c, hw in ((64, 28), (128, 14), (256, 7)))
    r = got["resnet.plain"]
    assert r["resnet18_minus_plain18_params"] == r["resnet18_projection_params"] == params
    assert r["resnet18_minus_plain18_macs"] == macs
    assert r["resnet18_shortcut_adds"] == 2 * (64 * 56 * 56 + 128 * 28 * 28 + 256 * 14 * 14
                                               + 512 * 7 * 7)  # fmt: skip


def test_inception_resnet_scales(got: dict) -> None:
    r = got["inception_resnet.scale"]
    assert (r["inception_resnet_v1_min_scale"], r["inception_resnet_v1_max_scale"]) == (0.1, 0.2)
    # the repeats of the released v2 (10/20/10) lie in 0.1-0.3; its extra last Block8 apart
    assert (r["inception_resnet_v2_min_scale"], r["inception_resnet_v2_max_scale"]) == (0.1, 0.2)
    assert r["inception_resnet_v2_residual_blocks"] == 10 + 20 + 9
    assert r["inception_resnet_v2_final_block_scale"] == 1.0
    assert got["inception_resnet.projection"]["residual_blocks"] == 20 + 20 + 40


def test_shortcut_probe_distinguishes_add_before_and_after_relu() -> None:
    """The resnet.blocks probe's premise: with the residual branch zeroed, adding before the
    last ReLU gives relu(x), adding after it x, and the two differ on a random input."""
    from harness.models import get_model

    block = get_model("resnet18").layer1[0].eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(1, 64, 4, 4)
    with torch.no_grad():
        out = block(x)
    assert torch.equal(out, torch.relu(x)) and not torch.equal(out, x)


def test_static_verdicts_from_the_zoo() -> None:
    models = Models()
    ids = ("cs231n.vgg16_total", "googlenet.inception_3a_weights", "inception_resnet.scale")
    verdicts = [evaluate(c, c.measure(models)).verdict for c in CLAIMS if c.id in ids]
    assert verdicts == [REFUTED, REFUTED, CONFIRMED]


# --------------------------------------------------------------------- the shared VGG-16 function


def vgg16_layer_table(batch: int = 2, time_s: list[float] | None = None) -> pd.DataFrame:
    """VGG-16's layer rows as the layers table has them, built from the configuration by hand:
    convs and pools of VGG16_CFG (with ReLUs that allocate nothing), torchvision's avgpool,
    three Linear layers with their ReLUs and dropouts, and a parent_ops row (the flatten)."""
    rows, c_in, hw = [], 3, 224
    for v in VGG16_CFG:
        if v == "M":
            hw //= 2
            rows.append(("MaxPool2d", c_in * hw * hw, 0, 0))
        else:
            macs = hw * hw * c_in * int(v) * 9
            rows += [("Conv2d", int(v) * hw * hw, conv_params(c_in, int(v), 3), macs),
                     ("ReLU", 0, 0, 0)]  # fmt: skip
            c_in = int(v)
    rows.append(("AdaptiveAvgPool2d", 512 * 7 * 7, 0, 0))
    for n_in, n_out in ((25088, 4096), (4096, 4096), (4096, 1000)):
        rows += [("Linear", n_out, fc_params(n_in, n_out), n_in * n_out), ("ReLU", 0, 0, 0)]
    rows.append(("flatten", None, None, None))
    frame = pd.DataFrame(rows, columns=["layer_type", "values", "params", "macs"])
    frame["activation_bytes"] = [None if v is None else v * 4 * batch for v in frame["values"]]
    frame["macs"] = [None if m is None else m * batch for m in frame["macs"]]
    frame["layer_kind"] = ["leaf"] * (len(rows) - 1) + ["parent_ops"]
    frame["layer_index"] = range(len(rows))
    frame = frame.assign(batch_size=batch, dtype="float32", input_shape="3x224x224",
                         case_id="c1").drop(columns="values")  # fmt: skip
    if time_s is not None:
        frame["time_s"] = time_s
    return frame


def test_vgg16_memory_from_a_layer_table() -> None:
    m = vgg16_memory(vgg16_layer_table(batch=2))
    convs_pools, fc = vgg16_outputs(), 4096 + 4096 + 1000
    assert m.rows_values == 3 * 224 * 224 + sum(convs_pools) + fc == 15_237_608
    assert m.params["fc"] == 123_642_856 and m.params["all"] == 138_357_544
    assert m.shares["early_activation_share"] == pytest.approx(sum(convs_pools[:6]) / 15_237_608)
    assert m.total_line_agrees is False
    assert m.total_line_ratio == pytest.approx(NOTES_TOTAL.value / 15_237_608)
    assert m.time_s is None and m.shares["fc_time_share"] is None  # missing stays missing
    text = m.statement()
    assert "15,237,608 values per sample" in text and "the sum of the rows is the right" in text
    assert "24M" in text and "Measured layer times" not in text


def test_vgg16_memory_time_shares_and_missing_values() -> None:
    layers = vgg16_layer_table(batch=1)
    times = [0.0] * len(layers)
    fc_rows = [i for i, t in enumerate(layers["layer_type"]) if t == "Linear"]
    for i in range(len(times)):
        times[i] = 0.01 if i in fc_rows else 0.001  # the parent's flatten too
    m = vgg16_memory(layers.assign(time_s=times))
    total = 0.01 * 3 + 0.001 * (len(times) - 3)
    assert m.time_s == pytest.approx(total)
    assert m.shares["fc_time_share"] == pytest.approx(0.03 / total)
    assert "Measured layer times" in m.statement()
    gap = layers.copy()
    gap.loc[0, "activation_bytes"] = None
    assert vgg16_memory(gap).rows_values is None  # never read as 0
    assert vgg16_memory(layers.drop(columns=["batch_size"])).rows_values is None
    with pytest.raises(InvalidInputError, match="one case"):
        vgg16_memory(pd.concat([layers, layers.assign(case_id="c2")]))


def test_vgg16_memory_is_the_claims_number(got: dict) -> None:
    """The claims and a layers-table reader get the same shares from one function."""
    m = vgg16_memory(vgg16_layer_table(batch=4))
    claim = got["cs231n.vgg16_memory"]
    for name in ("conv_pool_activation_share", "early_activation_share", "fc_params_share"):
        assert m.shares[name] == pytest.approx(claim[name])
    assert CONFIRMED
