"""Grid resolution: defaults -> marker -> scale block -> user settings."""

from __future__ import annotations

import itertools

import pytest

from harness.core.errors import InvalidInputError
from harness.core.spec import Case
from harness.run.grid import (
    GridSettings,
    build_cases,
    parse_batch_sizes,
    resolve_spec,
    split_list,
    sweep,
)


def test_split_and_parse_lists():
    assert split_list("1, 8,32") == ("1", "8", "32")
    assert split_list("") is None
    assert parse_batch_sizes("1,8") == (1, 8)
    with pytest.raises(InvalidInputError, match="integers"):
        parse_batch_sizes("1,x")
    with pytest.raises(InvalidInputError, match="from 1 to"):
        parse_batch_sizes("0")


def test_scale_block_overrides_marker_and_settings_override_both():
    marker = {
        "models": ["a:b"],
        "input_shapes": ["3x8x8"],
        "batch_sizes": [1],
        "full": {"batch_sizes": [1, 2, 4]},
    }
    quick = build_cases(marker, GridSettings(scale="quick"), "cpu")
    assert [c.batch_size for c in quick] == [1]
    full = build_cases(marker, GridSettings(scale="full"), "cpu")
    assert [c.batch_size for c in full] == [1, 2, 4]
    user = build_cases(
        marker, GridSettings(scale="full", batch_sizes=(16,), modes=("training",)), "cpu"
    )
    assert [(c.batch_size, c.mode) for c in user] == [(16, "training")]


def test_model_patterns_expand_and_filter():
    marker = {"models": ["resnet*"]}
    names = [c.model for c in build_cases(marker, GridSettings(), "cpu")]
    assert "resnet18" in names and "resnet50" in names
    only = build_cases(marker, GridSettings(models=("resnet18",)), "cpu")
    assert [c.model for c in only] == ["resnet18"]
    assert only[0].input_shape == (3, 224, 224)  # the registry's default input


def test_none_block_means_not_at_this_scale():
    assert (
        build_cases({"models": ["lenet5"], "full": None}, GridSettings(scale="full"), "cpu") == []
    )


def test_bad_marker_keys_and_values_are_clear_errors():
    with pytest.raises(InvalidInputError, match="unknown cnnbench marker key"):
        resolve_spec({"models": ["x"], "batchsizes": [1]}, "quick")
    with pytest.raises(InvalidInputError, match="needs models"):
        resolve_spec({}, "quick")
    with pytest.raises(InvalidInputError, match="no registered model matches"):
        build_cases({"models": ["nosuch*"]}, GridSettings(), "cpu")
    with pytest.raises(InvalidInputError, match="--cnn-compile"):
        build_cases({"models": ["lenet5"]}, GridSettings(compile="maybe"), "cpu")


def test_compile_both_doubles_cases_and_ids_are_distinct():
    cases = build_cases({"models": ["lenet5"]}, GridSettings(compile="both"), "cpu")
    assert [c.compile for c in cases] == [False, True]
    assert len({c.case_id for c in cases}) == 2


def test_sweep_skips_channels_last_for_1d_inputs():
    cases = sweep(
        ["x:y"], input_shapes=["1x100", "3x8x8"], memory_formats=["contiguous", "channels_last"]
    )
    assert [(c.input_shape, c.memory_format) for c in cases] == [
        ((1, 100), "contiguous"),
        ((3, 8, 8), "contiguous"),
        ((3, 8, 8), "channels_last"),
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "at least 1"),
        ({"dtype": "float8"}, "unknown dtype"),
        ({"memory_format": "nhwc"}, "memory format"),
        ({"mode": "eval"}, "unknown mode"),
        ({"input_shape": "3x0x4"}, "not valid"),
    ],
)
def test_case_rejects_bad_values(kwargs, match):
    base = {"model": "lenet5", "input_shape": (1, 32, 32)}
    with pytest.raises(InvalidInputError, match=match):
        Case(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"dtypes": ("float16", "int8")},
            "--cnn-dtypes: unknown dtype 'int8'; use one of float32, float16, bfloat16, float64",
        ),
        (
            {"memory_formats": ("bad",)},
            "--cnn-memory-formats must be one of contiguous, channels_last, got 'bad'",
        ),
        (
            {"modes": ("inference", "foo")},
            "--cnn-modes must be one of inference, training, got 'foo'",
        ),
        ({"compile": "maybe"}, "--cnn-compile must be one of off, on, both, got 'maybe'"),
        ({"dtype_method": "foo"}, "--cnn-dtype-method must be one of autocast, cast, got 'foo'"),
        ({"scale": "huge"}, "unknown scale 'huge'; use one of quick, full"),
    ],
)
def test_settings_are_checked_when_read(settings: dict, message: str) -> None:
    # the plugin turns this error into one usage line at start-up, before any collection
    with pytest.raises(InvalidInputError) as err:
        GridSettings(**settings)
    assert str(err.value) == message


def test_good_settings_pass_and_aliases_are_dtypes() -> None:
    s = GridSettings(dtypes=("bf16", "float32"), modes=("training",), compile="both")
    cases = build_cases({"models": ["lenet5"]}, s, "cpu")
    assert {(c.dtype, c.mode, c.compile) for c in cases} == {
        ("bfloat16", "training", False),
        ("bfloat16", "training", True),
        ("float32", "training", False),
        ("float32", "training", True),
    }


def test_the_cases_of_one_build_follow_each_other() -> None:
    """Issue 22 item 11: batch sizes vary fastest, so a model cache builds each (model, dtype,
    format, mode) once: the build key changes only when the next build starts."""
    from harness.run.grid import sweep

    cases = sweep(
        ["lenet5"],
        batch_sizes=[1, 2, 4],
        dtypes=["float32", "bfloat16"],
        memory_formats=["contiguous", "channels_last"],
        modes=["inference", "training"],
    )
    keys = [(c.dtype, c.memory_format, c.mode) for c in cases]
    changes = sum(a != b for a, b in itertools.pairwise(keys))
    assert len(cases) == 24 and changes == 7  # 8 builds, each once
    assert [c.batch_size for c in cases[:3]] == [1, 2, 4]
