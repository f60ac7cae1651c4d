"""The claims check against ground truth computed here by hand: the papers' tables, torchvision's
documented parameter counts and the formulas (conv params = out * in / groups * F * F + out,
MACs = out_h * out_w * in * out * F * F / groups, output = (N - F + 2P) / S + 1), never numbers
printed by the code under test. Measured claims get small hand-made result tables with the
schema's column names.
"""

from __future__ import annotations

import ast
import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from harness.claims import (
    CLAIMS,
    CONFIRMED,
    NEEDS_MEASUREMENT,
    PARTLY,
    REFUTED,
    VERDICTS,
    ClaimResult,
    check_claims,
    select_claims,
)
from harness.claims.depth import weighted_depth
from harness.cli import main
from harness.errors import InvalidInputError
from harness.models import get_model
from harness.results import ResultWriter

ROOT = Path(__file__).resolve().parents[1]


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def fc_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


@pytest.fixture(scope="module")
def static() -> dict[str, ClaimResult]:
    start = time.perf_counter()
    results = check_claims()
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"the static claims took {elapsed:.1f} s; they should take a few"
    by_id = {r.id: r for r in results}
    assert len(by_id) == len(results) == len(CLAIMS)  # one result per claim without results
    return by_id


# --------------------------------------------------------------------------- the records


def test_every_claim_has_a_verdict_numbers_and_a_source(static: dict[str, ClaimResult]) -> None:
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    for r in static.values():
        assert r.verdict in VERDICTS and r.source and r.claim and r.explanation and r.method
        if r.kind == "static":
            assert r.verdict != NEEDS_MEASUREMENT and r.measured, r.id
            assert r.rows == ""
        else:
            assert r.verdict == NEEDS_MEASUREMENT and "--results" in r.explanation
        json.dumps(r.to_dict())  # JSON-ready: plain Python numbers


EXPECTED_VERDICTS = {  # what the numbers in the tests below (and in test_zoo/test_profile) decide
    **dict.fromkeys(
        [
            "lenet5.maps",
            "lenet5.layers",
            "lenet5.c3_table",
            "lenet5.params",
            "alexnet.layout",
            "alexnet.conv_fc_split",
            "alexnet.single_tower",
            "vgg.kernels",
            "vgg.depth",
            "vgg.params_vs_depth",
            "vgg.three_3x3",
            "cs231n.vgg16_memory",
            "googlenet.inception_3a_channels",
            "googlenet.depth",
            "googlenet.head",
            "formula.output_size",
            "formula.conv1x1",
            "resnet18.layout",
            "resnet.blocks",
            "resnet.deeper",
            "resnet.plain",
            "resnet.preact",
            "inception_resnet.projection",
        ],
        CONFIRMED,
    ),
    "cs231n.vgg16_total": REFUTED,
    "googlenet.inception_3a_weights": REFUTED,
    "googlenet.params_vs_alexnet": REFUTED,
    "inception_resnet.scale": PARTLY,
}


def test_static_verdicts(static: dict[str, ClaimResult]) -> None:
    got = {k: r.verdict for k, r in static.items() if r.kind == "static"}
    assert got == EXPECTED_VERDICTS


def test_claim_tests_exist() -> None:
    """Every test a claim names as asserting it is a real test function in a real file."""
    for claim in CLAIMS:
        assert claim.tests, claim.id
        for node in claim.tests:
            path, _, name = node.partition("::")
            tree = ast.parse((ROOT / path).read_text())
            names = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
            assert name in names, f"{claim.id}: {node} does not exist"


def test_select_claims_by_pattern() -> None:
    assert [c.id for c in select_claims("lenet5.*")] == [
        "lenet5.maps",
        "lenet5.layers",
        "lenet5.c3_table",
        "lenet5.params",
    ]
    assert {c.id for c in select_claims(["vgg.depth", "cs231n.*,formula.conv1x1"])} == {
        "vgg.depth",
        "cs231n.vgg16_memory",
        "cs231n.vgg16_total",
        "formula.conv1x1",
    }
    with pytest.raises(InvalidInputError, match="no claim id matches"):
        select_claims("no.such.claim")


# --------------------------------------------------------------------------- static claims

