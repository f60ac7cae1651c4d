"""Inception-v4 and Inception-ResNet-v1/v2 against the paper's figures and documented counts.

Ground truth:
* Szegedy, Ioffe, Vanhoucke, Alemi 2016, "Inception-v4, Inception-ResNet and the Impact of
  Residual Connections on Learning", arXiv:1602.07261: the filter counts of Figs. 3-19 and
  Table 1 (k, l, m, n of Reduction-A), the feature map sizes printed in the figures
  (35x35, 17x17, 8x8), the block counts of Figs. 9 and 15.
* Documented parameter counts of the released networks (what timm ports):
  inception_v4 = 42,679,816: keras-hub ``keras_hub/src/models/inception/inception_presets.py``
  ("params": 42679816) and pytorchcv ``pytorch/pytorchcv/models/inceptionv4.py`` (its test
  asserts 42679816); timm's model card says 42.7 M.
  inception_resnet_v2 = 55,843,464: pytorchcv ``pytorch/pytorchcv/models/inceptionresnetv2.py``
  (its test asserts 55843464); timm's model card (inception_resnet_v2.tf_in1k) says 55.8 M.
  Both integers were also reproduced by instantiating timm 1.0.31 (outside this suite, which
  never imports timm).
* Parameter counts of the paper-only variants by formula from the figures, below.
* Output size (N - F + 2P) / S + 1.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.models import get_entry, get_model, list_models
from harness.models.zoo.inception_resnet import Block8, Block17, Block35
from harness.models.zoo.inception_v4 import InceptionA, InceptionB, InceptionC

INCEPTION_V4_PARAMS = 42_679_816
INCEPTION_RESNET_V2_PARAMS = 55_843_464
NAMES = ("inception_v4", "inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_paper")


# --- parameter counts by formula -------------------------------------------------------------


def cbr(cin: int, cout: int, kh: int = 1, kw: int | None = None) -> int:
    """Conv (no bias) + BatchNorm (weight and bias; running stats are buffers): the paper's box."""
    return cin * cout * kh * (kh if kw is None else kw) + 2 * cout


def linear(cin: int, cout: int) -> int:
    """A 1x1 "Linear" convolution or a fully connected layer, with bias."""
    return cin * cout + cout


def stem_fig3() -> int:
    """Fig. 3, 299x299x3 -> 35x35x384."""
    return (
        cbr(3, 32, 3)
        + cbr(32, 32, 3)
        + cbr(32, 64, 3)
        + cbr(64, 96, 3)  # 3x3/2 conv beside the max pool
        + cbr(160, 64)
        + cbr(64, 96, 3)
        + cbr(160, 64)
        + cbr(64, 64, 7, 1)
        + cbr(64, 64, 1, 7)
        + cbr(64, 96, 3)
        + cbr(192, 192, 3)
    )


def reduction_a(cin: int, k: int, l: int, m: int, n: int) -> int:  # noqa: E741
    """Fig. 7 with Table 1's k, l, m, n."""
    return cbr(cin, n, 3) + cbr(cin, k) + cbr(k, l, 3) + cbr(l, m, 3)


def inception_v4_formula() -> int:
    block_a = (  # Fig. 4
        cbr(384, 96)
        + cbr(384, 64)
        + cbr(64, 96, 3)
        + cbr(384, 64)
        + cbr(64, 96, 3)
        + cbr(96, 96, 3)
        + cbr(384, 96)
    )
    block_b = (  # Fig. 5
        cbr(1024, 384)
        + cbr(1024, 192)
        + cbr(192, 224, 1, 7)
        + cbr(224, 256, 7, 1)
        + cbr(1024, 192)
        + cbr(192, 192, 1, 7)
        + cbr(192, 224, 7, 1)
        + cbr(224, 224, 1, 7)
        + cbr(224, 256, 7, 1)
        + cbr(1024, 128)
    )
    red_b = (  # Fig. 8
        cbr(1024, 192)
        + cbr(192, 192, 3)
        + cbr(1024, 256)
        + cbr(256, 256, 1, 7)
        + cbr(256, 320, 7, 1)
        + cbr(320, 320, 3)
    )
    block_c = (  # Fig. 6
        cbr(1536, 256)
        + cbr(1536, 384)
        + 2 * cbr(384, 256, 1, 3)
        + cbr(1536, 384)
        + cbr(384, 448, 3, 1)
        + cbr(448, 512, 1, 3)
        + 2 * cbr(512, 256, 1, 3)
        + cbr(1536, 256)
    )
    return (
        stem_fig3()
        + 4 * block_a
        + reduction_a(384, 192, 224, 256, 384)
        + 7 * block_b
        + red_b
        + 3 * block_c
        + linear(1536, 1000)
    )


