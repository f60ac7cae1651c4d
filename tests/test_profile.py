"""The static profiler against ground truth from formulas, the LeNet-5 paper and the cs231n
VGG-16 table: never against numbers the profiler printed."""

from __future__ import annotations

import resource

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import harness
from harness.profile import LayerStat, ModelProfile, profile
from harness.profile.layers import FRAME_COLUMNS
from harness.profile.trace import MetaTracer, resolve

# ---------------------------------------------------------------------------------------------
# single layers: MACs from the formulas fvcore's tests use


def conv_macs(n: int, cin: int, cout: int, k: int, out_hw: tuple[int, ...], groups: int = 1):
    spatial = 1
    for d in out_hw:
        spatial *= d
    return n * cout * spatial * (cin // groups) * k ** len(out_hw)


@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "pad", "groups", "hw", "out"),
    [
        (3, 64, 3, 1, 1, 1, 32, 32),
        (3, 96, 11, 4, 0, 1, 227, 55),
        (48, 128, 5, 1, 2, 2, 27, 27),  # AlexNet's grouped conv2 half
        (32, 32, 3, 1, 1, 32, 16, 16),  # depthwise
        (192, 32, 1, 1, 0, 1, 28, 28),  # the 1x1 convolution of the notes
    ],
)
def test_conv2d_macs_formula(cin, cout, k, stride, pad, groups, hw, out):
    m = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
    p = profile(m, (cin, hw, hw), batch_size=3)
    expected = conv_macs(3, cin, cout, k, (out, out), groups)
    assert p.macs == expected
    assert p.flops == 2 * expected
    (layer,) = p.layers
    assert layer.output_shape == (3, cout, out, out)
    assert layer.params == cout * (cin // groups) * k * k + cout
    # connections: MACs plus one bias addition per output element
    assert layer.connections == expected + 3 * cout * out * out


def test_one_by_one_conv_of_the_notes():
    # 32 filters of 1x1x192 turn 28x28x192 into 28x28x32: 28*28*32*192 multiply-adds
    p = profile(nn.Conv2d(192, 32, 1), (192, 28, 28))
    assert p.layers[0].output_shape == (1, 32, 28, 28)
    assert p.macs == 28 * 28 * 32 * 192
    assert p.params == 192 * 32 + 32


def test_linear_macs_batch_in_out_without_bias():
    p = profile(nn.Sequential(nn.Flatten(), nn.Linear(120, 84)), (120, 1, 1), batch_size=7)
    assert p.macs == 7 * 120 * 84
    assert p.layers[1].connections == 7 * 120 * 84 + 7 * 84
    no_bias = profile(nn.Sequential(nn.Flatten(), nn.Linear(120, 84, bias=False)), (120, 1, 1))
    assert no_bias.layers[1].connections == no_bias.macs == 120 * 84


def test_conv1d_family_like_2d():
    model = nn.Sequential(
        nn.Conv1d(1, 16, 7, stride=2, padding=3),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.MaxPool1d(3, stride=2, padding=1),
        nn.Conv1d(16, 32, 3, padding=1, groups=2),
        nn.AvgPool1d(2),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(32, 5),
    )
    p = profile(model, (1, 1000), batch_size=2)
    shapes = [layer.output_shape for layer in p.layers]
    # (1000 + 6 - 7) // 2 + 1 = 500; (500 + 2 - 3) // 2 + 1 = 250; 250 // 2 = 125
    assert shapes == [
        (2, 16, 500), (2, 16, 500), (2, 16, 500), (2, 16, 250), (2, 32, 250), (2, 32, 125),
        (2, 32, 1), (2, 32), (2, 5),
    ]  # fmt: skip
    expected = 2 * 16 * 500 * 1 * 7 + 2 * 32 * 250 * 8 * 3 + 2 * 32 * 5
    assert p.macs == expected
    assert p.unhandled_ops == {}
    assert [layer.type for layer in p.layers][:2] == ["Conv1d", "BatchNorm1d"]


def test_transposed_conv_macs():
    # each input element is multiplied into Cout/groups * k * k outputs
    p = profile(nn.ConvTranspose2d(8, 4, 2, stride=2), (8, 5, 5))
    assert p.layers[0].output_shape == (1, 4, 10, 10)
    assert p.macs == 8 * 5 * 5 * 4 * 2 * 2


# ---------------------------------------------------------------------------------------------
# attribution, parameters, activations


class _Functional(nn.Module):
    """A leaf running two functional convolutions (like LeNet's C3)."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.zeros(4, 3, 3, 3))
        self.w2 = nn.Parameter(torch.zeros(2, 3, 1, 1))

    def forward(self, x):
        return torch.cat([F.conv2d(x, self.w1, padding=1), F.conv2d(x, self.w2)], dim=1)


class _Container(nn.Module):
    """A container that also runs a convolution of its own, and calls a child twice."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.w = nn.Parameter(torch.zeros(6, 6, 1, 1))
        self.leaf = _Functional()

    def forward(self, x):
        x = F.conv2d(self.leaf(x), self.w)  # 6 -> 6 channels, 1x1, in the container itself
        x = x.mean(dim=(2, 3))
        return self.fc(self.fc(x))


def test_functional_ops_are_charged_to_the_innermost_module():
    p = profile(_Container(), (3, 8, 8), batch_size=2)
    names = [(layer.name, layer.type) for layer in p.layers]
    # rows in the order the calls finish: the container's own row after its children
    assert names == [("leaf", "_Functional"), ("fc", "Linear"), ("fc", "Linear"),
                     ("<model>", "_Container")]  # fmt: skip
    leaf, fc1, fc2, own = p.layers
    assert leaf.macs == 2 * 8 * 8 * (4 * 3 * 9 + 2 * 3)
    assert own.macs == 2 * 8 * 8 * 6 * 6
    assert fc1.macs == fc2.macs == 2 * 6 * 6
    assert sum(layer.macs for layer in p.layers) == p.macs
    # a layer called twice: two rows, its parameters counted once
    assert fc1.params == 6 * 6 + 6 and fc2.params == 0
    assert own.params == 36  # the container's own parameter
    assert p.params == 4 * 27 + 2 * 3 + 36 + 42
    assert own.activation_bytes == 0  # its output is the leaves' business


def test_shared_parameters_counted_once():
    a, b = nn.Linear(10, 10), nn.Linear(10, 10)
    b.weight = a.weight
    p = profile(nn.Sequential(a, b), (1, 10))
    assert p.params == 100 + 10 + 10
    assert [layer.params for layer in p.layers] == [110, 10]


def test_activation_bytes_skip_aliases_and_follow_dtype():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.ReLU(), nn.Dropout(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 2),
    )  # fmt: skip
    p = profile(model, (3, 4, 4), batch_size=5)
    per_layer = [layer.activation_bytes for layer in p.layers]
    out = 5 * 8 * 4 * 4 * 4
    # conv allocates; in-place ReLU, eval Dropout and the Flatten view alias their input
    assert per_layer == [out, 0, out, 0, 0, 5 * 2 * 4]
    assert p.activation_bytes == sum(per_layer)
    half = profile(model, (3, 4, 4), batch_size=5, dtype="float16")
    assert half.dtype == "float16"
    assert half.activation_bytes * 2 == p.activation_bytes
    assert half.param_bytes * 2 == p.param_bytes == 4 * p.params


