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

from collections.abc import Sequence

import pytest
import torch
from torch import nn

from harness.errors import InvalidInputError
from harness.models import get_entry, get_model, list_models
from harness.zoo.resnet1d import MultiScaleBlock1d

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
