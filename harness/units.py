"""Human-readable numbers for tables: 138.4 M params, 15.47 GMACs, 58.1 MiB, 1.23 ms.

Display only: result files keep raw integers and SI base units; these strings are for people.
Counts use decimal prefixes (K = 1e3, M = 1e6, G = 1e9, T = 1e12); bytes use binary ones
(KiB = 1024 B, MiB, GiB, TiB), as the notes' "93 MB" tables are about memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_DECIMAL = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
_BINARY = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(n: float | None, digits: int = 1) -> str:
    """138357544 -> ``138.4 M``; below 1000 the plain integer (``84``); None/NaN -> ``-``."""
    if _missing(n):
        return "-"
    for scale, prefix in _DECIMAL:
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {prefix}"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:.{digits}f}"


def _prefixed(n: float | None, unit: str, digits: int) -> str:
    if _missing(n):
        return "-"
    for scale, prefix in _DECIMAL:
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def macs(n: float | None, digits: int = 2) -> str:
    """15470264320 -> ``15.47 GMACs`` (one multiply-accumulate = one MAC)."""
    return _prefixed(n, "MACs", digits)


def flops(n: float | None, digits: int = 2) -> str:
    """30940528640 -> ``30.94 GFLOPs`` (2 FLOPs per MAC)."""
    return _prefixed(n, "FLOPs", digits)


def nbytes(n: float | None, digits: int = 1) -> str:
    """60448672 -> ``57.6 MiB``; below 1 KiB ``512 B``."""
    if _missing(n):
        return "-"
    for scale, unit in _BINARY:
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {unit}"
    return f"{n:.0f} B"


def seconds(s: float | None, digits: int = 3) -> str:
    """0.00123 -> ``1.23 ms``: three significant digits in s, ms, us or ns."""
    if _missing(s):
        return "-"
    s = float(f"{s:.{digits}g}")  # round first: 0.9996 s is "1 s", not "1e+03 ms"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if abs(s) >= scale:
            return f"{s / scale:.{digits}g} {unit}"
    return f"{s / 1e-9:.{digits}g} ns"


def percent(share: float | None, digits: int = 1) -> str:
    """0.894 -> ``89.4%`` (a share between 0 and 1)."""
    if _missing(share):
        return "-"
    return f"{100 * share:.{digits}f}%"


def shape(dims: Sequence[int]) -> str:
    """(3, 224, 224) -> "3x224x224"."""
    return "x".join(str(int(d)) for d in dims)