def ir_block_a(c: int, w: tuple[int, int, int, int, int, int]) -> int:
    b0, b1a, b1b, b2a, b2b, b2c = w
    return (
        cbr(c, b0)
        + cbr(c, b1a)
        + cbr(b1a, b1b, 3)
        + cbr(c, b2a)
        + cbr(b2a, b2b, 3)
        + cbr(b2b, b2c, 3)
        + linear(b0 + b1b + b2c, c)
    )


def ir_block_bc(c: int, k: int, w: tuple[int, int, int, int]) -> int:
    b0, b1a, b1b, b1c = w
    return (
        cbr(c, b0) + cbr(c, b1a) + cbr(b1a, b1b, 1, k) + cbr(b1b, b1c, k, 1) + linear(b0 + b1c, c)
    )


def ir_reduction_b(c: int, a: int, b: int, c1: int, c2: int) -> int:
    return (
        cbr(c, 256)
        + cbr(256, a, 3)
        + cbr(c, 256)
        + cbr(256, b, 3)
        + cbr(c, 256)
        + cbr(256, c1, 3)
        + cbr(c1, c2, 3)
    )


def inception_resnet_v1_formula() -> int:
    stem = (
        cbr(3, 32, 3)
        + cbr(32, 32, 3)
        + cbr(32, 64, 3)
        + cbr(64, 80)
        + cbr(80, 192, 3)
        + cbr(192, 256, 3)
    )  # Fig. 14
    return (
        stem
        + 5 * ir_block_a(256, (32, 32, 32, 32, 32, 32))  # Fig. 10
        + reduction_a(256, 192, 192, 256, 384)  # Table 1 -> 896 channels
        + 10 * ir_block_bc(896, 7, (128, 128, 128, 128))  # Fig. 11
        + ir_reduction_b(896, 384, 256, 256, 256)  # Fig. 12 -> 1792 channels
        + 5 * ir_block_bc(1792, 3, (192, 192, 192, 192))  # Fig. 13
        + linear(1792, 1000)
    )


def inception_resnet_v2_paper_formula() -> int:
    return (
        stem_fig3()
        + 5 * ir_block_a(384, (32, 32, 32, 32, 48, 64))  # Fig. 16
        + reduction_a(384, 256, 256, 384, 384)  # Table 1 -> 1152 channels
        + 10 * ir_block_bc(1152, 7, (192, 128, 160, 192))  # Fig. 17 (its "1154" read as 1152)
        + ir_reduction_b(1152, 384, 288, 288, 320)  # Fig. 18 -> 2144 channels
        + 5 * ir_block_bc(2144, 3, (192, 192, 224, 256))  # Fig. 19 (its "2048" read as 2144)
        + linear(2144, 1000)
    )


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return get_model(name, **kwargs).eval()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {name: meta_model(name) for name in NAMES}


def test_all_registered_with_299_input() -> None:
    assert set(NAMES) <= set(list_models("inception*"))
    for name in NAMES:
        entry = get_entry(name)
        assert entry.input_shape == (3, 299, 299)
        assert entry.family == "inception"
        assert "1602.07261" in entry.reference


def test_builds_on_meta_without_allocating(models: dict[str, nn.Module]) -> None:
    for model in models.values():
        tensors = [*model.parameters(), *model.buffers()]
        assert tensors and all(t.is_meta for t in tensors)


