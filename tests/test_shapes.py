"""Input validation: the output-size formula, and one typed, fixable error per bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import harness
from harness.core.errors import (
    HarnessError,
    InputTooSmallError,
    InvalidInputError,
    UnknownModelError,
)
from harness.core.spec import parse_shape
from harness.models import get_entry
from harness.profile import profile, smallest_input, validate_input
from harness.profile.shapes import formula_text, output_size

# ---------------------------------------------------------------------------------------------
# the formula (N - F + 2P) / S + 1


def test_output_size_examples_of_the_notes():
    assert output_size(32, 5) == 28  # a 5x5 filter on 32x32 at stride 1
    for f in (1, 3, 5, 7, 11):
        assert output_size(224, f, 1, (f - 1) // 2) == 224  # pad (F-1)/2 keeps the size
    assert output_size(227, 11, 4) == 55  # AlexNet conv1
    assert output_size(7, 3, 2) == 3  # (7 - 3)/2 + 1


@pytest.mark.parametrize(
    ("n", "k", "s", "p", "d"),
    [c for c in itertools.product((5, 6, 7, 10), (1, 2, 3), (1, 2, 3), (0, 1), (1, 2))
     if c[3] <= c[1] // 2],
)  # fmt: skip
def test_output_size_agrees_with_torch(n, k, s, p, d):
    x = torch.zeros(1, 1, n)
    expected_conv = (
        F.conv1d(x, torch.zeros(1, 1, k), stride=s, padding=p, dilation=d).shape[-1]
        if n + 2 * p >= d * (k - 1) + 1
        else 0
    )
    assert max(output_size(n, k, s, p, d), 0) == expected_conv
    for ceil_mode in (False, True):
        if n + 2 * p < d * (k - 1) + 1:
            continue
        pooled = F.max_pool1d(x, k, s, p, d, ceil_mode=ceil_mode).shape[-1]
        assert output_size(n, k, s, p, d, ceil_mode) == pooled, ceil_mode


def test_formula_text_shows_the_arithmetic():
    assert formula_text(1, 3, 2, 0) == "floor((1 - 3 + 2*0)/2) + 1 = 0"
    assert formula_text(32, 5, 1, 0) == "floor((32 - 5 + 2*0)/1) + 1 = 28"
    assert formula_text(4, 3, 1, 0, dilation=2) == "floor((4 - (2*(3 - 1) + 1) + 2*0)/1) + 1 = 0"
    assert formula_text(5, 2, 2, 0, ceil_mode=True) == "ceil((5 - 2 + 2*0)/2) + 1 = 3"


# ---------------------------------------------------------------------------------------------
# too small


def test_alexnet_at_32_is_too_small_and_names_the_layer():
    # conv1 11/4 p2: 7; pool 3/2: 3; conv2 p2: 3; pool: 1; conv3-5 p1: 1; pool features.12: 0
    with pytest.raises(InputTooSmallError) as err:
        validate_input("alexnet", (3, 32, 32))
    msg = str(err.value)
    assert "input 3x32x32 is too small for alexnet" in msg
    assert "layer features.12 (MaxPool2d) gets 1x256x1x1" in msg
    assert "floor((1 - 3 + 2*0)/2) + 1 = 0" in msg
    # (63 - 11 + 4)/4 + 1 = 15 -> 7 -> 7 -> 3 -> 3 -> 1, and 62 gives 14 -> 6 -> 2 -> 0
    assert "the smallest input this model accepts is 3x63x63" in msg
    assert "--input 3x63x63" in msg


def test_lenet5_at_16_is_too_small():
    # C1: 12, S2: 6, C3: 2, S4: 1, C5 (5x5) on 1x1: floor((1 - 5)/1) + 1 = -3
    with pytest.raises(InputTooSmallError, match=r"layer c5 \(Conv2d\) gets 1x16x1x1"):
        validate_input("lenet5", "1x16x16")
    # profile() raises the same error, from the same propagation
    with pytest.raises(InputTooSmallError, match="smallest input this model accepts is 1x32x32"):
        profile("lenet5", (1, 16, 16), batch_size=64)


def test_functional_conv_inside_a_module_is_checked():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2, 1, 5, 5))

        def forward(self, x):
            return F.conv2d(x, self.w)

    with pytest.raises(InputTooSmallError) as err:
        validate_input(nn.Sequential(Functional()), (1, 4, 9))
    msg = str(err.value)
    assert "layer 0 (Functional) gets 1x1x4x9" in msg
    assert "height as floor((4 - 5 + 2*0)/1) + 1 = 0" in msg
    assert "smallest input this model accepts is 1x5x5" in msg


def test_one_dimensional_too_small_names_the_length():
    model = nn.Sequential(nn.Conv1d(1, 4, 7, stride=2), nn.MaxPool1d(3, 2), nn.Conv1d(4, 4, 5))
    with pytest.raises(InputTooSmallError) as err:
        validate_input(model, (1, 20))
    # conv: (20 - 7)/2 + 1 = 7; pool: (7 - 3)/2 + 1 = 3; conv 5 on 3: -1
    assert "layer 2 (Conv1d) gets 1x4x3 and computes its output length as " in str(err.value)
    assert "floor((3 - 5 + 2*0)/1) + 1 = -1" in str(err.value)
    # 25: 10 -> 4 -> 0 fails; 27: 11 -> 5 -> 1 passes, 26: 10 -> 4 -> 0 fails
    assert "smallest input this model accepts is 1x27" in str(err.value)
    validate_input(model, (1, 27))


def test_ceil_mode_pooling():
    model = nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True), nn.MaxPool2d(3, 2))
    validate_input(model, (1, 6, 6))  # ceil((6-3)/2)+1 = 3, then (3-3)/2+1 = 1
    with pytest.raises(InputTooSmallError, match=r"layer 1 \(MaxPool2d\) gets 1x1x2x2"):
        validate_input(model, (1, 4, 4))  # ceil((4-3)/2)+1 = 2, then floor(-1/2)+1 = 0


@pytest.mark.parametrize("name", harness.list_models())
def test_smallest_input_matches_the_registry(name):
    # the zoo's declared minimum against shape propagation: two independent derivations
    assert smallest_input(name) == get_entry(name).min_input_shape


def test_smallest_input_of_a_fixed_size_classifier():
    # the flattened 16x5x5 map must be exactly 400 features: only 32..33 fit, 32 is smallest
    model = nn.Sequential(nn.Conv2d(1, 16, 5), nn.MaxPool2d(2), nn.Conv2d(16, 16, 5),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 10))  # fmt: skip
    assert smallest_input(model, channels=1) == (1, 32, 32)


# ---------------------------------------------------------------------------------------------
# wrong channels, rank, features, batch, dtype, model


def test_wrong_channels_names_the_first_layer():
    with pytest.raises(InvalidInputError) as err:
        validate_input("resnet18", (1, 224, 224))
    assert type(err.value) is InvalidInputError
    msg = str(err.value)
    assert "resnet18 expects 3 input channels (first layer conv1: Conv2d(3, 64," in msg
    assert "got 1" in msg and "e.g. 3x224x224" in msg


def test_wrong_rank_for_a_2d_model():
    with pytest.raises(InvalidInputError, match=r"takes CxHxW inputs .* such as 3x224x224"):
        validate_input("vgg11", (3, 224))


def test_wrong_rank_for_a_1d_model():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.AdaptiveAvgPool1d(1))
    with pytest.raises(InvalidInputError, match=r"takes CxL inputs \(its first layer 0 is Conv1d"):
        validate_input(model, (1, 64, 64))


def test_fixed_size_classifier_at_another_size():
    with pytest.raises(InvalidInputError) as err:
        validate_input("alexnet_original", (3, 300, 300))
    assert type(err.value) is InvalidInputError
    assert "expects 9216 input features" in str(err.value)
    assert "the default input is 3x227x227" in str(err.value)


@pytest.mark.parametrize("batch", [0, -1, 1.5, True, "8"])
def test_bad_batch_size(batch):
    with pytest.raises(InvalidInputError, match="batch size"):
        validate_input("lenet5", (1, 32, 32), batch_size=batch)


@pytest.mark.parametrize("dtype", ["int8", "float8", torch.int32])
def test_unknown_dtype(dtype):
    with pytest.raises(InvalidInputError, match=r"dtype .* use one of float32"):
        validate_input("lenet5", (1, 32, 32), dtype=dtype)


@pytest.mark.parametrize("shape", ["3x224", "3xabc", (3, 0, 224), (1, 3, 224, 224)])
def test_malformed_shapes(shape):
    with pytest.raises(InvalidInputError, match="CxHxW"):
        validate_input("vgg11", shape)


def test_unknown_model_and_module_without_shape():
    with pytest.raises(UnknownModelError, match="closest: resnet18"):
        validate_input("resnet18x", (3, 224, 224))
    with pytest.raises(InvalidInputError, match="pass input_shape"):
        validate_input(nn.Conv2d(3, 3, 1), None)
    with pytest.raises(InvalidInputError, match=r"model name or an nn\.Module"):
        validate_input(42, (3, 8, 8))  # type: ignore[arg-type]


def test_other_forward_failures_name_the_last_layer():
    class Reshape(nn.Module):
        def forward(self, x):
            return x.view(-1, 100)

    with pytest.raises(InvalidInputError) as err:
        validate_input(nn.Sequential(nn.Conv2d(3, 3, 1), Reshape()), (3, 3, 3))
    assert "at layer 1 (Reshape) with input 1x3x3x3" in str(err.value)
    assert "RuntimeError" in str(err.value)


def test_validation_runs_nothing_real():
    model = nn.Conv2d(3, 8, 3)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].device.type))
    with pytest.raises(InputTooSmallError):
        validate_input(model, (3, 2, 2), batch_size=10**6)  # 10^6 images: still nothing real
    assert seen and set(seen) == {"meta"}  # the check, then the search for the smallest input
    assert model.weight.device.type == "cpu"


def test_every_error_is_a_harness_error_with_a_fix():
    bad = [
        ("alexnet", (3, 32, 32), 1, "float32"),
        ("resnet18", (1, 224, 224), 1, "float32"),
        ("vgg11", (3, 224), 1, "float32"),
        ("lenet5", (1, 32, 32), 0, "float32"),
        ("lenet5", (1, 32, 32), 1, "int4"),
    ]
    for args in bad:
        with pytest.raises(HarnessError) as err:
            validate_input(*args)
        msg = str(err.value)
        assert any(w in msg for w in ("pass", "give", "use one of")), msg
        assert "\n" not in msg


def test_channels_last_input_is_told_to_put_channels_first():
    # 224x224x3 reads as C=224: the fix is the same sizes with the 3 moved to the front
    with pytest.raises(InvalidInputError) as err:
        validate_input("vgg16", "224x224x3")
    assert str(err.value).endswith("got 224: give an input with 3 channels, e.g. 3x224x224 "
                                   "(channels first, not last)")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "shape"),
    [("3x224x224", (3, 224, 224)), ("3, 224, 224", (3, 224, 224)), ("3 224 224", (3, 224, 224)),
     ("1X5000", (1, 5000)), ("3*32*32", (3, 32, 32))],
)  # fmt: skip
def test_shape_spellings(text: str, shape: tuple[int, ...]):
    assert parse_shape(text) == shape


def test_a_shape_with_the_batch_says_to_drop_it():
    with pytest.raises(InvalidInputError) as err:
        parse_shape("8x3x224x224")
    assert str(err.value) == (
        "input shape 8x3x224x224 has 4 dimensions: give CxHxW without the batch, e.g. 3x224x224 "
        "(the batch size is set apart: --batch, batch_sizes)"
    )


# ---------------------------------------------------------------------------------------------
# absurd sizes and a model whose own code fails: one typed line, never a torch traceback


def test_a_shape_no_tensor_can_hold_is_refused_when_read():
    # 3 * 99999999999999999999 * 2 = 6e20 values > 2**60, the most a tensor of 8-byte values
    # can address in 2**63 bytes (torch's sizes are int64)
    with pytest.raises(InvalidInputError) as err:
        parse_shape("3x99999999999999999999x2")
    assert str(err.value).startswith(
        "input shape 3x99999999999999999999x2 is too large: one sample holds 6e+20 values"
    )
    assert parse_shape((1, 2**30, 2**30)) == (1, 2**30, 2**30)  # 2**60 values: the largest


@pytest.mark.parametrize(
    ("batch", "dtype"), [(10**16, "float32"), (2**63, "float32"), (2**61 // 1024 + 1, "float64")]
)
def test_a_batch_no_tensor_can_hold_is_refused_before_tracing(batch, dtype):
    # lenet5 takes 1x32x32 = 1024 values a sample; 10**16 samples of 4 bytes = 4.1e19 bytes
    with pytest.raises(InvalidInputError, match="more than one tensor can hold") as err:
        validate_input("lenet5", None, batch_size=batch, dtype=dtype)
    assert "\n" not in str(err.value) and "--batch" in str(err.value)
    # the largest input that fits (2**61 - 1024 values of 4 bytes, 2**63 - 4096 bytes) passes
    # this check; lenet5's first convolution then makes 6 x 28 x 28 values of each sample,
    # which no tensor holds: also one line, naming the layer
    with pytest.raises(InvalidInputError) as err:
        validate_input("lenet5", None, batch_size=2**61 // 1024 - 1, dtype="float32")
    assert str(err.value) == (
        f"lenet5 at batch {2**61 // 1024 - 1} on input 1x32x32: layer c1 (Conv2d) with input "
        f"{2**61 // 1024 - 1}x1x32x32 would output more than one tensor can hold (2**63 bytes): "
        "pass a smaller batch size (--batch) or input"
    )


def test_a_factory_that_raises_is_one_typed_line():
    from harness.core.errors import ModelBuildError
    from harness.models import register_model, unregister_model

    @register_model("shapes_raising_net", input_shape=(3, 8, 8))
    def raising_net():
        raise ValueError("weights file missing\nsecond line")

    try:
        for call in (
            lambda: validate_input("shapes_raising_net", None),
            lambda: profile("shapes_raising_net"),
            lambda: smallest_input("shapes_raising_net"),
        ):
            with pytest.raises(ModelBuildError) as err:
                call()
            where = f"{raising_net.__module__}:{raising_net.__qualname__}"
            assert str(err.value) == (
                "model 'shapes_raising_net': building it raised ValueError: weights file "
                f"missing; fix its factory ({where}) or name another model"
            )
    finally:
        unregister_model("shapes_raising_net")