def test_trainable_params_and_real_module_untouched():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(a))
    p = profile(model, (1, 4))
    assert p.params == 12 + 3 + 6 + 2
    assert p.trainable_params == p.params - 12
    # the profile ran on a meta copy (its hooks come along): nothing real ran, and the real
    # module stayed on the CPU in training mode
    assert len(calls) == 1
    _, (x,), out = calls[0]
    assert x.is_meta and out.is_meta
    assert all(t.device.type == "cpu" for t in model.parameters())
    assert model.training


def test_unhandled_ops_are_listed_never_dropped():
    class Erf(nn.Module):
        def forward(self, x):
            return torch.special.erf(x) + torch.special.erf(x)

    p = profile(nn.Sequential(nn.Conv2d(1, 1, 1), Erf()), (1, 4, 4))
    assert p.unhandled_ops == {"aten.erf": 2}
    assert p.macs == 16


def test_frames_and_rollups():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3))  # fmt: skip
    p = profile(model, (3, 8, 8))
    assert isinstance(p, ModelProfile) and isinstance(p.layers[0], LayerStat)
    frame = p.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert frame["output_shape"].tolist()[0] == "1x4x6x6"
    assert frame["cum_params_share"].iloc[-1] == pytest.approx(1.0)
    assert frame["cum_macs_share"].is_monotonic_increasing
    types = p.by_type().set_index("layer_type")
    assert types.loc["Conv2d", "count"] == 2
    assert types.loc["Conv2d", "params"] == (3 * 9 * 4 + 4) + (4 * 9 * 4 + 4)
    assert types["macs_share"].sum() == pytest.approx(1.0)
    assert p.totals() == {k: getattr(p, k) for k in ("params", "trainable_params", "param_bytes",
                                                     "macs", "flops", "activation_bytes",
                                                     "connections")}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# LeNet-5: the 1998 paper's per-layer trainable parameters and connections

