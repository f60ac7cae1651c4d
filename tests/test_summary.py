"""The end-of-run terminal summary: readable modes and every failure's reason in full."""

from __future__ import annotations

from harness.plugin.summary import summary_table

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
        "model", "input", "batch", "dtype", "mode", "median", "IQR", "throughput", "peak", "mem",
        "status", "validity",
    ]  # fmt: skip
    assert lines[2].split()[:7] == ["lenet5", "1x32x32", "8", "float32", "inference", "1.84", "ms"]
    assert "296.8 KiB" in lines[2] and lines[2].split()[-2:] == ["ok", "-"]
    assert "inference channels_last compiled" in lines[3]
    assert lines[4].split()[4:7] == ["training", "2.5", "s"]
    assert "3.0 GiB" in lines[4]
    assert "not ok" not in text
    assert "3 case(s): 3 not judged" in text


def test_the_headline_counts_valid_noisy_and_not_ok() -> None:
    rows = [row(validity="valid"), row(validity="valid"), row(validity="noisy"),
            row(status="oom", validity=None), row(status="skipped", validity=None)]  # fmt: skip
    assert "5 case(s): 2 valid, 1 noisy, 2 not ok (oom 1, skipped 1)" in summary_table(rows)


def test_a_row_without_an_interval_says_so_never_zero() -> None:
    """Issue 21: a 1-round row printed "942 ms ±0.0%  IQR 0%"; it now says "±? (1 round)"."""
    one = row(latency_s_median=0.942, latency_s_median_ci_low=None,
              latency_s_median_ci_high=None, rounds=1, validity="noisy")  # fmt: skip
    line = summary_table([one]).splitlines()[2]
    assert "942 ms ±? (1 round)" in line and "±0.0%" not in line
    from harness.plugin.progress import progress_line

    info = {"case": "c", "status": "ok", "median": 0.942, "ci_low": None, "ci_high": None,
            "rounds": 1, "validity": "noisy",
            "reason": "only 1 window(s): no check; x"}  # fmt: skip
    assert (
        progress_line(info, 1, 2, 1.0, 1)
        == "[1/2] c  942 ms ±? (1 round)  noisy (only 1 window(s): no check)  ETA 1 s"
    )


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
    assert alexnet.split()[5:] == ["-", "-", "-", "-", "error", "-"]  # missing is '-', never 0
    headline, _, tail = tail.partition("\n\n")
    assert headline == "2 case(s): 1 not judged, 1 not ok (error 1)"
    assert tail.splitlines() == [
        "1 case(s) not ok, with the reason:",
        f"  alexnet 3x32x32 b1 float32 inference: error: {LONG}",
    ]


def test_the_median_carries_its_interval_and_the_iqr_its_share() -> None:
    text = summary_table(
        [row(latency_s_median=0.010, latency_s_median_ci_low=0.0099,
             latency_s_median_ci_high=0.0101, latency_s_iqr=0.002, validity="valid")]
    )  # fmt: skip
    line = text.splitlines()[2]
    assert "10 ms ±1.0%" in line  # half of (10.1 - 9.9) / 10
    assert " 20% " in line  # IQR 2 ms of a 10 ms median
    assert line.split()[-1] == "valid"


def test_noisy_cases_are_listed_with_their_signal_and_the_test_shown_when_asked() -> None:
    noisy = row(validity="noisy", validity_reason="CPU pressure 50% of the rounds (limit 10%)",
                test_name="suites/test_classic_cnns.py::test_training")  # fmt: skip
    text = summary_table([row(test_name="s.py::test_inference"), noisy], show_test=True)
    assert text.splitlines()[0].split()[-1] == "test"
    assert "test_training" in text.splitlines()[3]
    assert text.rstrip().endswith(
        "lenet5 1x32x32 b8 float32 inference: noisy: CPU pressure 50% of the rounds (limit 10%)"
    )
    assert "1 case(s) measured but not valid" in text


def test_strings_from_rows_cannot_drive_the_terminal() -> None:
    text = summary_table([row(model="evil\x1b]0;pwned\x07", status="error", error="a\r\nb")])
    assert "\x1b" not in text and "\r" not in text
    assert "\\x1b]0;pwned\\x07" in text and "a\\r\\nb" in text
