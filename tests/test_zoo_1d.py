"""1D ResNets (resnet1d18, resnet1d_multiscale) against formulas.

Ground truth:
* parameters: Conv1d = Cin * Cout * k (no bias here), BatchNorm = 2 * C (weight and bias; the
  running statistics are buffers), Linear = Cin * Cout + Cout. The ResNet-18 formula is written
  once for any kernel size; with 2D kernels (7x7 = 49, 3x3 = 9), 3 input channels and 1000
  classes it must give torchvision's documented 11,689,512 for resnet18
  (ResNet18_Weights.IMAGENET1K_V1.meta["num_params"]), which checks the formula itself.
* lengths: floor((L - F + 2P) / S) + 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
import torch
from torch import nn

from harness.core.errors import InvalidInputError
from harness.models import get_entry, get_model, list_models
from harness.models.zoo.resnet1d import MultiScaleBlock1d

TORCHVISION_RESNET18_PARAMS = 11_689_512


def out(n: int, f: int, s: int = 1, p: int = 0) -> int:
    return (n - f + 2 * p) // s + 1


def conv_bn(cin: int, cout: int, k: int) -> int:
    return cin * cout * k + 2 * cout


def shortcut(cin: int, cout: int, stride: int) -> int:
    return conv_bn(cin, cout, 1) if stride != 1 or cin != cout else 0


def resnet18_params(in_channels: int, num_classes: int, stem_k: int, k: int) -> int:
    """ResNet-18 with ``stem_k`` weights per stem filter per channel and ``k`` in the blocks."""
    total = conv_bn(in_channels, 64, stem_k)
    cin = 64
    for width, first_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for stride in (first_stride, 1):
            total += (
                conv_bn(cin, width, k) + conv_bn(width, width, k) + shortcut(cin, width, stride)
            )
            cin = width
    return total + 512 * num_classes + num_classes


def multiscale_params(
    in_channels: int,
    num_classes: int,
    kernel_sizes: Sequence[int],
    widths: Sequence[int],
    blocks: Sequence[int],
    fusion: str,
) -> int:
    total = conv_bn(in_channels, 64, 7)
    cin = 64
    for width, count in zip(widths, blocks, strict=True):
        for stride in (2, *([1] * (count - 1))):
            total += sum(conv_bn(cin, width, k) + conv_bn(width, width, k) for k in kernel_sizes)
            if fusion == "concat":
                total += conv_bn(len(kernel_sizes) * width, width, 1)
            total += shortcut(cin, width, stride)
            cin = width
    return total + cin * num_classes + num_classes


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return get_model(name, **kwargs).eval()


def test_registered_with_ecg_like_default_input() -> None:
    assert {"resnet1d18", "resnet1d_multiscale"} <= set(list_models("resnet1d*"))
    for name in ("resnet1d18", "resnet1d_multiscale"):
        entry = get_entry(name)
        assert entry.input_shape == (1, 5000)
        assert entry.min_input_shape == (1, 1)


def test_resnet18_formula_matches_torchvision_in_2d() -> None:
    assert resnet18_params(3, 1000, 7 * 7, 3 * 3) == TORCHVISION_RESNET18_PARAMS


@pytest.mark.parametrize(("in_channels", "num_classes"), [(1, 5), (12, 5), (1, 1000)])
def test_resnet1d18_params(in_channels: int, num_classes: int) -> None:
    model = meta_model("resnet1d18", in_channels=in_channels, num_classes=num_classes)
    assert n_params(model) == resnet18_params(in_channels, num_classes, 7, 3)
    assert all(p.is_meta for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"fusion": "sum"},
        {"kernel_sizes": (3, 9, 15, 31), "in_channels": 12, "num_classes": 27},
        {"kernel_sizes": (5,), "widths": (32, 64, 128, 256), "blocks": (2, 2, 2, 2)},
    ],
)
def test_resnet1d_multiscale_params(kwargs: dict) -> None:
    config = {
        "in_channels": 1,
        "num_classes": 5,
        "kernel_sizes": (3, 5, 7),
        "widths": (64, 128, 256),
        "blocks": (1, 1, 1),
        "fusion": "concat",
        **kwargs,
    }
    model = meta_model("resnet1d_multiscale", **kwargs)
    assert n_params(model) == multiscale_params(**config)
    assert all(p.is_meta for p in model.parameters())


def test_kernel_sizes_are_the_branch_kernels() -> None:
    model = meta_model("resnet1d_multiscale", kernel_sizes=(3, 11))
    blocks = [m for m in model.modules() if isinstance(m, MultiScaleBlock1d)]
    assert len(blocks) == 3
    for block in blocks:
        kernels = [
            [c.kernel_size[0] for c in b if isinstance(c, nn.Conv1d)] for b in block.branches
        ]
        assert kernels == [[3, 3], [11, 11]]
        assert [b[0].padding[0] for b in block.branches] == [1, 5]


def record_lengths(model: nn.Module, length: int, names: Sequence[str]) -> dict[str, int]:
    seen: dict[str, int] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_hook(lambda _m, _i, o, n=n: seen.__setitem__(n, o.shape[-1]))
        for n in names
    ]
    try:
        y = model(torch.empty(2, model.conv1.in_channels, length, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    seen["output"] = tuple(y.shape)
    return seen


@pytest.mark.parametrize("length", [5000, 1000, 37, 2, 1])
def test_resnet1d18_lengths(length: int) -> None:
    stem = out(out(length, 7, 2, 3), 3, 2, 1)
    l2 = out(stem, 3, 2, 1)
    l3 = out(l2, 3, 2, 1)
    l4 = out(l3, 3, 2, 1)
    model = meta_model("resnet1d18")
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    seen = record_lengths(model, length, names)
    expected = [out(length, 7, 2, 3), stem, stem, l2, l3, l4]
    assert [seen[n] for n in names] == expected
    assert seen["output"] == (2, 5)
    if length == 5000:
        assert expected == [2500, 1250, 1250, 625, 313, 157]


@pytest.mark.parametrize("length", [5000, 999, 1])
def test_multiscale_branches_keep_equal_lengths(length: int) -> None:
    model = meta_model("resnet1d_multiscale")
    names = [f"layer{i}.0.branches.{b}" for i in (1, 2, 3) for b in range(3)]
    seen = record_lengths(model, length, [*names, "layer1", "layer2", "layer3"])
    stem = out(out(length, 7, 2, 3), 3, 2, 1)
    expected = {"layer1": out(stem, 3, 2, 1)}
    expected["layer2"] = out(expected["layer1"], 3, 2, 1)
    expected["layer3"] = out(expected["layer2"], 3, 2, 1)
    for i in (1, 2, 3):
        for b, k in enumerate((3, 5, 7)):
            # conv k, stride 2, pad k // 2 then conv k, stride 1, pad k // 2: odd k agree
            first = out(stem if i == 1 else expected[f"layer{i - 1}"], k, 2, k // 2)
            assert seen[f"layer{i}.0.branches.{b}"] == out(first, k, 1, k // 2)
            assert seen[f"layer{i}.0.branches.{b}"] == expected[f"layer{i}"]
        assert seen[f"layer{i}"] == expected[f"layer{i}"]
    assert seen["output"] == (2, 5)


def smallest_length() -> int:
    """Smallest L for which every layer's output length (same padding throughout) is >= 1."""
    for length in range(0, 100):
        stem = out(out(length, 7, 2, 3), 3, 2, 1)
        sizes = [out(length, 7, 2, 3), stem]
        for _ in range(4):
            sizes.append(out(sizes[-1], 3, 2, 1))
        for k in (3, 5, 7):
            sizes.append(out(stem, k, 2, k // 2))
        if min(sizes) >= 1:
            return length
    raise AssertionError("no length found")


@pytest.mark.parametrize("name", ["resnet1d18", "resnet1d_multiscale"])
def test_min_input_length(name: str) -> None:
    n = smallest_length()
    assert (1, n) == get_entry(name).min_input_shape == (1, 1)
    model = meta_model(name)
    assert model(torch.empty(1, 1, n, device="meta")).shape == (1, 5)
    with pytest.raises(RuntimeError):
        model(torch.empty(1, 1, n - 1, device="meta"))


@pytest.mark.parametrize(
    "name_kwargs",
    [("resnet1d18", {}), ("resnet1d_multiscale", {}), ("resnet1d_multiscale", {"fusion": "sum"})],
)
def test_real_forward_and_backward_on_a_short_signal(name_kwargs: tuple[str, dict]) -> None:
    name, kwargs = name_kwargs
    torch.manual_seed(0)
    model = get_model(name, in_channels=2, num_classes=3, **kwargs)
    x = torch.randn(4, 2, 256)
    y = model(x)  # training mode: batch statistics
    assert y.shape == (4, 3) and torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.inference_mode():
        y = model(torch.randn(1, 2, 1))  # the minimum length, one sample
    assert y.shape == (1, 3) and torch.isfinite(y).all()


def test_multiscale_block_concat_and_sum() -> None:
    """Concat: fuse(cat(branches)) + shortcut; sum: sum(branches) + shortcut; then ReLU."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 20)
    for fusion in ("concat", "sum"):
        block = MultiScaleBlock1d(8, 16, (3, 5), stride=2, fusion=fusion).eval()
        with torch.no_grad():
            outs = [b(x) for b in block.branches]
            joined = block.fuse(torch.cat(outs, 1)) if fusion == "concat" else outs[0] + outs[1]
            expected = torch.relu(joined + block.downsample(x))
            torch.testing.assert_close(block(x), expected)
        assert expected.shape == (2, 16, out(20, 3, 2, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_sizes": (3, 4)},
        {"kernel_sizes": ()},
        {"fusion": "max"},
        {"widths": (64, 128), "blocks": (1,)},
        {"blocks": (1, 0, 1)},
        {"num_classes": 0},
    ],
)
def test_bad_arguments_raise_typed_errors(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        meta_model("resnet1d_multiscale", **kwargs)


# --- the profiler and input validation on 1D models ------------------------------------------


def resnet1d18_convs(length: int) -> dict[str, tuple[int, int, int, int]]:
    """Every Conv1d of resnet1d18: name -> (Cin, Cout, k, output length), by formula."""
    convs = {"conv1": (1, 64, 7, out(length, 7, 2, 3))}
    lin, cin = out(convs["conv1"][3], 3, 2, 1), 64
    for i, (width, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
        lout = out(lin, 3, stride, 1)
        convs[f"layer{i}.0.conv1"] = (cin, width, 3, lout)
        convs[f"layer{i}.0.conv2"] = (width, width, 3, lout)
        if stride != 1 or cin != width:
            convs[f"layer{i}.0.downsample.0"] = (cin, width, 1, out(lin, 1, stride))
        convs[f"layer{i}.1.conv1"] = (width, width, 3, lout)
        convs[f"layer{i}.1.conv2"] = (width, width, 3, lout)
        lin, cin = lout, width
    return convs


def multiscale_convs(length: int, kernel_sizes: Sequence[int]) -> dict[str, tuple]:
    """Every Conv1d of resnet1d_multiscale (default widths, concat): name -> (Cin, Cout, k, L)."""
    convs = {"conv1": (1, 64, 7, out(length, 7, 2, 3))}
    lin, cin = out(convs["conv1"][3], 3, 2, 1), 64
    for i, width in enumerate((64, 128, 256), start=1):
        lout = out(lin, 3, 2, 1)
        for b, k in enumerate(kernel_sizes):
            convs[f"layer{i}.0.branches.{b}.0"] = (cin, width, k, out(lin, k, 2, k // 2))
            convs[f"layer{i}.0.branches.{b}.3"] = (width, width, k, lout)
        convs[f"layer{i}.0.fuse.0"] = (len(kernel_sizes) * width, width, 1, lout)
        convs[f"layer{i}.0.downsample.0"] = (cin, width, 1, out(lin, 1, 2))
        lin, cin = lout, width
    return convs


@pytest.fixture(scope="module")
def profile_fn():
    from harness.profile import profile  # imported here so only these tests need it

    return profile


@pytest.mark.parametrize(
    ("name", "kwargs", "expected_convs", "features"),
    [
        ("resnet1d18", {}, lambda n: resnet1d18_convs(n), 512),
        ("resnet1d_multiscale", {}, lambda n: multiscale_convs(n, (3, 5, 7)), 256),
    ],
)
@pytest.mark.parametrize(("length", "batch"), [(5000, 2), (1, 3)])
def test_profile_1d_layers_follow_the_formulas(
    profile_fn, name, kwargs, expected_convs, features, length: int, batch: int
) -> None:
    """Conv1d MACs = N * Cout * Lout * Cin / groups * k; output lengths by the formula."""
    prof = profile_fn(name, input_shape=(1, length), batch_size=batch)
    convs = {s.name: s for s in prof.layers if s.type == "Conv1d"}
    expected = expected_convs(length)
    assert set(convs) == set(expected)
    for layer, (cin, cout, k, lout) in expected.items():
        stat = convs[layer]
        assert stat.output_shape == (batch, cout, lout), layer
        assert stat.macs == batch * cout * lout * cin * k, layer
        assert stat.params == cin * cout * k, layer
        assert stat.activation_bytes == batch * cout * lout * 4, layer  # float32
    # each BatchNorm1d keeps the shape of the conv it follows
    rows = prof.layers
    for prev, stat in itertools.pairwise(rows):
        if stat.type == "BatchNorm1d":
            assert prev.type == "Conv1d" and stat.output_shape == prev.output_shape
            assert stat.params == 2 * prev.output_shape[1]
    pools = {s.type: s.output_shape for s in rows if "Pool" in s.type}
    stem = out(out(length, 7, 2, 3), 3, 2, 1)
    assert pools == {"MaxPool1d": (batch, 64, stem), "AdaptiveAvgPool1d": (batch, features, 1)}
    (fc,) = [s for s in rows if s.type == "Linear"]
    assert fc.output_shape == (batch, 5) and fc.macs == batch * features * 5
    conv_macs = sum(batch * cout * lout * cin * k for cin, cout, k, lout in expected.values())
    assert prof.macs == conv_macs + fc.macs and prof.flops == 2 * prof.macs
    assert prof.params == n_params(get_model(name, **kwargs))
    assert prof.unhandled_ops == {}
    frame = prof.to_frame()
    assert frame.loc[frame.layer_name == "conv1", "output_shape"].item() == (
        f"{batch}x64x{out(length, 7, 2, 3)}"
    )


def test_profile_1d_activation_bytes_follow_dtype(profile_fn) -> None:
    prof = profile_fn("resnet1d18", input_shape="1x5000", batch_size=1, dtype="float16")
    conv1 = next(s for s in prof.layers if s.name == "conv1")
    assert conv1.activation_bytes == 64 * 2500 * 2


@pytest.fixture(scope="module")
def validate_fns():
    from harness.profile import smallest_input, validate_input

    return validate_input, smallest_input


def unpadded_1d_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 4, 7),
        nn.ReLU(),
        nn.MaxPool1d(4),
        nn.Conv1d(4, 8, 5, stride=2),
        nn.AdaptiveAvgPool1d(1),
    )


def test_validate_input_too_short_1d(validate_fns) -> None:
    from harness.core.errors import InputTooSmallError

    validate_input, smallest_input = validate_fns
    lengths = {
        n: [out(n, 7), out(out(n, 7), 4, 4), out(out(out(n, 7), 4, 4), 5, 2)] for n in range(1, 100)
    }
    n_min = min(n for n, sizes in lengths.items() if min(sizes) >= 1)
    assert n_min == 26
    model = unpadded_1d_net()
    validate_input(model, (1, n_min))
    with pytest.raises(InputTooSmallError, match=r"layer 3 \(Conv1d\)"):
        validate_input(model, (1, n_min - 1))
    with pytest.raises(InputTooSmallError, match=r"layer 0 \(Conv1d\)"):
        validate_input(model, (1, 6))
    assert smallest_input(model, channels=1, rank=1) == (1, n_min)


@pytest.mark.parametrize("name", ["resnet1d18", "resnet1d_multiscale"])
def test_validate_input_on_1d_zoo(validate_fns, name: str) -> None:
    validate_input, smallest_input = validate_fns
    validate_input(name, "1x1")
    validate_input(name, "1x5000", batch_size=4)
    assert smallest_input(name) == get_entry(name).min_input_shape
    with pytest.raises(InvalidInputError, match="1 input channel"):
        validate_input(name, "3x5000")
    with pytest.raises(InvalidInputError, match="CxL"):
        validate_input(name, "1x224x224")
