"""The end-of-run terminal summary: readable modes and every failure's reason in full."""

from __future__ import annotations

from harness.summary import summary_table

LONG = (
    "input 3x32x32 is too small for alexnet: layer features.12 (MaxPool2d) gets 1x256x1x1 and "
    "computes its output height as floor((1 - 3 + 2*0)/2) + 1 = 0; the smallest input this "
    "model accepts is 3x63x63; pass an input at least that large (--input 3x63x63)"
)


def row(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "model": "lenet5",
        "input_shape": "1x32x32",
        "batch_size": 8,
        "dtype": "float32",
        "memory_format": "contiguous",
        "mode": "inference",
        "compiled": False,
        "latency_s_median": 0.00184,
        "throughput_per_s": 4347.8,
        "peak_memory_bytes": 303_904,
        "status": "ok",
        "error": None,
    }
    return {**base, **values}


def test_units_and_modes_are_spelled_out() -> None:
    text = summary_table(
        [
            row(),
            row(memory_format="channels_last", compiled=True),
            row(mode="training", latency_s_median=2.5, peak_memory_bytes=3 * 2**30),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == [
        "model", "input", "batch", "dtype", "mode", "median", "throughput", "peak", "mem",
        "status",
    ]  # fmt: skip
    assert lines[2].split() == [
        "lenet5", "1x32x32", "8", "float32", "inference", "1.84", "ms", "4,347.8/s", "296.8",
        "KiB", "ok",
    ]  # fmt: skip
    assert "inference channels_last compiled" in lines[3]
    assert lines[4].split()[4:7] == ["training", "2.5", "s"]
    assert "3.0 GiB" in lines[4]
    assert "not ok" not in text


def test_a_failed_case_keeps_its_whole_reason() -> None:
    failed = row(
        model="alexnet",
        input_shape="3x32x32",
        batch_size=1,
        latency_s_median=None,
        throughput_per_s=None,
        peak_memory_bytes=None,
        status="error",
        error=LONG,
    )
    text = summary_table([row(), failed])
    table, _, tail = text.partition("\n\n")
    alexnet = next(line for line in table.splitlines() if line.startswith("alexnet"))
    assert alexnet.split()[5:] == ["-", "-", "-", "error"]  # missing is '-', never 0
    assert tail.splitlines() == [
        "1 case(s) not ok, with the reason:",
        f"  alexnet 3x32x32 b1 float32 inference: error: {LONG}",
    ]