LENET_PAPER = {  # LeCun et al. 1998, Section II-B: (trainable parameters, connections)
    "c1": (156, 122_304),
    "s2": (12, 5_880),
    "c3": (1_516, 151_600),
    "s4": (32, 2_000),
    "c5": (48_120, 48_120),
    "f6": (10_164, 10_164),
}


def test_lenet_layers_against_the_paper_table(static: dict[str, ClaimResult]) -> None:
    r = static["lenet5.layers"]
    assert r.verdict == CONFIRMED
    for layer, (params, connections) in LENET_PAPER.items():
        assert r.measured[f"{layer}_params"] == params
        assert r.measured[f"{layer}_connections"] == connections
    p = static["lenet5.params"]
    assert p.verdict == CONFIRMED
    assert p.measured["trainable_params"] == sum(v[0] for v in LENET_PAPER.values()) == 60_000
    assert p.measured["output_trainable_params"] == 0
    c3 = static["lenet5.c3_table"]
    assert c3.verdict == CONFIRMED
    assert c3.measured["connected_kernels"] == 6 * 3 + 6 * 4 + 3 * 4 + 6 == 60
    assert c3.measured["c3_params"] == 60 * 25 + 16
    assert static["lenet5.maps"].measured["c3"] == "16x10x10"


def test_alexnet_split_by_formula(static: dict[str, ClaimResult]) -> None:
    conv = (
        conv_params(3, 96, 11)
        + conv_params(96, 256, 5, groups=2)
        + conv_params(256, 384, 3)
        + conv_params(384, 384, 3, groups=2)
        + conv_params(384, 256, 3, groups=2)
    )
    fc = fc_params(6 * 6 * 256, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    r = static["alexnet.conv_fc_split"]
    assert r.verdict == CONFIRMED
    assert (r.measured["conv_params"], r.measured["fc_params"]) == (conv, fc)
    assert r.measured["conv_share"] == pytest.approx(conv / (conv + fc))
    assert round(100 * conv / (conv + fc), 1) == 3.8 and round(100 * fc / (conv + fc), 1) == 96.2
    assert "3.83%" in r.explanation and "60,965,224" in r.explanation
    tower = static["alexnet.single_tower"]
    assert tower.verdict == CONFIRMED
    assert tower.measured["params"] == 61_100_840  # torchvision's documented count
    tower_conv = (
        conv_params(3, 64, 11)
        + conv_params(64, 192, 5)
        + conv_params(192, 384, 3)
        + conv_params(384, 256, 3)
        + conv_params(256, 256, 3)
    )
    assert tower.measured["conv_share"] == pytest.approx(tower_conv / 61_100_840)
    assert static["alexnet.layout"].measured["groups"] == "1/2/1/2/2"


def test_vgg_params_change_by_formula(static: dict[str, ClaimResult]) -> None:
    fc = fc_params(512 * 7 * 7, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    r = static["vgg.params_vs_depth"]
    assert r.verdict == CONFIRMED
    assert r.measured["fc_params"] == fc == 123_642_856
    # torchvision's documented counts for configurations A and E
    assert r.measured["params_11_to_19_change"] == pytest.approx(143_667_240 / 132_863_336 - 1)
    assert r.measured["vgg11_fc_share"] == pytest.approx(fc / 132_863_336)
    assert "8.1%" in r.explanation
    depth = static["vgg.depth"]
    assert depth.verdict == CONFIRMED
    assert [depth.measured[f"{c}_weight_layers"] for c in ("A", "A-LRN", "B", "C", "D", "E")] == [
        11,
        11,
        13,
        16,
        16,
        19,
    ]
    kernels = static["vgg.kernels"]
    assert kernels.verdict == CONFIRMED
    # convs: A 8, A-LRN 8, B 10, C 13 (3 of them 1x1), D 13, E 16; five pools each
    assert kernels.measured["conv_3x3_stride_1_pad_1"] == 8 + 8 + 10 + 10 + 13 + 16
    assert kernels.measured["maxpool_2x2_stride_2"] == 6 * 5


VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]  # fmt: skip


def vgg16_outputs() -> list[int]:
    """Values each conv and pool of VGG-16 outputs on 224x224 (3x3 pad 1 keeps, 2x2/2 halves)."""
    out, c, hw = [], 3, 224
    for v in VGG16_CFG:
        if v == "M":
            hw //= 2
        else:
            c = int(v)
        out.append(c * hw * hw)
    return out


def test_vgg16_memory_shares_by_formula(static: dict[str, ClaimResult]) -> None:
    convs_pools = vgg16_outputs()
    fc = 4096 + 4096 + 1000
    avgpool = 512 * 7 * 7  # torchvision's adaptive pool, counted by the profiler
    total = sum(convs_pools) + avgpool + fc
    r = static["cs231n.vgg16_memory"]
    assert r.verdict == CONFIRMED
    assert r.measured["activation_bytes"] == 4 * total
    assert r.measured["conv_pool_activation_share"] == pytest.approx(1 - fc / total)
    assert r.measured["first_two_blocks_activation_share"] == pytest.approx(
        sum(convs_pools[:6]) / total
    )
    assert r.measured["fc_params_share"] == pytest.approx(123_642_856 / 138_357_544)


def test_vgg16_total_is_refuted_by_the_rows(static: dict[str, ClaimResult]) -> None:
    rows = 3 * 224 * 224 + sum(vgg16_outputs()) + 4096 + 4096 + 1000  # the notes' rows
    assert rows == 15_237_608
    r = static["cs231n.vgg16_total"]
    assert r.verdict == REFUTED
    assert r.measured["rows_sum_values"] == rows
    assert r.measured["rows_sum_bytes"] == 4 * rows
    assert r.measured["notes_total_to_rows_ratio"] == pytest.approx(24e6 / rows)
    assert "15,237,608" in r.explanation


def test_three_3x3_and_conv_arithmetic(static: dict[str, ClaimResult]) -> None:
    r = static["vgg.three_3x3"]
    c = r.measured["channels"]
    assert r.verdict == CONFIRMED
    assert (r.measured["three_3x3_weights"], r.measured["one_7x7_weights"]) == (
        27 * c * c,
        49 * c * c,
    )
    assert r.measured["three_3x3_receptive_field"] == 1 + 3 * (3 - 1) == 7
    out = static["formula.output_size"]
    assert out.verdict == CONFIRMED
    assert out.measured["5x5_on_32_stride_1"] == (32 - 5 + 0) // 1 + 1 == 28
    assert out.measured["alexnet_conv1_227_11_stride_4"] == (227 - 11) // 4 + 1 == 55
    one = static["formula.conv1x1"]
    assert one.verdict == CONFIRMED
    assert one.measured["output"] == "32x28x28"
    assert one.measured["weights"] == 192 * 32
    assert one.measured["macs"] == 28 * 28 * 192 * 32


def test_inception_3a_weights_claim_is_refuted_by_hand_count(
    static: dict[str, ClaimResult],
) -> None:
    reduced = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    naive = 192 * 64 + 192 * 128 * 9 + 192 * 32 * 25
    assert (reduced, naive) == (163_328, 387_072)
    r = static["googlenet.inception_3a_weights"]
    assert r.verdict == REFUTED
    assert r.measured["weights_ratio"] == pytest.approx(naive / reduced)
    assert r.measured["macs_ratio"] == pytest.approx(naive / reduced)  # both x 28 x 28
    assert r.measured["naive_macs"] == naive * 28 * 28
    assert "2.37x" in r.explanation
    channels = static["googlenet.inception_3a_channels"]
    assert channels.verdict == CONFIRMED
    assert channels.measured["output_channels"] == 64 + 128 + 32 + 32
    assert channels.measured["naive_output_channels"] == 64 + 128 + 32 + 192


# GoogLeNet's Table 1: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per module.
GOOGLENET_TABLE = [
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
]  # fmt: skip


def test_googlenet_alexnet_ratio_is_refuted(static: dict[str, ClaimResult]) -> None:
    r = static["googlenet.params_vs_alexnet"]
    assert r.verdict == REFUTED
    assert r.measured["torchvision_ratio"] == pytest.approx(61_100_840 / 6_624_904)
    assert r.measured["two_gpu_ratio"] == pytest.approx(60_965_224 / 6_624_904)
    # the paper's net: a true 5x5 (16 more weights per kernel than torchvision's 3x3), one bias
    # per conv channel instead of batch norm's two (stem convs 64, 64, 192)
    extra_5x5 = sum(red * out * 16 for _, _, _, red, out, _ in GOOGLENET_TABLE)
    channels = 64 + 64 + 192 + sum(sum(row) for row in GOOGLENET_TABLE)
    assert r.measured["paper_googlenet_params"] == 6_624_904 - channels + extra_5x5
    assert r.measured["two_gpu_to_paper_googlenet_ratio"] < 9


def test_depths_by_the_papers_convention(static: dict[str, ClaimResult]) -> None:
    class Branches(nn.Module):  # a 1-deep and a 3-deep branch: the longest path counts
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 1, 1)
            self.b = nn.Sequential(nn.Conv2d(1, 1, 1), nn.MaxPool2d(1), nn.Conv2d(1, 1, 1))
            self.fc = nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.cat([self.a(x), self.b(x)], 1).mean((2, 3))
            return self.fc(y)

    assert weighted_depth(Branches()) == 3 and weighted_depth(Branches(), count_pools=True) == 4
    g = static["googlenet.depth"]
    assert g.verdict == CONFIRMED
    assert (g.measured["weighted_depth"], g.measured["depth_with_pooling"]) == (22, 27)
    assert static["resnet18.layout"].measured["weighted_depth"] == 18
    deeper = static["resnet.deeper"]
    assert deeper.verdict == CONFIRMED
    for depth in (18, 34, 50, 101, 152):
        assert deeper.measured[f"resnet{depth}_weighted_depth"] == depth
    assert deeper.measured["resnet50_block"] == "Bottleneck"
    assert deeper.measured["resnet34_block"] == "BasicBlock"
    assert deeper.measured["resnet50_params"] == 25_557_032  # torchvision's documented count


