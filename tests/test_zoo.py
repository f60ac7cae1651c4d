"""The classic CNN zoo against ground truth: the papers' tables, torchvision's documented parameter
counts, and hand formulas (params of a conv = out * in / groups * F * F + out; output size
floor((N - F + 2P) / S) + 1). Models are built and run on the meta device unless a test needs
numbers, and then only small ones run for real.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor, nn

from harness.models import get_entry, get_model, list_models
from harness.models.zoo.googlenet import GoogLeNetOutputs, Inception
from harness.models.zoo.lenet import C3_TABLE, SparseConv2d, Subsampling
from harness.models.zoo.resnet import BasicBlock

MINE = [
    "lenet5",
    "alexnet_original",
    "alexnet",
    "zfnet",
    *(f"vgg{d}" for d in ("11", "11_lrn", "13", "16_c", "16", "19")),
    *(f"vgg{d}_bn" for d in (11, 13, 16, 19)),
    "googlenet",
    "inception_3a",
    "inception_3a_naive",
    *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
    "plain18",
    "plain34",
    "preact_resnet18",
]

# torchvision's documented parameter counts (the num_params of its weights' metadata).
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return get_model(name, **kwargs).eval()


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def fc_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def bn_params(c: int) -> int:
    return 2 * c


def leaf_outputs(model: nn.Module, x: Tensor) -> list[tuple[str, nn.Module, Tensor]]:
    """Run ``model(x)`` and collect (name, module, output) for every leaf module, in call order."""
    seen: list[tuple[str, nn.Module, Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, out, name=name: seen.append((name, mod, out)))
        for name, m in model.named_modules()
        if not list(m.children())
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def meta_input(shape: Sequence[int], batch: int = 2) -> Tensor:
    return torch.empty(batch, *shape, device="meta")


# --------------------------------------------------------------------------- every model


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_on_meta_without_memory(name: str) -> None:
    model = meta_model(name)
    tensors = list(model.parameters()) + list(model.buffers())
    assert tensors, f"{name} has no parameters or buffers"
    assert all(t.device.type == "meta" for t in tensors)


def test_all_my_models_are_registered() -> None:
    assert set(MINE) <= set(list_models())
    assert list_models("vgg*") == sorted(n for n in MINE if n.startswith("vgg"))


@pytest.mark.parametrize("name", MINE)
def test_default_input_runs_on_meta(name: str) -> None:
    entry = get_entry(name)
    out = meta_model(name)(meta_input(entry.input_shape))
    assert entry.reference and entry.family and entry.description
    if name.startswith("inception_3a"):
        assert out.shape == (2, 256 if name == "inception_3a" else 416, 28, 28)
    else:
        assert out.shape == (2, 10 if name == "lenet5" else 1000)


@pytest.mark.parametrize("name", MINE)
def test_min_input_shape_is_tight(name: str) -> None:
    """At the registered minimum every layer has a non-empty output; one pixel less fails."""
    entry = get_entry(name)
    assert entry.min_input_shape is not None
    c, h, w = entry.min_input_shape
    assert h == w and c == entry.input_shape[0]
    model = meta_model(name)
    for _, _, out in leaf_outputs(model, meta_input((c, h, w))):
        assert all(d >= 1 for d in out.shape)
    with pytest.raises(RuntimeError):
        model(meta_input((c, h - 1, w - 1)))


def out_size(n: int, f: int, s: int = 1, p: int = 0, ceil: bool = False) -> int:
    """floor((N - F + 2P) / S) + 1, or torch's ceil-mode variant (last window starts inside)."""
    if not ceil:
        return (n - f + 2 * p) // s + 1
    out = math.ceil((n - f + 2 * p) / s) + 1
    return out - 1 if (out - 1) * s >= n + p else out


