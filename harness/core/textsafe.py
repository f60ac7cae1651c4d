"""Strings from result files and model names made safe to print: one implementation.

A result file is data somebody else may have written: a model name or an error message can hold
ANSI/OSC escape sequences (which would recolour or retitle the user's terminal), a ``\\r\\n``
that forges a line of output, or a ``|`` that breaks a markdown table. Every command that prints
such a string passes it through one of these functions first.
"""

from __future__ import annotations

import re

# C0 controls (but tab), DEL, the C1 controls (0x80-0x9f: CSI, OSC, ... in 8-bit form), and the
# Unicode bidirectional overrides and isolates, which make printed text read in another order.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ord(ch) > 0xFF:
        return f"\\u{ord(ch):04x}"
    return {"\n": "\\n", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}")


def terminal(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\n``), so it
    prints as one inert line."""
    return _CONTROL.sub(_escape, str(text))


def markdown_cell(text: object) -> str:
    """``terminal(text)`` with ``|`` escaped, for one cell of a markdown table."""
    return terminal(text).replace("|", "\\|")


# A spreadsheet reads a cell that starts with one of these as a formula (OWASP, "CSV
# Injection"): ``=HYPERLINK(...)``, ``+cmd|' /C calc'!A0``, ``@SUM(...)``, a tab or CR first.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?")


def csv_cell(text: str) -> str:
    """``text`` safe as a CSV cell opened in a spreadsheet: one that starts like a formula is
    prefixed with ``'`` (OWASP's advice), so it shows as typed and never runs. A plain number
    (``-1.5``, ``+3%``) and a lone ``-`` (a missing value) are left as they are."""
    if text.startswith(_FORMULA_START) and text != "-" and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
