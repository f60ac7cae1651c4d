"""Numbers for people, in one place: 138.4 M params, 15.47 GMACs, 58.1 MiB, 1.23 ms, 12.3 GFLOP/s.

Display only: result files keep raw integers and SI base units; these strings are for people.
Every command (profile, compare, claims, the terminal summary) and the HTML report print numbers
through this module, so a rounding rule is written once.

* Counts and rates use decimal prefixes (K = 1e3, M = 1e6, G = 1e9, T = 1e12, P = 1e15).
* Bytes use binary ones (KiB = 1024 B, MiB, GiB, TiB): memory is allocated in powers of two,
  and the report's axes and tables say MiB everywhere, never an SI "500M".
* Durations pick s, ms, µs or ns after rounding (0.9996 s is "1 s", not "1e+03 ms"); the
  terminal spells the micro sign ``us``, the report ``µs`` (``micro="µ"``).
* A missing value (None, NaN, pd.NA, anything that is not a number) prints as ``-``; callers
  that show a different mark test ``value_of(x) is None`` first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MISSING = "-"
_DECIMAL = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
_BINARY = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def value_of(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing or not a number (None, NaN, pd.NA, text).

    Infinities are kept (they print as ``inf``); only NaN-like values count as missing.
    """
    if x is None or isinstance(x, (str, bytes)):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):  # pd.NA raises TypeError, text ValueError
        return None
    return None if math.isnan(v) else v


def count(n: float | None, digits: int = 1) -> str:
    """138357544 -> ``138.4 M``; below 1000 the plain integer (``84``); None/NaN -> ``-``."""
    v = value_of(n)
    if v is None:
        return MISSING
    for scale, prefix in _DECIMAL[1:]:
        if abs(v) >= scale:
            return f"{v / scale:.{digits}f} {prefix}"
    return f"{v:,.0f}" if v.is_integer() else f"{v:.{digits}f}"


def _prefixed(n: float | None, unit: str, digits: int) -> str:
    v = value_of(n)
    if v is None:
        return MISSING
    for scale, prefix in _DECIMAL[1:]:
        if abs(v) >= scale:
            return f"{v / scale:.{digits}f} {prefix}{unit}"
    return f"{v:.0f} {unit}"


def macs(n: float | None, digits: int = 2) -> str:
    """15470264320 -> ``15.47 GMACs`` (one multiply-accumulate = one MAC)."""
    return _prefixed(n, "MACs", digits)


def flops(n: float | None, digits: int = 2) -> str:
    """30940528640 -> ``30.94 GFLOPs`` (2 FLOPs per MAC)."""
    return _prefixed(n, "FLOPs", digits)


def nbytes(n: float | None, digits: int = 1) -> str:
    """60448672 -> ``57.6 MiB``; below 1 KiB ``512 B`` (IEC binary units)."""
    v = value_of(n)
    if v is None:
        return MISSING
    for scale, unit in _BINARY:
        if abs(v) >= scale:
            return f"{v / scale:.{digits}f} {unit}"
    return f"{v:.0f} B"


def _sig(v: float, digits: int) -> str:
    """``v`` with ``digits`` significant digits and never an exponent (1230, not 1.23e+03)."""
    text = f"{v:.{digits}g}"
    if "e" in text:
        text = f"{float(text):f}".rstrip("0").rstrip(".")
    return text


def seconds(s: float | None, digits: int = 3, *, micro: str = "u") -> str:
    """0.00123 -> ``1.23 ms``: ``digits`` significant digits in s, ms, us (µs) or ns."""
    v = value_of(s)
    if v is None:
        return MISSING
    if not math.isfinite(v):
        return f"{v} s"
    v = float(f"{v:.{digits}g}")  # round first: 0.9996 s is "1 s", not "1e+03 ms"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, f"{micro}s")):
        if abs(v) >= scale:
            return f"{_sig(v / scale, digits)} {unit}"
    if v == 0:
        return "0 s"
    return f"{_sig(v / 1e-9, digits)} ns"


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """12345678 -> ``12.3 M``, 2.5e13 with unit ``FLOP/s`` -> ``25 TFLOP/s``: ``digits``
    significant digits and a decimal prefix, for rates, FLOP/s, bandwidths (``GB/s``), watts."""
    v = value_of(value)
    if v is None:
        return MISSING
    if not math.isfinite(v):
        return f"{v} {unit}".rstrip()
    v = float(f"{v:.{digits}g}")  # round first: 999.96 is "1 K", not "1e+03"
    for scale, prefix in _DECIMAL:
        if abs(v) >= scale:
            return f"{_sig(v / scale, digits)} {prefix}{unit}".rstrip()
    return f"{_sig(v, digits)} {unit}".rstrip()


def rate(value: float | None, what: str = "samples/s", digits: int = 3) -> str:
    """1234.5 -> ``1.23 K samples/s``: a count per second with the counted thing spelt out."""
    text = si(value, "", digits)
    return text if text == MISSING else f"{text} {what}"


def ratio(value: float | None, digits: int = 3) -> str:
    """2.3456 -> ``2.35×``: how many times one quantity is another."""
    v = value_of(value)
    return MISSING if v is None else f"{_sig(v, digits)}×"


def percent(share: float | None, digits: int = 1) -> str:
    """0.894 -> ``89.4%`` (a share between 0 and 1)."""
    v = value_of(share)
    if v is None:
        return MISSING
    return f"{100 * v:.{digits}f}%"


def integer(value: float | None) -> str:
    """32.0 -> ``32``: an integer column read back as float (batch size, threads, rounds)."""
    v = value_of(value)
    if v is None:
        return MISSING
    return str(int(v)) if math.isfinite(v) and v.is_integer() else _sig(v, 6)


def grouped(value: float | None) -> str:
    """60965224 -> ``60,965,224``: an exact count that must not be rounded (a parameter count
    set against a paper's), with thousands separators."""
    v = value_of(value)
    if v is None:
        return MISSING
    return f"{v:,.0f}" if math.isfinite(v) and v.is_integer() else _sig(v, 6)


def shape(dims: Sequence[int]) -> str:
    """(3, 224, 224) -> "3x224x224"."""
    return "x".join(str(int(d)) for d in dims)


# -------------------------------------------------------------------------- axis tick values


def ticks_125(lo: float, hi: float, *, base: float = 10.0) -> list[float]:
    """The 1-2-5 values in [lo, hi] for a labelled log axis: 1, 2, 5 times a power of ten, or
    with ``base=1024`` 1, 2, 5, 10, 20, 50, 100, 200, 500 times a power of 1024 (1 KiB, 2 KiB,
    ... 500 KiB, 1 MiB), so byte ticks read in IEC units.

    Returns at least the two 1-2-5 values around a narrow range, so an axis is never unlabelled.
    """
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        return []
    lo, hi = min(lo, hi), max(lo, hi)
    mantissas = (1, 2, 5) if base == 10 else (1, 2, 5, 10, 20, 50, 100, 200, 500)
    first = math.floor(math.log(lo, base)) - 1
    last = math.ceil(math.log(hi, base)) + 1
    every = [m * base**e for e in range(first, last + 1) for m in mantissas]
    every = sorted(float(f"{t:.12g}") for t in every)
    inside = [t for t in every if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    if len(inside) >= 2:
        return inside
    below = [t for t in every if t < lo]
    above = [t for t in every if t > hi]
    return [*below[-1:], *inside, *above[:1]]