LENET_PAPER = {  # layer: (trainable parameters, connections), LeCun et al. 1998, Section II-B
    "c1": (156, 122_304),
    "s2": (12, 5_880),
    "c3": (1_516, 151_600),
    "s4": (32, 2_000),
    "c5": (48_120, 48_120),
    "f6": (10_164, 10_164),
}


def test_lenet5_matches_the_paper_layer_by_layer():
    p = profile("lenet5")
    rows = {layer.name: layer for layer in p.layers}
    for name, (params, connections) in LENET_PAPER.items():
        assert (rows[name].params, rows[name].connections) == (params, connections), name
    assert rows["c3"].type == "SparseConv2d"  # one leaf, sixteen F.conv2d calls summed
    assert rows["c5"].output_shape == (1, 120, 1, 1)
    assert p.trainable_params == sum(v[0] for v in LENET_PAPER.values())  # 60,000


# ---------------------------------------------------------------------------------------------
# VGG-16: the cs231n table and the memory/parameter split

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]  # fmt: skip


def vgg16_rows_from_formula() -> list[tuple[str, int, int]]:
    """(type, activations, params) per conv/pool/FC layer, computed from the architecture:
    3x3 stride-1 pad-1 convs keep the size; 2x2/2 pools halve it."""
    rows, c, hw = [], 3, 224
    for v in VGG16_CFG:
        if v == "M":
            hw //= 2
            rows.append(("MaxPool2d", c * hw * hw, 0))
        else:
            rows.append(("Conv2d", v * hw * hw, 3 * 3 * c * v + v))
            c = v
    rows.append(("AdaptiveAvgPool2d", 512 * 7 * 7, 0))  # torchvision's (identity size at 224)
    for fan_in, fan_out in ((25088, 4096), (4096, 4096), (4096, 1000)):
        rows.append(("Linear", fan_out, fan_in * fan_out + fan_out))
    return rows


@pytest.fixture(scope="module")
def vgg16():
    return profile("vgg16")