def smallest_input(chain: Sequence[tuple[int, ...]], need: int | None = None) -> int:
    """Smallest N whose chain of (F, S, P[, ceil]) layers ends in ``need`` (None: >= 1) pixels.

    A window must fit in the padded input, except for a ceil-mode pool, whose last window may
    hang over the edge as long as it starts inside (torch's rule): it needs only an output >= 1.
    """
    for n in range(1, 1000):
        size, ok = n, True
        for layer in chain:
            f, s, p, *ceil = layer
            new = out_size(size, f, s, p, bool(ceil and ceil[0]))
            if new < 1 or (not ceil and size + 2 * p < f):
                ok = False
                break
            size = new
        if ok and size >= 1 and (need is None or size == need):
            return n
    raise AssertionError("no input size fits")


@pytest.mark.parametrize(
    ("name", "chain", "need"),
    [
        ("lenet5", [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0), (5, 1, 0)], 1),
        ("alexnet_original", [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0)]
         + [(3, 1, 1)] * 3 + [(3, 2, 0)], 6),
        ("alexnet", [(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0)]
         + [(3, 1, 1)] * 3 + [(3, 2, 0)], None),
        ("zfnet", [(7, 2, 1), (3, 2, 0, 1), (5, 2, 0), (3, 2, 0, 1)]
         + [(3, 1, 1)] * 3 + [(3, 2, 0, 1)], 6),
        ("vgg16", [(3, 1, 1), (3, 1, 1), (2, 2, 0)] * 5, None),
        ("googlenet", [(7, 2, 3), (3, 2, 0, 1), (1, 1, 0), (3, 1, 1), (3, 2, 0, 1),
                       (3, 2, 0, 1), (2, 2, 0, 1)], None),
        ("resnet18", [(7, 2, 3), (3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 1)], None),
    ],
)  # fmt: skip
def test_min_input_shape_matches_the_output_size_formula(
    name: str, chain: list[tuple[int, ...]], need: int | None
) -> None:
    assert (
        get_entry(name).min_input_shape
        == (get_entry(name).input_shape[0],) + (smallest_input(chain, need),) * 2
    )


def test_output_size_formula_examples() -> None:
    """CLAIMS: a 5x5 filter on 32x32 at stride 1 gives 28x28; pad (F - 1) / 2 keeps the size."""
    assert out_size(32, 5) == 28
    x = torch.empty(1, 1, 32, 32, device="meta")
    assert nn.Conv2d(1, 1, 5, device="meta")(x).shape[-1] == 28
    assert nn.Conv2d(1, 1, 5, padding=2, device="meta")(x).shape[-1] == 32


# --------------------------------------------------------------------------- LeNet-5


def test_lenet5_trainable_params_per_layer_match_the_paper() -> None:
    model = meta_model("lenet5")
    paper = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164}
    measured = {name: n_params(getattr(model, name)) for name in paper}
    assert measured == paper
    assert n_params(model.output) == 0  # the RBF centres are fixed
    assert n_params(model) == sum(paper.values()) == 60_000
    assert all(p.requires_grad for p in model.parameters())


def test_lenet5_feature_maps_match_the_paper() -> None:
    outs = {n: o.shape for n, _, o in leaf_outputs(meta_model("lenet5"), meta_input((1, 32, 32)))}
    assert outs["c1"] == (2, 6, 28, 28)
    assert outs["s2"] == (2, 6, 14, 14)
    assert outs["c3"] == (2, 16, 10, 10)
    assert outs["s4"] == (2, 16, 5, 5)
    assert outs["c5"] == (2, 120, 1, 1)
    assert outs["f6"] == (2, 84)
    assert outs["output"] == (2, 10)


def test_c3_connection_table_is_table_one() -> None:
    sizes = [len(t) for t in C3_TABLE]
    assert sizes == [3] * 6 + [4] * 9 + [6]
    for k in range(6):  # 3 adjacent maps, cyclically
        assert set(C3_TABLE[k]) == {k % 6, (k + 1) % 6, (k + 2) % 6}
    for k in range(6, 12):  # 4 adjacent maps
        assert set(C3_TABLE[k]) == {(k - 6 + i) % 6 for i in range(4)}
    for k in range(12, 15):  # 4 maps, not all adjacent
        assert not any(set(C3_TABLE[k]) == {(j + i) % 6 for i in range(4)} for j in range(6))
    assert len(set(map(frozenset, C3_TABLE))) == 16


