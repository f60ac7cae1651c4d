"""harness.core.units: the humanised numbers of the tables (display only)."""

from __future__ import annotations

import math

from harness.core import units


def test_counts_use_decimal_prefixes():
    assert units.count(138_357_544) == "138.4 M"
    assert units.count(61_100_840) == "61.1 M"
    assert units.count(60_000) == "60.0 K"
    assert units.count(84) == "84"
    assert units.count(0) == "0"
    assert units.count(1.5e12) == "1.5 T"
    assert units.count(None) == units.count(math.nan) == "-"


def test_macs_and_flops():
    assert units.macs(15_470_264_320) == "15.47 GMACs"
    assert units.macs(4_089_184_256) == "4.09 GMACs"
    assert units.flops(2 * 15_470_264_320) == "30.94 GFLOPs"
    assert units.macs(840) == "840 MACs"


def test_bytes_use_binary_prefixes():
    assert units.nbytes(60_448_672) == "57.6 MiB"  # 60,448,672 / 2**20
    assert units.nbytes(138_357_544 * 4) == "527.8 MiB"
    assert units.nbytes(15 * 2**30) == "15.0 GiB"
    assert units.nbytes(1023) == "1023 B"
    assert units.nbytes(1024) == "1.0 KiB"


def test_seconds_and_percent():
    assert units.seconds(1.5) == "1.5 s"
    assert units.seconds(0.00123) == "1.23 ms"
    assert units.seconds(2.5e-6) == "2.5 us"
    assert units.seconds(3e-9) == "3 ns"
    assert units.seconds(0.9996) == "1 s"  # rounds before choosing the unit
    assert units.seconds(0.0009996) == "1 ms"
    assert units.seconds(None) == "-"
    assert units.percent(0.8936) == "89.4%"
    assert units.percent(None) == "-"
