"""Comparing across a setting: the same models at 1 and 2 threads, in float32 and float16, eager
and compiled, contiguous and channels_last, on two devices.

Cases are joined on ``CASE_KEY``, which holds the settings (``threads``, ``dtype``...), so two
runs that differ in one setting have no case in common. Comparing across a setting joins on the
key without it:

* ``--across SETTING`` with two or more inputs joins each pair on the other key columns; each
  side must hold one value of the setting per case (else the pair is refused: compare one input
  split by the setting instead).
* ``--across SETTING`` with one input splits it by the setting's values (the baseline is the
  first: the fewest threads, float32, contiguous, eager, inference, the smallest batch or input,
  the first device in the file) and compares each other value with it.
* Without ``--across``, a pair with no case in common whose sides differ in exactly one setting
  of the key (their values of it share nothing) is compared across that setting, and the
  output names it; differing in several settings is refused with their names.

The threads a case ran with are its requested ``threads`` or, where it asked for none, the
``cpu_threads`` it recorded (torch's default), shown as ``2 (default)``. ``device`` is not part
of the key (two files from two devices already join): across it, one input is split by
``device_name``. Torch-free.
"""

from __future__ import annotations

import re

import pandas as pd

from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing
from harness.core.schema import CASE_KEY

KEY_SETTINGS = ("threads", "dtype", "memory_format", "compiled", "mode", "batch_size",
                "input_shape")  # fmt: skip
SETTINGS = (*KEY_SETTINGS, "device")
_FIRST = {"dtype": "float32", "memory_format": "contiguous", "compiled": "eager",
          "mode": "inference"}  # fmt: skip


def check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise InvalidInputError(
            f"--across {setting!r}: compare across one of {', '.join(SETTINGS)}"
        )
    return setting


def reduced_key(setting: str) -> tuple[str, ...]:
    """The case key without ``setting`` (the whole key for ``device``, which is not in it)."""
    return tuple(k for k in CASE_KEY if k != setting)


def _text(value: object) -> str:
    return "-" if is_missing(value) else str(value)


def values(frame: pd.DataFrame, setting: str) -> pd.Series:
    """Each row's value of ``setting`` as people read it (threads: what ran)."""
    if setting == "threads":
        asked = frame["threads"] if "threads" in frame else pd.Series(None, index=frame.index)
        ran = frame["cpu_threads"] if "cpu_threads" in frame else pd.Series(None, index=frame.index)
        return pd.Series(
            [_threads(a, r) for a, r in zip(asked, ran, strict=True)], index=frame.index
        )
    if setting == "device":
        column = "device_name" if "device_name" in frame else "device"
        return frame[column].map(_text) if column in frame else pd.Series("-", index=frame.index)
    if setting == "compiled":
        return frame[setting].map(
            lambda v: "compiled ?" if is_missing(v) else "compiled" if bool(v) else "eager"
        )
    return frame[setting].map(_text)


def _threads(asked: object, ran: object) -> str:
    if not is_missing(asked):
        return f"{int(asked)}"
    return "default" if is_missing(ran) else f"{int(ran)} (default)"


def describe(frame: pd.DataFrame, setting: str) -> str:
    """``1`` or ``1, 2``: the values of ``setting`` in ``frame``, in order."""
    return ", ".join(_order(values(frame, setting).unique(), setting)) or "-"


def _sort_key(value: str, setting: str) -> tuple:
    if setting in _FIRST:
        return (value != _FIRST[setting], value)
    numbers = [int(n) for n in re.findall(r"\d+", value)]
    return (0, numbers, value) if numbers else (1, [], value)


def _order(items: object, setting: str) -> list[str]:
    items = [str(v) for v in items]
    if setting == "device":
        return list(dict.fromkeys(items))
    return sorted(dict.fromkeys(items), key=lambda v: _sort_key(v, setting))


def split(frame: pd.DataFrame, setting: str, label: str) -> list[tuple[str, pd.DataFrame]]:
    """``frame`` split by its values of ``setting``, the baseline first: ``(label, rows)``."""
    check_setting(setting)
    vals = values(frame, setting)
    order = _order(vals.unique(), setting)
    if len(order) < 2:
        raise InvalidInputError(
            f"--across {setting}: {label} holds one {setting} only ({', '.join(order) or '-'}): "
            "give a second result file to compare with, or another --across setting"
        )
    name = "threads" if setting == "threads" else ""
    return [(f"{label} [{name + ' ' if name else ''}{v}]", frame[vals == v]) for v in order]


def differing_setting(base: pd.DataFrame, cand: pd.DataFrame) -> tuple[str | None, list[str]]:
    """The one key setting whose values the two sides do not share (None when there is not
    exactly one), and every such setting."""
    differ = []
    for setting in KEY_SETTINGS:
        if setting not in base or setting not in cand:
            continue
        a = set(base[setting].map(_text))
        b = set(cand[setting].map(_text))
        if a and b and not a & b:
            differ.append(setting)
    return (differ[0] if len(differ) == 1 else None), differ


def rekey(frame: pd.DataFrame, setting: str, label: str) -> pd.DataFrame:
    """``frame`` indexed by the case key without ``setting``; refused where that makes two rows
    of one case (the input holds several values of the setting for a case)."""
    key = list(reduced_key(setting))
    text = frame[key].astype("string").fillna("<NA>")
    index = pd.Index(["|".join(k) for k in text.itertuples(index=False)], name="_key")
    if index.has_duplicates:
        raise InvalidInputError(
            f"--across {setting}: {label} holds several {setting} values for the same case "
            f"({describe(frame, setting)}): compare it on its own with --across {setting}"
        )
    return frame.set_axis(index, axis=0)