def test_plain_nets_differ_by_the_projections(static: dict[str, ClaimResult]) -> None:
    params = sum(conv_params(c, 2 * c, 1, bias=False) + 2 * 2 * c for c in (64, 128, 256))
    # each projection: 1x1, stride 2, onto the halved map (28, 14, 7)
    macs = sum(c * 2 * c * hw * hw for c, hw in ((64, 28), (128, 14), (256, 7)))
    adds18 = 2 * (64 * 56 * 56 + 128 * 28 * 28 + 256 * 14 * 14 + 512 * 7 * 7)
    r = static["resnet.plain"]
    assert r.verdict == CONFIRMED
    assert r.measured["resnet18_projection_params"] == params == 173_824
    assert r.measured["resnet18_params"] - r.measured["plain18_params"] == params
    assert r.measured["resnet18_macs"] - r.measured["plain18_macs"] == macs
    assert r.measured["resnet18_shortcut_adds"] == adds18
    layout = static["resnet18.layout"]
    assert layout.verdict == CONFIRMED
    assert layout.measured["stage_sizes"] == "56/28/14/7"


def test_inception_resnet_scales_and_blocks(static: dict[str, ClaimResult]) -> None:
    r = static["inception_resnet.scale"]
    # the paper's networks stay in 0.1-0.3; the released v2's last Block8 is unscaled
    assert r.verdict == PARTLY
    assert r.measured["inception_resnet_v1_outside_0.1_0.3"] == 0
    assert r.measured["inception_resnet_v2_outside_0.1_0.3"] == 1
    blocks = static["inception_resnet.projection"]
    assert blocks.verdict == CONFIRMED
    # v1 and v2 as drawn: 5 + 10 + 5; released v2: 10 + 20 + 9 + 1
    assert blocks.measured["residual_blocks"] == 20 + 20 + 40