def test_sparse_c3_equals_a_masked_dense_convolution() -> None:
    torch.manual_seed(0)
    c3 = SparseConv2d(C3_TABLE, in_channels=6, kernel_size=5)
    dense = torch.zeros(16, 6, 5, 5)
    for k, inputs in enumerate(C3_TABLE):
        dense[k, list(inputs)] = getattr(c3, f"weight_{k}").detach()[0]
    x = torch.randn(3, 6, 14, 14)
    expected = nn.functional.conv2d(x, dense, c3.bias.detach())
    torch.testing.assert_close(c3(x), expected)


def test_subsampling_is_coefficient_times_sum_plus_bias() -> None:
    s2 = Subsampling(6)
    with torch.no_grad():
        s2.weight.copy_(torch.arange(1.0, 7.0))
        s2.bias.copy_(torch.arange(6.0) / 10)
    x = torch.randn(2, 6, 28, 28)
    sums = nn.functional.avg_pool2d(x, 2) * 4
    expected = sums * s2.weight.detach().view(1, 6, 1, 1) + s2.bias.detach().view(1, 6, 1, 1)
    torch.testing.assert_close(s2(x), expected)


def test_lenet5_output_is_squared_euclidean_distance_to_fixed_centres() -> None:
    model = get_model("lenet5").eval()
    rbf = model.output
    assert "output.centers" in dict(model.named_buffers())
    centres = rbf.centers
    assert centres.shape == (10, 84) and set(centres.unique().tolist()) == {-1.0, 1.0}
    assert not isinstance(centres, nn.Parameter)
    x = torch.randn(4, 84)
    torch.testing.assert_close(rbf(x), torch.cdist(x, centres) ** 2, rtol=1e-4, atol=1e-3)
    # deterministic: a second build has the same centres
    torch.testing.assert_close(get_model("lenet5").output.centers, centres)
    # the whole network runs for real on its 32x32 input
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_lenet5_squashing_is_the_scaled_tanh() -> None:
    act = get_model("lenet5").f6_act
    a = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(act(a), 1.7159 * torch.tanh(2 * a / 3))


# --------------------------------------------------------------------------- AlexNet, ZFNet

ALEXNET_ORIGINAL_CONV = (
    conv_params(3, 96, 11)
    + conv_params(96, 256, 5, groups=2)
    + conv_params(256, 384, 3)
    + conv_params(384, 384, 3, groups=2)
    + conv_params(384, 256, 3, groups=2)
)
ALEXNET_FC = fc_params(6 * 6 * 256, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)


def _split(model: nn.Module) -> tuple[int, int]:
    conv = sum(n_params(m) for m in model.modules() if isinstance(m, nn.Conv2d))
    fc = sum(n_params(m) for m in model.modules() if isinstance(m, nn.Linear))
    return conv, fc


def test_alexnet_original_params_and_conv_fc_split() -> None:
    model = meta_model("alexnet_original")
    assert ALEXNET_ORIGINAL_CONV == 2_334_080 and ALEXNET_FC == 58_631_144
    conv, fc = _split(model)
    assert (conv, fc) == (ALEXNET_ORIGINAL_CONV, ALEXNET_FC)
    assert n_params(model) == conv + fc == 60_965_224
    # CLAIMS: conv about 3.8%, FC about 96.2% of about 61 million
    assert abs(100 * conv / (conv + fc) - 3.8) < 0.1
    assert abs(100 * fc / (conv + fc) - 96.2) < 0.1


