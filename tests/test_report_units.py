"""harness.core.units, the one module that prints numbers for people: the forms the report uses
(significant digits, µs, binary bytes, 1-2-5 ticks) and the names other commands call."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.core import units


def test_missing_values_of_every_kind_print_as_a_dash() -> None:
    for missing in (None, math.nan, pd.NA, "text"):
        assert units.seconds(missing) == units.count(missing) == units.si(missing) == "-"
        assert units.value_of(missing) is None
    assert units.value_of(math.inf) == math.inf  # an infinity is a value, shown as inf


def test_durations_round_before_choosing_the_unit_and_the_report_spells_micro() -> None:
    assert units.seconds(0.9996) == "1 s"
    assert units.seconds(0.0009996) == "1 ms"
    assert units.seconds(2.5e-6) == "2.5 us"
    assert units.seconds(2.5e-6, micro="µ") == "2.5 µs"
    assert units.seconds(1234.0) == "1230 s"  # never an exponent


def test_si_rate_ratio_and_integers() -> None:
    assert units.si(2.5e13, "FLOP/s") == "25 TFLOP/s"
    assert units.si(999.96) == "1 K"  # rounded before the prefix is chosen
    assert units.si(4.3e9, "B/s") == "4.3 GB/s"
    assert units.rate(1234.5) == "1.23 K samples/s"
    assert units.ratio(0.08654) == "0.0865×"
    assert units.integer(32.0) == "32"
    assert units.grouped(15_237_608) == "15,237,608"


def test_bytes_stay_binary() -> None:
    assert units.nbytes(500 * 1024, digits=0) == "500 KiB"
    assert units.nbytes(3 * 2**30) == "3.0 GiB"


@pytest.mark.parametrize(
    ("lo", "hi", "base", "expected"),
    [
        (0.01, 0.1, 10, [0.01, 0.02, 0.05, 0.1]),
        (0.0021, 0.0095, 10, [0.002, 0.005, 0.01]),  # one inside: its neighbours are added
        (0.162, 0.175, 10, [0.1, 0.2]),
        (1024, 8 * 1024, 1024, [1024, 2048, 5120]),
    ],
)
def test_125_ticks(lo: float, hi: float, base: float, expected: list[float]) -> None:
    assert units.ticks_125(lo, hi, base=base) == pytest.approx(expected)


def test_no_ticks_without_a_positive_range() -> None:
    assert units.ticks_125(0, 10) == []
    assert units.ticks_125(1, math.inf) == []