def test_formula_reading_of_the_figures_gives_the_documented_v4_count() -> None:
    assert inception_v4_formula() == INCEPTION_V4_PARAMS


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("inception_v4", INCEPTION_V4_PARAMS),
        ("inception_resnet_v2", INCEPTION_RESNET_V2_PARAMS),
        ("inception_resnet_v1", inception_resnet_v1_formula()),
        ("inception_resnet_v2_paper", inception_resnet_v2_paper_formula()),
    ],
)
def test_parameter_count(models: dict[str, nn.Module], name: str, expected: int) -> None:
    assert n_params(models[name]) == expected


def test_num_classes_changes_only_the_classifier() -> None:
    model = meta_model("inception_resnet_v1", num_classes=10)
    assert n_params(model) == inception_resnet_v1_formula() - linear(1792, 1000) + linear(1792, 10)
    assert model(torch.empty(2, 3, 299, 299, device="meta")).shape == (2, 10)


# --- shapes ----------------------------------------------------------------------------------


def out(n: int, f: int, s: int = 1, p: int = 0) -> int:
    return (n - f + 2 * p) // s + 1


def sizes(n: int) -> list[int]:
    """Spatial sizes through the stem, Reduction-A and Reduction-B, from an n x n input.

    Both stems shrink alike: Fig. 3 (valid 3x3/2, valid 3x3, same 3x3, 3x3/2, valid 3x3,
    3x3/2) and Fig. 14 / TF-slim (3x3/2, 3x3, same 3x3, pool 3x3/2, 1x1, 3x3, 3x3/2); every
    other layer keeps the size; both reductions are valid 3x3/2.
    """
    chain = [out(n, 3, 2)]
    for f, s in ((3, 1), (3, 2), (3, 1), (3, 2), (3, 2), (3, 2)):
        chain.append(out(chain[-1], f, s))
    return chain


STAGES = {
    # name: (stem module, channels after stem / Reduction-A / Reduction-B / before the head)
    "inception_v4": (("features.5", "features.10", "features.18"), (384, 1024, 1536, 1536)),
    "inception_resnet_v1": (("conv2d_4b", "mixed_6a", "mixed_7a"), (256, 896, 1792, 1792)),
    "inception_resnet_v2": (("mixed_5b", "mixed_6a", "mixed_7a"), (320, 1088, 2080, 1536)),
    "inception_resnet_v2_paper": (("stem", "mixed_6a", "mixed_7a"), (384, 1152, 2144, 2144)),
}


@pytest.mark.parametrize("name", NAMES)
def test_feature_map_sizes_follow_the_figures(models: dict[str, nn.Module], name: str) -> None:
    model = models[name]
    (stem, red_a, red_b), channels = STAGES[name]
    assert sizes(299) == [149, 147, 73, 71, 35, 17, 8]  # as printed in Figs. 3, 14 and 9
    seen: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[key].register_forward_hook(
            lambda _m, _i, o, key=key: seen.__setitem__(key, tuple(o.shape))
        )
        for key in (stem, red_a, red_b, "global_pool")
    ]
    try:
        y = model(torch.empty(1, 3, 299, 299, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    assert seen[stem] == (1, channels[0], 35, 35)
    assert seen[red_a] == (1, channels[1], 17, 17)
    assert seen[red_b] == (1, channels[2], 8, 8)
    assert seen["global_pool"] == (1, channels[3], 1, 1)
    assert y.shape == (1, 1000)


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("inception_v4", {InceptionA: 4, InceptionB: 7, InceptionC: 3}),
        ("inception_resnet_v1", {Block35: 5, Block17: 10, Block8: 5}),
        ("inception_resnet_v2_paper", {Block35: 5, Block17: 10, Block8: 5}),
        # The released network: 10 / 20 / 9 scaled blocks and one unscaled, unactivated Block8.
        ("inception_resnet_v2", {Block35: 10, Block17: 20, Block8: 10}),
    ],
)
def test_block_counts(models: dict[str, nn.Module], name: str, counts: dict[type, int]) -> None:
    for cls, count in counts.items():
        assert sum(type(m) is cls for m in models[name].modules()) == count