def test_alexnet_original_two_gpu_layout() -> None:
    model = meta_model("alexnet_original")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert convs[1].weight.shape == (256, 48, 5, 5)  # each half sees its own 48 channels
    assert convs[2].weight.shape == (384, 256, 3, 3)  # conv3 sees all 256
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.features) == 2
    assert model.features(meta_input((3, 227, 227))).shape == (2, 256, 6, 6)
    lrn = next(m for m in model.features if isinstance(m, nn.LocalResponseNorm))
    # the paper's alpha = 1e-4 on the sum; torch divides alpha by size
    assert (lrn.size, lrn.alpha / lrn.size, lrn.beta, lrn.k) == (5, pytest.approx(1e-4), 0.75, 2)


def test_alexnet_is_torchvisions() -> None:
    model = meta_model("alexnet")
    assert n_params(model) == TORCHVISION_PARAMS["alexnet"]
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs == [64, 192, 384, 256, 256]


def test_zfnet_feature_maps_follow_the_paper() -> None:
    outs = leaf_outputs(meta_model("zfnet"), meta_input((3, 224, 224)))
    sizes = [o.shape[-1] for _, m, o in outs if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
    # conv1 110, pool1 55, conv2 26, pool2 13, conv3-5 13, pool5 6 (Zeiler & Fergus, Fig. 3)
    assert sizes == [110, 55, 26, 13, 13, 13, 13, 6]


def test_zfnet_params_from_formula() -> None:
    conv = (
        conv_params(3, 96, 7)
        + conv_params(96, 256, 5)
        + conv_params(256, 384, 3)
        + conv_params(384, 384, 3)
        + conv_params(384, 256, 3)
    )
    assert _split(meta_model("zfnet")) == (conv, ALEXNET_FC)


# --------------------------------------------------------------------------- VGG


@pytest.mark.parametrize("name", [n for n in TORCHVISION_PARAMS if n != "alexnet"])
def test_params_match_torchvision_documentation(name: str) -> None:
    assert n_params(meta_model(name)) == TORCHVISION_PARAMS[name]


def _vgg_conv_params(convs: Sequence[tuple[int, int]]) -> int:
    channels, total = 3, 0
    for c, k in convs:
        total += conv_params(channels, c, k)
        channels = c
    return total


VGG_FC = fc_params(512 * 7 * 7, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)


def test_vgg16_c_and_lrn_from_formula() -> None:
    c = [(64, 3)] * 2 + [(128, 3)] * 2 + [(256, 3)] * 2 + [(256, 1)]
    c += [(512, 3)] * 2 + [(512, 1)] + [(512, 3)] * 2 + [(512, 1)]
    assert n_params(meta_model("vgg16_c")) == _vgg_conv_params(c) + VGG_FC
    kernels = [m.kernel_size[0] for m in meta_model("vgg16_c").features if isinstance(m, nn.Conv2d)]
    assert kernels == [3, 3, 3, 3, 3, 3, 1, 3, 3, 1, 3, 3, 1]
    lrn = meta_model("vgg11_lrn")
    assert n_params(lrn) == TORCHVISION_PARAMS["vgg11"]
    assert [type(m).__name__ for m in lrn.features[:4]] == [
        "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("vgg11", 11),
        ("vgg11_lrn", 11),
        ("vgg13", 13),
        ("vgg16_c", 16),
        ("vgg16", 16),
        ("vgg19", 19),
    ],
)
def test_vgg_weight_layers(name: str, layers: int) -> None:
    model = meta_model(name)
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == layers
    assert all(
        m.kernel_size in ((3, 3), (1, 1)) and m.stride == (1, 1)
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    )


def test_vgg_depth_barely_changes_params_because_fc_dominates() -> None:
    p11, p19 = n_params(meta_model("vgg11")), n_params(meta_model("vgg19"))
    assert VGG_FC == 123_642_856
    # 11 -> 19 weight layers (+73% depth) adds about 8% parameters
    assert 1.0 < p19 / p11 < 1.10
    assert p19 / p11 == pytest.approx(143_667_240 / 132_863_336)
    for name in ("vgg11", "vgg13", "vgg16", "vgg19"):
        _, fc = _split(meta_model(name))
        assert fc == VGG_FC and fc / TORCHVISION_PARAMS[name] > 0.85


