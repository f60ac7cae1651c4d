"""The source documents' claims about the classic CNNs, as data, decided by numbers.

    >>> from harness.claims import check_claims
    >>> [r.verdict for r in check_claims(only="googlenet.inception_3a_weights")]
    ['refuted']

Each claim (``harness.claims.core.Claim``) names its source and quote, measures named
quantities and states its expectations; ``core.evaluate`` decides every verdict and writes every
explanation. Three kinds, listed apart: ``static`` (numbers the profiler computes on the meta
device), ``structural`` (the zoo's models built as the documents describe them: evidence about
the implementation, not about the documents) and ``measured`` (result rows, one configuration
at a time, valid rows only). Importing this package does not import torch; evaluating a static
or structural claim does, a measured one does not.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from harness.claims.classic import CLASSIC_CLAIMS
from harness.claims.core import (
    COMBINATION_RULE,
    CONFIRMED,
    INSUFFICIENT,
    KINDS,
    PARTLY,
    REFUTED,
    UNDECIDED,
    VERDICTS,
    Claim,
    ClaimResult,
    Quantity,
    evaluate,
)
from harness.claims.inception import INCEPTION_CLAIMS
from harness.claims.measured import MEASURED_CLAIMS
from harness.claims.resnet import RESNET_CLAIMS
from harness.claims.rows import Measured
from harness.claims.static import Models
from harness.claims.vgg import VGG_CLAIMS
from harness.claims.vgg_memory import Vgg16Memory, vgg16_memory
from harness.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

# The order of the listing (docs/CLAIMS.md's "At a glance"), by id (a new claim goes here too).
ORDER = (
    "lenet5.maps", "lenet5.layers", "lenet5.c3_table", "lenet5.params",
    "alexnet.layout", "alexnet.conv_fc_split", "alexnet.single_tower",
    "vgg.kernels", "vgg.depth", "vgg.params_vs_depth", "vgg.three_3x3",
    "cs231n.vgg16_memory", "cs231n.vgg16_total", "cs231n.vgg16_params",
    "googlenet.inception_3a_channels", "googlenet.inception_3a_weights", "googlenet.depth",
    "googlenet.head", "googlenet.params_vs_alexnet",
    "formula.output_size", "formula.conv1x1",
    "resnet18.layout", "resnet.blocks", "resnet.deeper", "resnet.plain", "resnet.preact",
    "inception_resnet.scale", "inception_resnet.projection",
    "resnet.depth_vs_cost", "resnet.plain_vs_residual_time", "googlenet.inception_3a_time",
    "vgg16.fc_time_share", "macs_vs_time", "macs_vs_energy",
)  # fmt: skip
_DEFINED = {c.id: c for c in (*CLASSIC_CLAIMS, *VGG_CLAIMS, *INCEPTION_CLAIMS, *RESNET_CLAIMS,
                              *MEASURED_CLAIMS)}  # fmt: skip
if sorted(_DEFINED) != sorted(ORDER):  # a claim defined but not ordered, or the reverse
    raise RuntimeError(f"claims and ORDER differ: {set(_DEFINED) ^ set(ORDER)}")
CLAIMS: tuple[Claim, ...] = tuple(_DEFINED[i] for i in ORDER)

__all__ = [
    "CLAIMS", "COMBINATION_RULE", "CONFIRMED", "INSUFFICIENT", "KINDS", "ORDER", "PARTLY",
    "REFUTED", "UNDECIDED", "VERDICTS", "Claim", "ClaimResult", "Measured", "Quantity",
    "Vgg16Memory", "as_data", "check_claims", "evaluate", "select_claims", "vgg16_memory",
]  # fmt: skip


def _patterns(items: str | Iterable[str]) -> list[str]:
    items = [items] if isinstance(items, str) else list(items)
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def select_claims(
    only: str | Iterable[str] | None = None, kinds: Iterable[str] | None = None
) -> list[Claim]:
    """The claims whose id matches a shell pattern of ``only`` (a string may hold several,
    comma-separated; None: all) and whose kind is in ``kinds`` (None: all), in ORDER.
    A pattern matching nothing is an InvalidInputError naming the ids."""
    chosen = [c for c in CLAIMS if kinds is None or c.kind in set(kinds)]
    if only is None:
        return chosen
    patterns = _patterns(only)
    chosen = [c for c in chosen if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]
    if not chosen:
        raise InvalidInputError(
            f"no claim id matches {', '.join(patterns) or repr(only)}; ids: " + ", ".join(ORDER)
        )
    return chosen


def check_claims(
    results: pd.DataFrame | None = None,
    only: str | Iterable[str] | None = None,
    *,
    layers: pd.DataFrame | None = None,
    all_runs: bool = False,
    kinds: Iterable[str] | None = None,
    measured: Measured | None = None,
) -> list[ClaimResult]:
    """Decide the claims (``only``/``kinds`` as in ``select_claims``), one ClaimResult each;
    a measured claim gives one per configuration in ``results`` (the cases table of
    ``load_results``; ``layers`` its layers table), each naming its configuration and run.

    Without results a measured claim is ``insufficient data``. Runs are chosen by
    ``harness.results.runs.select_runs`` (``all_runs`` pools them); only valid rows decide.
    ``kinds=("measured",)`` never imports torch (the report's use).
    """
    claims = select_claims(only, kinds)
    rows = measured or Measured(results, layers, all_runs)
    models = Models()
    out = []
    for claim in claims:
        if claim.kind != "measured":
            out.append(evaluate(claim, claim.measure(models)))
            continue
        for group in rows.groups(claim.models):
            out.append(evaluate(claim, claim.measure(group), group.label))
    return out


def as_data(results: Iterable[ClaimResult]) -> dict[str, Any]:
    """What a report or tool renders: numeric evidence (static and measured) apart from the
    structural checks, each verdict with its explanation, quantities and rules."""
    results = list(results)
    return {
        "combination_rule": COMBINATION_RULE,
        "evidence": [r.to_dict() for r in results if r.kind != "structural"],
        "structural": [r.to_dict() for r in results if r.kind == "structural"],
        "summary": {v: sum(r.verdict == v for r in results) for v in VERDICTS},
    }
