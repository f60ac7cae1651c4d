"""Shards: the split is a pure function of the grid (any order, any process), balanced by the
cost model on the full GPU grid, a model's cases together where that keeps the balance, every
case on exactly one shard; bad shard specs are one clear line."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from harness.cluster.cost import (
    CASE_OVERHEAD_S,
    LAUNCH_S,
    RATE,
    CostModel,
    Timing,
    Work,
)
from harness.cluster.shard import parse_shard, plan, plan_key, row_key
from harness.core.errors import InvalidInputError
from harness.core.spec import Case
from harness.run.grid import GridSettings, build_cases

ROOT = Path(__file__).resolve().parents[1]

# MACs per sample and leaf layers at each model's default input (`cnnbench profile NAME`,
# batch 1), so the balance test needs no tracing: the cost model's formula on these numbers.
WORK = {
    "alexnet": (7.142e08, 21), "alexnet_original": (7.244e08, 22), "googlenet": (1.498e09, 130),
    "inception_3a": (1.28e08, 13), "inception_3a_naive": (3.035e08, 7),
    "inception_resnet_v1": (6.206e09, 368), "inception_resnet_v2": (1.316e10, 700),
    "inception_resnet_v2_paper": (9.258e09, 384), "inception_v4": (1.225e10, 469),
    "lenet5": (3.328e05, 14), "plain18": (1.795e09, 54), "plain34": (3.644e09, 102),
    "preact_resnet18": (1.814e09, 57), "resnet101": (7.801e09, 311),
    "resnet152": (1.151e10, 464), "resnet18": (1.814e09, 60), "resnet1d18": (8.536e08, 60),
    "resnet1d_multiscale": (4.89e08, 66), "resnet34": (3.664e09, 108),
    "resnet50": (4.089e09, 158), "vgg11": (7.609e09, 29), "vgg11_bn": (7.609e09, 37),
    "vgg11_lrn": (7.609e09, 30), "vgg13": (1.131e10, 33), "vgg13_bn": (1.131e10, 43),
    "vgg16": (1.547e10, 39), "vgg16_bn": (1.547e10, 52), "vgg16_c": (1.177e10, 39),
    "vgg19": (1.963e10, 45), "vgg19_bn": (1.963e10, 61), "zfnet": (1.168e09, 22),
}  # fmt: skip


def table_work(model: str, input_shape: tuple[int, ...]) -> Work:
    return Work(*WORK[model])


def full_gpu_grid() -> list[Case]:
    """The classic suite's grid at --cnn-scale=full on a GPU (every test function's)."""
    spec = importlib.util.spec_from_file_location("classic", ROOT / "suites/test_classic_cnns.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    cases = []
    for fn in (suite.test_inference, suite.test_batch_and_layout, suite.test_training):
        marker = fn.pytestmark[0]
        cases += build_cases(marker.kwargs, GridSettings(scale="full"), "cuda")
    return cases


@pytest.fixture(scope="module")
def grid() -> list[Case]:
    return full_gpu_grid()


@pytest.mark.parametrize("count", [2, 3, 4, 8, 16, 32])
def test_the_full_gpu_grid_is_balanced_within_1_3x_of_the_mean(grid, count):
    p = plan(grid, count, CostModel(Timing(), work=table_work))
    assert len(p.loads) == count
    mean = sum(p.loads) / count
    assert max(p.loads) <= 1.3 * mean, (count, p.loads)
    assert sorted(p.shard_of) == sorted({plan_key(c) for c in grid})  # every case, once
    assert set(p.shard_of.values()) == set(range(1, count + 1))


@pytest.mark.parametrize("count", [2, 4, 8])
def test_a_models_cases_stay_on_one_shard_where_the_balance_allows(grid, count):
    p = plan(grid, count, CostModel(Timing(), work=table_work))
    shards_of_model: dict[str, set[int]] = {}
    for c in grid:
        shards_of_model.setdefault(c.model, set()).add(p.shard(c))
    assert all(len(s) == 1 for s in shards_of_model.values())


def test_split_models_stay_together_per_model_cache_key(grid):
    """At 16 and 24 shards models are split, but no (model, input, dtype, layout, mode) group:
    those differ only in batch size, and the model cache holds across them."""
    for count in (16, 24):
        _cache_groups_whole(grid, count)


def _cache_groups_whole(grid: list[Case], count: int) -> None:
    p = plan(grid, count, CostModel(Timing(), work=table_work))
    by_model: dict[str, set[int]] = {}
    by_key: dict[tuple, set[int]] = {}
    for c in grid:
        by_model.setdefault(c.model, set()).add(p.shard(c))
        key = (c.model, c.dtype, c.memory_format, c.mode, c.compile)
        by_key.setdefault(key, set()).add(p.shard(c))
    assert any(len(s) > 1 for s in by_model.values())  # models were split...
    assert all(len(s) == 1 for s in by_key.values())  # ...by cache key, not further


def test_the_plan_is_the_same_in_any_order_and_for_cuda_or_cuda_0(grid):
    cost = CostModel(Timing(), work=table_work)
    first = plan(grid, 8, cost)
    shuffled = list(grid)
    random.Random(1).shuffle(shuffled)
    assert plan(shuffled, 8, cost) == first
    on_cuda0 = [Case(**{**c.__dict__, "device": "cuda:0"}) for c in grid]
    assert plan(on_cuda0, 8, cost).shard_of == first.shard_of
    assert plan(grid + grid[:50], 8, cost) == first  # a case two tests select counts once


def test_more_shards_than_cases_leaves_some_empty():
    cases = [Case("lenet5", (1, 32, 32), batch_size=b) for b in (1, 2)]
    p = plan(cases, 5)
    assert sorted(p.shard_of.values()) == [1, 2]
    assert p.cases(5) == []


def test_the_cost_formula_by_hand():
    """A training float16 case on a GPU: 3 passes of (launch per layer + 2 * macs * batch /
    rate), rounds at least 50 for a 1% interval, warm-up 10 rounds, capped at 30 s."""
    timing = Timing(warmup_rounds=10, warmup_time_s=0.2, min_rounds=20, min_time_s=1.0,
                    max_time_s=30.0, ci_target=0.01)  # fmt: skip
    model = CostModel(timing, work=lambda m, s: Work(4e9, 100))
    case = Case("resnet50", (3, 224, 224), batch_size=64, dtype="float16", mode="training",
                device="cuda")  # fmt: skip
    step = 3 * (100 * LAUNCH_S["cuda"] + 2 * 4e9 * 64 / RATE[("cuda", "float16")])
    expected = CASE_OVERHEAD_S + max(10 * step, 0.2) + min(max(50 * step, 1.0), 30.0)
    assert model(case) == pytest.approx(expected)
    cpu = Case("resnet50", (3, 224, 224), batch_size=1, threads=2)
    step_cpu = 100 * LAUNCH_S["cpu"] + 2 * 4e9 / (RATE[("cpu", "float32")] * 2)
    assert model.step_s(cpu) == pytest.approx(step_cpu)


def test_row_keys_match_plan_keys_whatever_the_device_string():
    case = Case("lenet5", (1, 32, 32), device="cuda:1")
    assert row_key(case.case_id, "cuda:1") == plan_key(case)
    assert row_key(Case("lenet5", (1, 32, 32)).case_id, "cpu") == plan_key(
        Case("lenet5", (1, 32, 32))
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("3/2", "the shard must be from 1 to 2"),
        ("0/0", "the number of shards must be from 1"),
        ("0/4", "the shard must be from 1 to 4"),
        ("1-4", "write I/N"),
        ("a/b", "write I/N"),
    ],
)
def test_bad_shard_specs_say_what_is_allowed(spec, says):
    with pytest.raises(InvalidInputError, match=says):
        parse_shard(spec)
    assert parse_shard(" 2 / 4 ") == (2, 4)