# --------------------------------------------------------------------------- measured claims

MACS = {  # any consistent numbers will do: the checks only divide and rank them
    "resnet18": 1_814_073_344,
    "resnet34": 3_663_761_408,
    "resnet50": 4_089_184_256,
    "resnet101": 7_801_405_440,
    "resnet152": 11_513_626_624,
    "plain18": 1_794_805_760,
    "plain34": 3_644_493_824,
    "inception_3a": 128_049_152,
    "inception_3a_naive": 303_464_448,
}


def fake_rows(latency: dict[str, float], **extra: object) -> pd.DataFrame:
    """One ok row per model at batch 1 on a fake GPU, with five tight raw samples each."""
    rows = []
    for model, lat in latency.items():
        rows.append(
            {
                "run_id": "fake-run",
                "timestamp_utc": "2026-01-01T00:00:00+00:00",
                "model": model,
                "input_shape": "192x28x28" if model.startswith("inception") else "3x224x224",
                "batch_size": 1,
                "dtype": "float32",
                "memory_format": "contiguous",
                "mode": "inference",
                "compiled": False,
                "device": "cuda:0",
                "device_name": "Fake GPU",
                "params": 1,
                "macs": MACS[model],
                "latency_s_median": lat,
                "latency_s_samples": [lat * (1 + d) for d in (-0.01, -0.005, 0, 0.005, 0.01)],
                "peak_memory_bytes": int(MACS[model] // 10),
                "status": "ok",
                **extra,
            }
        )
    return pd.DataFrame(rows)


LATENCY = {
    "resnet18": 1e-3,
    "resnet34": 2e-3,
    "resnet50": 3e-3,
    "resnet101": 5e-3,
    "resnet152": 8e-3,
    "plain18": 0.99e-3,
    "plain34": 1.99e-3,
    "inception_3a": 0.5e-3,
    "inception_3a_naive": 0.9e-3,
}


def spearman_by_hand(x: list[float], y: list[float]) -> float:
    """1 - 6 sum d^2 / (n (n^2 - 1)) for data without ties."""
    rx = {v: i for i, v in enumerate(sorted(x))}
    ry = {v: i for i, v in enumerate(sorted(y))}
    d2 = sum((rx[a] - ry[b]) ** 2 for a, b in zip(x, y, strict=True))
    n = len(x)
    return 1 - 6 * d2 / (n * (n * n - 1))


def test_measured_claims_from_fake_rows() -> None:
    good = fake_rows(LATENCY)
    older = fake_rows({"resnet50": 9.0}, timestamp_utc="2025-01-01T00:00:00+00:00")
    failed = fake_rows({"resnet101": 1e-6}, status="error")
    other_batch = fake_rows({"resnet18": 4e-3, "resnet34": 1e-3}, batch_size=8)
    frame = pd.concat([older, good, failed, other_batch], ignore_index=True)
    results = {
        r.id: r
        for r in check_claims(
            frame, only="resnet.depth_vs_cost,resnet.plain_vs*,*3a_time,macs_vs_time"
        )
    }
    depth = results["resnet.depth_vs_cost"]
    assert depth.verdict == CONFIRMED, depth.explanation
    assert "Fake GPU (cuda:0), batch 1, float32" in depth.rows  # not batch 8, which has 2 models
    assert depth.measured["resnet50_latency_s"] == 3e-3  # the latest row, not the older 9 s
    assert depth.measured["resnet101_latency_s"] == 5e-3  # the failed row is ignored
    assert depth.measured["resnet50_gmacs_per_s"] == pytest.approx(MACS["resnet50"] / 3e-3 / 1e9)
    assert depth.measured["plain34_peak_memory_bytes"] == MACS["plain34"] // 10

    plain = results["resnet.plain_vs_residual_time"]
    assert plain.verdict == CONFIRMED
    assert plain.measured["resnet18_to_plain18_latency_ratio"] == pytest.approx(1 / 0.99)
    assert plain.measured["resnet18_to_plain18_macs_ratio"] == pytest.approx(
        MACS["resnet18"] / MACS["plain18"]
    )

    inc = results["googlenet.inception_3a_time"]
    assert inc.verdict == CONFIRMED
    assert inc.measured["naive_to_reduced_latency_ratio"] == pytest.approx(1.8)

    macs = results["macs_vs_time"]
    models = list(LATENCY)
    expected = spearman_by_hand([MACS[m] for m in models], [LATENCY[m] for m in models])
    assert macs.measured["spearman_rho"] == pytest.approx(expected)
    assert macs.verdict == (CONFIRMED if expected >= 0.9 else PARTLY)
    assert macs.measured["plain18_gmacs_per_s"] == pytest.approx(MACS["plain18"] / 0.99e-3 / 1e9)


def test_measured_claims_say_where_the_numbers_disagree() -> None:
    slow = {**LATENCY, "resnet101": 2.5e-3, "plain34": 1.0e-3, "inception_3a": 2e-3}
    results = {r.id: r for r in check_claims(fake_rows(slow), only="*_time,resnet.depth*")}
    depth = results["resnet.depth_vs_cost"]
    assert depth.verdict == PARTLY
    assert "resnet101 vs resnet50 latency 0.83x" in depth.explanation
    plain = results["resnet.plain_vs_residual_time"]
    assert plain.verdict == PARTLY  # 18 agrees, 34 is twice as slow as its plain net
    assert plain.measured["resnet34_to_plain34_latency_ratio"] == pytest.approx(2.0)
    assert results["googlenet.inception_3a_time"].verdict == REFUTED  # naive is faster


def test_energy_claim_names_why_power_is_missing() -> None:
    reason = "unavailable: NVML library not found"
    (r,) = check_claims(fake_rows(LATENCY, power_source=reason), only="macs_vs_energy")
    assert r.verdict == NEEDS_MEASUREMENT and reason in r.explanation
    rows = fake_rows(LATENCY, power_source="nvml")
    rows["energy_j_per_sample"] = [MACS[m] * 1e-11 for m in rows["model"]]  # 100 GMAC/J
    (r,) = check_claims(rows, only="macs_vs_energy")
    assert r.verdict == CONFIRMED and r.measured["spearman_rho"] == pytest.approx(1.0)
    assert r.measured["resnet18_gmacs_per_j"] == pytest.approx(100.0)


def test_results_without_the_cases_columns_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="latency_s_median"):
        check_claims(pd.DataFrame({"model": ["x"], "status": ["ok"]}), only="macs_vs_time")
    with pytest.raises(InvalidInputError, match="DataFrame"):
        check_claims([1, 2], only="macs_vs_time")  # type: ignore[arg-type]