def test_three_3x3_convs_see_7x7_with_27c2_weights_against_49c2() -> None:
    c = 8
    stack = nn.Sequential(*(nn.Conv2d(c, c, 3, bias=False) for _ in range(3)))
    single = nn.Conv2d(c, c, 7, bias=False)
    assert n_params(stack) == 3 * 9 * c * c == 27 * c * c
    assert n_params(single) == 49 * c * c
    # receptive field: one output pixel of the stack depends on exactly a 7x7 input window
    probe = nn.Sequential(*(nn.Conv2d(1, 1, 3, bias=False) for _ in range(3)))
    for conv in probe:
        nn.init.constant_(conv.weight, 1.0)
    x = torch.zeros(1, 1, 15, 15, requires_grad=True)
    probe(x)[0, 0, 4, 4].backward()
    rows, cols = (x.grad[0, 0] != 0).nonzero(as_tuple=True)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (7, 7)


# --------------------------------------------------------------------------- GoogLeNet

INCEPTION_3A_WEIGHTS = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
NAIVE_3A_WEIGHTS = 192 * 64 + 192 * 128 * 9 + 192 * 32 * 25


def test_inception_3a_with_and_without_reductions() -> None:
    assert INCEPTION_3A_WEIGHTS == 163_328 and NAIVE_3A_WEIGHTS == 387_072
    reduced, naive = meta_model("inception_3a"), meta_model("inception_3a_naive")
    weights = {n: sum(p.numel() for k, p in m.named_parameters() if k.endswith("weight"))
               for n, m in (("reduced", reduced), ("naive", naive))}  # fmt: skip
    assert weights == {"reduced": INCEPTION_3A_WEIGHTS, "naive": NAIVE_3A_WEIGHTS}
    assert n_params(reduced) == INCEPTION_3A_WEIGHTS + 64 + 96 + 128 + 16 + 32 + 32
    assert n_params(naive) == NAIVE_3A_WEIGHTS + 64 + 128 + 32
    x = meta_input((192, 28, 28))
    assert reduced(x).shape == (2, 64 + 128 + 32 + 32, 28, 28) == (2, 256, 28, 28)
    assert naive(x).shape == (2, 64 + 128 + 32 + 192, 28, 28) == (2, 416, 28, 28)
    # CLAIMS says "about three times the weights"; the formula gives 2.37x
    ratio = weights["naive"] / weights["reduced"]
    assert ratio == pytest.approx(387_072 / 163_328) and 2.3 < ratio < 2.4
    kernels = {m.kernel_size[0] for m in reduced.modules() if isinstance(m, nn.Conv2d)}
    assert kernels == {1, 3, 5}  # the paper's true 5x5


def test_googlenet_structure_and_ratio_to_alexnet() -> None:
    model = meta_model("googlenet")
    inceptions = [m for m in model.modules() if isinstance(m, Inception)]
    stem = [model.conv1, model.conv2, model.conv3]
    # 22 weighted layers deep: 3 stem convs + 9 modules two convs deep + 1 FC
    assert len(stem) + 2 * len(inceptions) + 1 == 22
    assert model.aux1 is None and model.aux2 is None and model.dropout.p == 0.2
    assert all(m.eps == 0.001 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    g, a, a0 = (n_params(meta_model(n)) for n in ("googlenet", "alexnet", "alexnet_original"))
    # CLAIMS says "about a twelfth"; torchvision's two models give 1/9.2
    assert a / g == pytest.approx(61_100_840 / 6_624_904) == pytest.approx(9.223, abs=1e-3)
    assert a0 / g == pytest.approx(60_965_224 / 6_624_904) == pytest.approx(9.202, abs=1e-3)


def test_googlenet_aux_classifiers_in_training() -> None:
    def aux(c: int) -> int:
        return (
            conv_params(c, 128, 1, bias=False)
            + bn_params(128)
            + fc_params(2048, 1024)
            + fc_params(1024, 1000)
        )

    model = meta_model("googlenet", aux_logits=True).train()
    assert n_params(model) == TORCHVISION_PARAMS["googlenet"] + aux(512) + aux(528)
    out = model(meta_input((3, 224, 224)))
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 1000)] * 3
    assert model.eval()(meta_input((3, 224, 224))).shape == (2, 1000)


