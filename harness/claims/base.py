"""The records of the claims check: a Claim (what a source document says, and how to check it),
the Finding its check returns, the ClaimResult a user sees, and the Context checks share.

Static checks compute their numbers with the harness's own profiler on the meta device (no
memory, no compute) and by reading the zoo's modules; measured checks read a results table
(``load_results(paths)``) and say "needs measurement" without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from torch import nn

    from harness.profile import ModelProfile

CONFIRMED, REFUTED, PARTLY, NEEDS_MEASUREMENT = (
    "confirmed",
    "refuted",
    "partly",
    "needs measurement",
)
VERDICTS = (CONFIRMED, REFUTED, PARTLY, NEEDS_MEASUREMENT)
KINDS = ("static", "measured")

Number = int | float | str | bool | None
Measured = dict[str, Number]


@dataclass(frozen=True)
class Finding:
    """What a check found: a verdict, one or two sentences with the numbers, the numbers, and
    (for a measured check) which result rows they came from."""

    verdict: str
    explanation: str
    measured: Measured
    rows: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:  # a bug in a check, not user input
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


@dataclass(frozen=True)
class ClaimResult:
    """One claim checked: the claim as the source states it, the verdict and the numbers.

    ``measured`` holds raw numbers whose key says the unit (``_share`` 0..1, ``_ratio``,
    ``_change`` relative, ``_s`` seconds, ``_bytes``, ``macs``, ``params``); ``rows`` names the
    result rows a measured check used (device, batch, dtype, ...), empty for a static check.
    """

    id: str
    source: str
    claim: str
    verdict: str
    explanation: str
    measured: Measured
    kind: str = "static"
    method: str = ""
    rows: str = ""
    tests: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tests as a list)."""
        d = asdict(self)
        d["tests"] = list(self.tests)
        return d

    def __str__(self) -> str:
        return f"{self.id}: {self.verdict}: {self.explanation}"


class Context:
    """What the checks of one ``check_claims`` call share: profiles and meta models built once,
    and the results table (None when no result files were given)."""

    def __init__(self, results: pd.DataFrame | None = None) -> None:
        self.results = results
        self._profiles: dict[tuple[str, tuple[int, ...] | None], ModelProfile] = {}
        self._models: dict[str, nn.Module] = {}

    def profile(self, name: str, input_shape: tuple[int, ...] | None = None) -> ModelProfile:
        """The static profile of a registered model at batch 1, float32 (cached)."""
        from harness.profile import profile

        key = (name, input_shape)
        if key not in self._profiles:
            self._profiles[key] = profile(name, input_shape)
        return self._profiles[key]

    def model(self, name: str) -> nn.Module:
        """A registered model built on the meta device, in eval mode (cached; do not modify)."""
        if name not in self._models:
            import torch

            from harness.models import get_model

            with torch.device("meta"):
                self._models[name] = get_model(name).eval()
        return self._models[name]


Check = Callable[[Context], "Finding | list[Finding]"]


@dataclass(frozen=True)
class Claim:
    """A claim of a source document and the check that decides it with numbers.

    ``text`` is the claim as the project's digest of the sources (CLAIMS.md) states it;
    ``method`` says what the harness computes to decide it; ``tests`` names the pytest tests
    that assert the same numbers.
    """

    id: str
    source: str
    text: str
    check: Check
    kind: str = "static"
    method: str = ""
    tests: tuple[str, ...] = field(default=())

    def evaluate(self, ctx: Context) -> list[ClaimResult]:
        """Run the check; a measured check may give one result per device in the results."""
        found = self.check(ctx)
        findings = found if isinstance(found, list) else [found]
        return [
            ClaimResult(
                id=self.id,
                source=self.source,
                claim=self.text,
                verdict=f.verdict,
                explanation=f.explanation,
                measured={k: _plain(v) for k, v in f.measured.items()},
                kind=self.kind,
                method=self.method,
                rows=f.rows,
                tests=self.tests,
            )
            for f in findings
        ]


def _plain(value: Any) -> Number:
    """numpy scalars as Python numbers (JSON-ready); a missing value (None, NA, NaN) as None."""
    if isinstance(value, (str, bool)):
        return value
    if value is None or pd.isna(value):
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def verdict(ok: bool) -> str:
    """confirmed when ``ok``, else refuted."""
    return CONFIRMED if ok else REFUTED


def pct(share: float, digits: int = 2) -> str:
    """0.03829 -> '3.83%' (for explanations)."""
    return f"{100 * share:.{digits}f}%"


def n(value: int) -> str:
    """60965224 -> '60,965,224' (exact numbers in explanations)."""
    return f"{value:,}"


def n_params(module: nn.Module) -> int:
    """Parameters of a module, each shared tensor once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