def test_shortcut_probe_distinguishes_add_before_and_after_relu() -> None:
    """The check's premise: with the residual branch zeroed, adding before the last ReLU gives
    relu(x) and adding after it would give x, and the two differ on a random input."""
    block = get_model("resnet18").layer1[0].eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(1, 64, 4, 4)
    with torch.no_grad():
        out = block(x)
    assert torch.equal(out, torch.relu(x)) and not torch.equal(out, x)


# --------------------------------------------------------------------------- the command


def test_cli_json_is_parseable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["claims", "--only", "googlenet.*", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    verdicts = {c["id"]: c["verdict"] for c in data["claims"]}
    assert verdicts["googlenet.params_vs_alexnet"] == REFUTED
    assert verdicts["googlenet.inception_3a_time"] == NEEDS_MEASUREMENT
    assert data["results"] is None and sum(data["summary"].values()) == len(verdicts)


def test_cli_table_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["claims", "--only", "lenet5.layers", "--only", "cs231n.*"]) == 0
    out = capsys.readouterr().out
    assert "122,304" in out and "confirmed" in out and "refuted" in out
    assert "3 results: 2 confirmed, 1 refuted." in out
    assert main(["claims", "--only", "alexnet.conv_fc_split", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| `alexnet.conv_fc_split` |" in out and "conv_share: 3.83%" in out


def test_cli_with_result_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ResultWriter(tmp_path, run_id="fake-run") as w:
        for row in fake_rows(LATENCY).to_dict(orient="records"):
            w.add_case(row)
    code = main(["claims", "--results", str(tmp_path), "--only", "resnet.depth_vs_cost",
                 "--format", "json"])  # fmt: skip
    assert code == 0
    (claim,) = json.loads(capsys.readouterr().out)["claims"]
    assert claim["verdict"] == CONFIRMED and "Fake GPU" in claim["rows"]
    assert claim["measured"]["resnet152_latency_s"] == pytest.approx(8e-3)


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["claims", "--only", "no.such"]) == 2
    assert "no claim id matches" in capsys.readouterr().err
    assert main(["claims", "--results", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_units_in_the_table() -> None:
    from harness.commands.claims import format_value

    assert format_value("fc_share", 0.9617) == "96.17%"
    assert format_value("resnet18_latency_s", 0.0265) == "26.5 ms"
    assert format_value("naive_macs", 303_464_448) == "303.46 MMACs"
    assert format_value("rows_sum_bytes", 60_950_432) == "58.1 MiB"
    assert format_value("params", 60_965_224) == "61.0 M (60,965,224)"
    assert format_value("c1_connections", 122_304) == "122,304"
    assert format_value("weights_ratio", 387_072 / 163_328) == "2.370x"
    assert format_value("added_before_last_relu", True) == "yes"
    assert format_value("x", None) == "-"
    assert not math.isnan(float(format_value("spearman_rho", 0.5)))