def test_residual_scales_are_arguments_with_documented_defaults() -> None:
    model = meta_model("inception_resnet_v1")
    scales = {
        cls: {m.scale for m in model.modules() if type(m) is cls}
        for cls in (Block35, Block17, Block8)
    }
    assert scales == {Block35: {0.17}, Block17: {0.10}, Block8: {0.20}}
    model = meta_model("inception_resnet_v2", scale_a=0.3, scale_b=0.1, scale_c=0.25)
    assert {m.scale for m in model.modules() if type(m) is Block35} == {0.3}
    assert {m.scale for m in model.repeat_2} == {0.25}
    assert model.block8.scale == 1.0 and model.block8.relu is None


def test_residual_block_adds_scaled_linear_projection() -> None:
    """relu(x + scale * conv1x1(concat(branches))), checked on a real 2x320x5x5 tensor."""
    torch.manual_seed(0)
    block = Block35(320, (32, (32, 32), (32, 48, 64)), scale=0.17).eval()
    assert block.conv2d.in_channels == 128 and block.conv2d.out_channels == 320
    assert block.conv2d.bias is not None  # linear 1x1: bias, no batch norm, no activation
    x = torch.randn(2, 320, 5, 5)
    with torch.no_grad():
        joined = torch.cat([block.branch0(x), block.branch1(x), block.branch2(x)], 1)
        expected = torch.relu(x + 0.17 * block.conv2d(joined))
        torch.testing.assert_close(block(x), expected)


# --- minimum input ---------------------------------------------------------------------------


def smallest_accepted() -> int:
    """Smallest n for which every stage keeps at least one pixel."""
    return next(n for n in range(1, 300) if min(sizes(n)) >= 1)


@pytest.mark.parametrize("name", NAMES)
def test_min_input_shape(models: dict[str, nn.Module], name: str) -> None:
    n = smallest_accepted()
    assert n == 75
    assert get_entry(name).min_input_shape == (3, n, n)
    model = models[name]
    assert model(torch.empty(1, 3, n, n, device="meta")).shape == (1, 1000)
    for shape in ((n - 1, n - 1), (n, n - 1), (n - 1, n)):
        with pytest.raises(RuntimeError):
            model(torch.empty(1, 3, *shape, device="meta"))


# --- the profiler and input validation ---------------------------------------------------------

# timm's model cards (huggingface.co/timm/inception_v4.tf_in1k and
# huggingface.co/timm/inception_resnet_v2.tf_in1k) give "GMACs: 12.3" and "GMACs: 13.2" at
# 299x299, one multiply-add counted once, to one decimal.
TIMM_CARD_GMACS = {"inception_v4": 12.3, "inception_resnet_v2": 13.2}


@pytest.fixture(scope="module")
def profiler():
    from harness.profile import profile, validate_input  # imported here so only these tests need it

    return profile, validate_input


@pytest.mark.parametrize("name", sorted(TIMM_CARD_GMACS))
def test_macs_match_timm_model_cards(profiler, name: str) -> None:
    profile, _ = profiler
    prof = profile(name, batch_size=1)
    assert (
        prof.params
        == {"inception_v4": INCEPTION_V4_PARAMS, "inception_resnet_v2": INCEPTION_RESNET_V2_PARAMS}[
            name
        ]
    )
    assert round(prof.macs / 1e9, 1) == TIMM_CARD_GMACS[name]
    assert prof.unhandled_ops == {}


@pytest.mark.parametrize("name", NAMES)
def test_validate_input_names_the_minimum(profiler, name: str) -> None:
    from harness.core.errors import InputTooSmallError

    _, validate_input = profiler
    validate_input(name, "3x75x75")
    with pytest.raises(InputTooSmallError, match="3x75x75"):
        validate_input(name, "3x75x74")