# --------------------------------------------------------------------------- ResNet

PROJECTIONS_18 = sum(
    conv_params(c, 2 * c, 1, bias=False) + bn_params(2 * c) for c in (64, 128, 256)
)


def test_resnet18_has_18_weighted_layers() -> None:
    model = meta_model("resnet18")
    main_path = [
        n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "downsample" not in n
    ]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(main_path) == 17 and len(fcs) == 1
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    stage_channels = [getattr(model, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)]
    assert stage_channels == [64, 128, 256, 512]


@pytest.mark.parametrize(("plain", "resnet"), [("plain18", "resnet18"), ("plain34", "resnet34")])
def test_plain_nets_are_resnets_without_shortcuts(plain: str, resnet: str) -> None:
    assert PROJECTIONS_18 == 173_824
    model = meta_model(plain)
    assert n_params(model) == TORCHVISION_PARAMS[resnet] - PROJECTIONS_18
    assert not [n for n, _ in model.named_modules() if "downsample" in n]


def test_shortcut_adds_the_input() -> None:
    x = torch.randn(2, 4, 6, 6)
    residual, plain = BasicBlock(4, 4).eval(), BasicBlock(4, 4, shortcut=False).eval()
    for block in (residual, plain):
        nn.init.zeros_(block.bn2.weight)  # the residual branch outputs exactly 0
    torch.testing.assert_close(residual(x), torch.relu(x))
    torch.testing.assert_close(plain(x), torch.zeros_like(x))


def _preact18_params() -> int:
    def block(c_in: int, c: int, projection: bool) -> int:
        total = bn_params(c_in) + conv_params(c_in, c, 3, bias=False)
        total += bn_params(c) + conv_params(c, c, 3, bias=False)
        return total + (conv_params(c_in, c, 1, bias=False) if projection else 0)

    total = conv_params(3, 64, 7, bias=False)
    c_in = 64
    for c in (64, 128, 256, 512):
        total += block(c_in, c, projection=c != c_in) + block(c, c, projection=False)
        c_in = c
    return total + bn_params(512) + fc_params(512, 1000)


def test_preact_resnet18_params_from_formula() -> None:
    assert _preact18_params() == 11_687_720
    model = meta_model("preact_resnet18")
    assert n_params(model) == _preact18_params()
    first = model.layer1[0]
    assert [n for n, _ in first.named_children()][:3] == ["bn1", "relu", "conv1"]


def test_bottleneck_resnets_expand_four_times() -> None:
    model = meta_model("resnet50")
    assert model.fc.in_features == 2048
    assert model.layer1[0].conv3.out_channels == 4 * model.layer1[0].conv1.out_channels


def test_real_forward_small_resnet_variants_agree_in_shape() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        outs = [get_model(n, num_classes=7).eval()(x) for n in ("resnet18", "preact_resnet18")]
    assert all(o.shape == (1, 7) and torch.isfinite(o).all() for o in outs)


# --------------------------------------------------------------------------- 1x1 convolution


def test_one_by_one_convolution_reduces_channels() -> None:
    conv = nn.Conv2d(192, 32, kernel_size=1, bias=False, device="meta")
    assert conv(meta_input((192, 28, 28), batch=1)).shape == (1, 32, 28, 28)
    assert conv.weight.numel() == 192 * 32 == 6_144