def test_vgg16_per_layer_activations_match_the_cs231n_table(vgg16):
    expected = vgg16_rows_from_formula()
    kinds = {"Conv2d", "MaxPool2d", "AdaptiveAvgPool2d", "Linear"}
    got = [(s.type, s.activation_bytes // 4, s.params) for s in vgg16.layers if s.type in kinds]
    assert got == expected
    assert vgg16.layers[0].activation_bytes == 224 * 224 * 64 * 4  # conv1 from the formula
    # every other layer (ReLU in place, Dropout in eval, Flatten) allocates nothing
    assert sum(s.activation_bytes for s in vgg16.layers if s.type not in kinds) == 0
    table_rows = sum(a for _, a, _ in expected)  # about 15.1 M values
    assert vgg16.activation_bytes == 4 * table_rows
    # the notes' "TOTAL memory: 24M * 4 bytes ~= 93MB" does not match their own rows, which
    # (with the 150,528-value input) add up to about 15.2 M values, about 61 MB
    assert 15.0e6 < table_rows + 3 * 224 * 224 < 15.3e6
    assert abs(table_rows - 24e6) > 8e6
    assert vgg16.params == 138_357_544 == sum(p for _, _, p in expected)


def test_vgg16_memory_in_conv_and_pool_params_in_fc(vgg16):
    fc_params = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert fc_params == 123_642_856
    by_type = vgg16.by_type().set_index("layer_type")
    assert by_type.loc["Linear", "params"] == fc_params
    assert by_type.loc["Linear", "params_share"] == pytest.approx(fc_params / 138_357_544)
    assert by_type.loc["Linear", "params_share"] > 0.89
    conv_pool = by_type.loc[["Conv2d", "MaxPool2d", "AdaptiveAvgPool2d"], "activation_share"]
    assert conv_pool.sum() > 0.99
    assert by_type.loc["Linear", "activation_share"] < 0.001
    # cumulatively: half the activation memory is spent within the first three layers
    frame = vgg16.to_frame()
    assert frame.loc[2, "cum_activation_share"] > 0.4
    assert frame.loc[2, "cum_params_share"] < 0.001


def test_vgg16_batch_256_costs_no_real_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    p = profile("vgg16", batch_size=256)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert p.activation_bytes == 256 * 4 * sum(a for _, a, _ in vgg16_rows_from_formula())
    assert p.activation_bytes > 14 * 2**30  # 14.4 GiB of activations, none of it allocated
    assert grown_mib < 200


def test_three_3x3_against_one_7x7():
    c = 64
    stack = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)])
    single = nn.Conv2d(c, c, 7, padding=3, bias=False)
    ps, p1 = profile(stack, (c, 56, 56)), profile(single, (c, 56, 56))
    assert (ps.params, p1.params) == (27 * c * c, 49 * c * c)
    assert ps.macs == 27 * c * c * 56 * 56 and p1.macs == 49 * c * c * 56 * 56


# ---------------------------------------------------------------------------------------------
# the whole zoo


@pytest.mark.parametrize("name", harness.list_models())
def test_zoo_profiles_consistently(name):
    one, three = profile(name), profile(name, batch_size=3)
    assert one.unhandled_ops == {}  # every op met is counted or ignored on purpose
    assert sum(layer.macs for layer in one.layers) == one.macs > 0
    assert one.flops == 2 * one.macs
    assert sum(layer.activation_bytes for layer in one.layers) == one.activation_bytes
    # MACs, connections and activations scale with the batch; parameters do not
    assert three.macs == 3 * one.macs
    assert three.connections == 3 * one.connections
    assert three.activation_bytes == 3 * one.activation_bytes
    assert (three.params, three.param_bytes) == (one.params, one.param_bytes)
    assert one.param_bytes == 4 * one.params
    assert all(layer.output_shape[0] == 3 for layer in three.layers if layer.output_shape)


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn", "googlenet", "resnet1d18"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_batch_norm_meta_matches_torch(name, dtype):
    # the trace's shortcut for native_batch_norm on meta against torch's own meta kernel
    resolved = resolve(name, None, dtype)
    x = torch.empty((2, *resolved.input_shape), device="meta", dtype=dtype)

    def layers(fast: bool) -> list[tuple]:
        result = MetaTracer(resolved.module, fast_meta=fast).run(x)
        return [
            (c.name, tuple(c.output.shape), c.output.dtype, c.output.stride(), c.macs)
            for c in result.calls
        ]

    assert layers(True) == layers(False)
