"""The source documents' claims about the classic CNNs, as data, each with a check that decides
it with numbers: the harness's own static profiler on the meta device (fast, no compute) and,
when result files are given, the measured rows.

    >>> from harness.claims import check_claims
    >>> [r.verdict for r in check_claims(only="googlenet.inception_3a_weights")]
    ['refuted']

Where a claim is wrong the result says so with the number (``explanation``, ``measured``).
``cnnbench claims`` prints them; docs/CLAIMS.md lists them with the tests that assert them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING

from harness.errors import InvalidInputError

_LAZY = {  # the claims modules import torch: only when a name is used (vgg_memory does not)
    **dict.fromkeys(
        (
            "CONFIRMED",
            "KINDS",
            "NEEDS_MEASUREMENT",
            "PARTLY",
            "REFUTED",
            "VERDICTS",
            "Claim",
            "ClaimResult",
            "Context",
            "Finding",
        ),
        "harness.claims.base",
    ),
}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "CLAIMS":
        return _claims()
    raise AttributeError(f"module 'harness.claims' has no attribute {name!r}")


def _claims() -> tuple:
    from harness.claims.classic import CLASSIC_CLAIMS
    from harness.claims.inception import INCEPTION_CLAIMS
    from harness.claims.measured import MEASURED_CLAIMS
    from harness.claims.resnet import RESNET_CLAIMS
    from harness.claims.vgg import VGG_CLAIMS

    return (
        *CLASSIC_CLAIMS[:7],
        *VGG_CLAIMS,
        *INCEPTION_CLAIMS[:5],
        *CLASSIC_CLAIMS[7:],
        *RESNET_CLAIMS,
        *INCEPTION_CLAIMS[5:],
        *MEASURED_CLAIMS,
    )


if TYPE_CHECKING:
    import pandas as pd

    from harness.claims.base import Claim, ClaimResult

__all__ = [
    "CLAIMS",
    "CONFIRMED",
    "KINDS",
    "NEEDS_MEASUREMENT",
    "PARTLY",
    "REFUTED",
    "VERDICTS",
    "Claim",
    "ClaimResult",
    "Finding",
    "check_claims",
    "select_claims",
]


def select_claims(only: str | Iterable[str] | None = None) -> list[Claim]:
    """The claims whose id matches any of the shell patterns in ``only`` (a string may hold
    several, comma-separated; None: all), in document order. No match is an
    InvalidInputError naming the ids."""
    if only is None:
        return list(_claims())
    patterns = [only] if isinstance(only, str) else list(only)
    patterns = [p.strip() for item in patterns for p in item.split(",") if p.strip()]
    chosen = [c for c in _claims() if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]
    if not chosen:
        raise InvalidInputError(
            f"no claim id matches {', '.join(patterns) or repr(only)}; ids: "
            + ", ".join(c.id for c in _claims())
        )
    return chosen


def check_claims(
    results: pd.DataFrame | None = None, only: str | Iterable[str] | None = None
) -> list[ClaimResult]:
    """Check the claims (those matching ``only``, else all) and return one ClaimResult each.

    Static claims are decided by the profiler on the meta device (about 3 s for all of them).
    Measured claims read ``results``, the cases table of ``harness.load_results(paths)``:
    without it their verdict is "needs measurement"; with it each device in the results gets
    its own result, naming the rows used. A results table without the needed columns raises
    InvalidInputError.
    """
    claims = select_claims(only)
    if results is not None:
        from harness.claims.rows import ok_rows

        ok_rows(results)  # validate once, before any check runs
    from harness.claims.base import Context

    ctx = Context(results)
    return [result for claim in claims for result in claim.evaluate(ctx)]
