"""Claims as data, and the one evaluator that decides them.

A ``Claim`` is an id, a kind, the source (document and the quoted sentence), the statement the
harness tests, ``measure(context) -> {name: Quantity}`` and expectations from a small set:
``Equals`` (exactly this value, or another quantity's), ``Range`` (within bounds: "most" is
> 50%, "faster" > 1x), ``Near`` (within a stated tolerance of a number or of another quantity:
"about 3x" is 3 ± 0.5, the precision the source gives) and ``Monotonic`` (rising at every step).
A rank correlation is a quantity (``spearman_rho``) with a ``Range``.

``evaluate`` judges each expectation and combines them (``COMBINATION_RULE``). The explanation
is written from the quantities and the expectations' constants only: it never states a number
that is not one of them. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from harness.core import units
from harness.core.missing import is_missing

CONFIRMED, REFUTED, PARTLY = "confirmed", "refuted", "partly"
UNDECIDED, INSUFFICIENT = "undecided (noisy)", "insufficient data"
VERDICTS = (REFUTED, UNDECIDED, PARTLY, INSUFFICIENT, CONFIRMED)  # the compact listing's order
KINDS = ("static", "measured", "structural")
HOLDS, FAILS, NOISY, MISSING = "holds", "fails", "undecided", "missing"
COMBINATION_RULE = (
    "insufficient data when a quantity is missing; otherwise partly when some expectations hold "
    "and some fail, undecided (noisy) when a measured interval (95% for a median, at least 90% "
    "for a ratio of two) straddles a bound and nothing fails outright, confirmed when every "
    "expectation holds, refuted when none does"
)
_FORMATS: dict[str, Callable[[Any], str]] = {
    "count": units.grouped,
    "MACs": lambda v: f"{units.grouped(v)} MACs",
    "bytes": units.nbytes,
    "s": units.seconds,
    "x": lambda v: units.ratio(v, 4),
    "share": lambda v: units.percent(v, 2),
    "number": lambda v: units.si(v, "", 3),
    "MAC/s": lambda v: units.si(v, "MAC/s", 3),
    "MAC/J": lambda v: units.si(v, "MAC/J", 3),
    "text": str,
}


def fmt(value: Any, unit: str, bound: bool = False) -> str:
    """A value for people, through harness.core.units ('yes'/'no' for a truth value); a rule's
    constant (``bound``) as a share keeps only the digits it has (50%, 3.8%, 0.05%)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if bound and unit == "share" and value is not None:
        exact = round(100 * value, 6)
        return units.percent(
            value, next((d for d in range(4) if round(100 * value, d) == exact), 4)
        )
    if bound and unit == "text" and isinstance(value, int):
        return units.grouped(value)
    return _FORMATS[unit](value)


def _plain(v: Any) -> Any:
    """numpy scalars as Python numbers; pandas' missing values as None."""
    if is_missing(v):
        return None
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bool)) else v


@dataclass(frozen=True)
class Quantity:
    """A value (number, text, yes/no) with its unit; ``low``/``high`` a 95% interval where
    measured; ``value`` None when missing, ``why`` then says why (the row's status, noise)."""

    value: Any
    unit: str
    low: float | None = None
    high: float | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.unit not in _FORMATS:  # a bug in a claim definition, not user input
            raise ValueError(f"unit {self.unit!r} is not one of {tuple(_FORMATS)}")

    @property
    def missing(self) -> bool:
        return self.value is None

    def text(self) -> str:
        if self.missing:
            return f"missing ({self.why or 'not recorded'})"
        if self.low is None or self.high is None:
            return fmt(self.value, self.unit)
        ends = f"{fmt(self.low, self.unit)} to {fmt(self.high, self.unit)}"
        return f"{fmt(self.value, self.unit)} (interval {ends})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"why": self.why or None, "text": self.text()}


def q(value: Any, unit: str, low: Any = None, high: Any = None, why: str = "") -> Quantity:
    """A Quantity from any value a frame or a profile holds."""
    return Quantity(_plain(value), unit, _plain(low), _plain(high), why)


def as_quantity(value: Any) -> Quantity:
    """What a measure returned: a Quantity, or a plain value whose unit is plain (an integer
    is a count, a text or a yes/no is text); any other number must say its unit."""
    if isinstance(value, Quantity):
        return value
    if isinstance(value, (str, bool)):
        return q(value, "text")
    if isinstance(_plain(value), int):
        return q(value, "count")
    raise TypeError(f"{value!r}: a measured number other than a count needs q(value, unit)")


@dataclass(frozen=True)
class Ref:
    """An expectation's target that is another quantity of the claim, by name."""

    name: str


@dataclass(frozen=True)
class Outcome:
    status: str  # holds, fails, undecided, missing
    text: str


Quantities = Mapping[str, Quantity]


def _names(*items: Any) -> tuple[str, ...]:
    return tuple(i.name if isinstance(i, Ref) else i for i in items if isinstance(i, (str, Ref)))


def _target(qs: Quantities, target: Any, unit: str) -> tuple[Any, str]:
    """(value, text) of a target: a constant, or the quantity a Ref names."""
    if isinstance(target, Ref):
        return qs[target.name].value, f"{target.name} {qs[target.name].text()}"
    return target, fmt(target, unit, bound=True)


def _interval(quantity: Quantity) -> tuple[float, float]:
    if quantity.low is None or quantity.high is None:
        return float(quantity.value), float(quantity.value)
    return float(quantity.low), float(quantity.high)


def _judge(lo: float, hi: float, low: float | None, high: float | None, strict: bool) -> str:
    """holds when all of [lo, hi] is within the bounds, fails when none of it is, else
    undecided (the interval straddles a bound)."""

    def inside(x: float) -> bool:
        above = low is None or (x > low if strict else x >= low)
        return above and (high is None or (x < high if strict else x <= high))

    if inside(lo) and inside(hi):
        return HOLDS
    below = low is not None and (hi <= low if strict else hi < low)
    beyond = high is not None and (lo >= high if strict else lo > high)
    return FAILS if below or beyond else NOISY


@dataclass(frozen=True)
class Equals:
    name: str
    expected: Any  # a constant or a Ref

    @property
    def names(self) -> tuple[str, ...]:
        return _names(self.name, self.expected if isinstance(self.expected, Ref) else None)

    def rule(self, unit: str) -> str:
        e = self.expected
        return f"{self.name} = {e.name if isinstance(e, Ref) else fmt(e, unit, bound=True)}"

    def judge(self, qs: Quantities) -> Outcome:
        got = qs[self.name]
        want, text = _target(qs, self.expected, got.unit)
        return Outcome(HOLDS if got.value == want else FAILS,
                       f"{self.name} {got.text()}, expected {text}")  # fmt: skip


@dataclass(frozen=True)
class Range:
    name: str
    low: float | None = None
    high: float | None = None
    strict: bool = False  # > and < instead of >= and <=

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def _bounds(self, unit: str) -> str:
        low, high = (fmt(b, unit, bound=True) for b in (self.low, self.high))
        if self.low is not None and self.high is not None:
            return f"between {low} and {high}"
        return f"{'>' if self.strict else '>='} {low}" if self.low is not None else (
            f"{'<' if self.strict else '<='} {high}")  # fmt: skip

    def rule(self, unit: str) -> str:
        return f"{self.name} {self._bounds(unit)}"

    def judge(self, qs: Quantities) -> Outcome:
        got = qs[self.name]
        status = _judge(*_interval(got), self.low, self.high, self.strict)
        return Outcome(status, f"{self.name} {got.text()}, expected {self._bounds(got.unit)}")


@dataclass(frozen=True)
class Near:
    name: str
    target: Any  # a constant or a Ref
    tol: float
    relative: bool = False  # tol as a share of the target

    @property
    def names(self) -> tuple[str, ...]:
        return _names(self.name, self.target if isinstance(self.target, Ref) else None)

    def _within(self, unit: str) -> str:
        tol = units.percent(self.tol, 0) if self.relative else fmt(self.tol, unit, bound=True)
        return f"within ±{tol} of "

    def rule(self, unit: str) -> str:
        t = self.target.name if isinstance(self.target, Ref) else fmt(self.target, unit, True)
        return f"{self.name} {self._within(unit)}{t}"

    def judge(self, qs: Quantities) -> Outcome:
        got = qs[self.name]
        target, text = _target(qs, self.target, got.unit)
        spread = abs(target) * self.tol if self.relative else self.tol
        status = _judge(*_interval(got), target - spread, target + spread, False)
        return Outcome(status, f"{self.name} {got.text()}, expected {self._within(got.unit)}{text}")


@dataclass(frozen=True)
class Monotonic:
    """Strictly rising along ``names``: each value's interval above the previous one's."""

    names: tuple[str, ...]

    def rule(self, unit: str) -> str:
        return " < ".join(self.names)

    def judge(self, qs: Quantities) -> Outcome:
        pairs = list(zip(self.names, self.names[1:], strict=False))
        steps = []
        for a, b in pairs:
            (lo_a, hi_a), (lo_b, hi_b) = _interval(qs[a]), _interval(qs[b])
            steps.append(HOLDS if lo_b > hi_a else FAILS if hi_b <= lo_a else NOISY)
        status = FAILS if FAILS in steps else NOISY if NOISY in steps else HOLDS
        why = {FAILS: "does not rise", NOISY: "unclear: the intervals overlap"}
        notes = "".join(f"; {a} to {b} {why[s]}" for (a, b), s in zip(pairs, steps, strict=True)
                        if s in why)  # fmt: skip
        series = ", ".join(f"{n} {qs[n].text()}" for n in self.names)
        return Outcome(status, f"{series}, expected rising{notes}")


Expectation = Equals | Range | Near | Monotonic


@dataclass(frozen=True)
class Claim:
    """A claim of a source document and the numbers that decide it.

    ``measure`` gets the static context (``harness.claims.static.Models``) or, for a measured
    claim, the rows of one configuration (``harness.claims.rows.Rows``); ``models`` names the
    models whose rows a measured claim reads (empty: any). ``tests`` assert the same numbers
    by other means.
    """

    id: str
    kind: str
    source: str
    quote: str
    statement: str
    measure: Callable[[Any], dict[str, Any]]  # name -> Quantity, or a count or text
    expect: tuple[Expectation, ...]
    models: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class ClaimResult:
    """A verdict as ``evaluate`` wrote it: each expectation's outcome (what decided first),
    the quantities, the rules, and for a measured claim the configuration and run."""

    claim: Claim
    verdict: str
    explanation: str
    outcomes: tuple[Outcome, ...]
    quantities: dict[str, Quantity]
    rules: tuple[str, ...]
    rows: str = ""

    @property
    def id(self) -> str:
        return self.claim.id

    @property
    def kind(self) -> str:
        return self.claim.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what a report or a tool needs to render the verdict."""
        c = self.claim
        return {
            "id": c.id, "kind": c.kind, "verdict": self.verdict, "explanation": self.explanation,
            "source": c.source, "quote": c.quote, "statement": c.statement,
            "rule": list(self.rules), "combination_rule": COMBINATION_RULE,
            "outcomes": [asdict(o) for o in self.outcomes],
            "quantities": {k: v.to_dict() for k, v in self.quantities.items()},
            "rows": self.rows or None, "tests": list(c.tests),
        }  # fmt: skip

    def __str__(self) -> str:
        return f"{self.id}: {self.verdict}: {self.explanation}"


def evaluate(claim: Claim, quantities: Mapping[str, Any], rows: str = "") -> ClaimResult:
    """The one place a verdict is decided and explained (``COMBINATION_RULE``)."""
    qs = {k: as_quantity(v) for k, v in quantities.items()}

    def absent(n: str) -> bool:
        return n not in qs or qs[n].missing

    judged = [e for e in claim.expect if not any(map(absent, e.names))]
    outcomes = [e.judge(qs) for e in judged]
    names = list(dict.fromkeys(n for e in claim.expect for n in e.names))
    whys: dict[str, list[str]] = {}  # every missing quantity, grouped by why
    for n in filter(absent, names):
        whys.setdefault((qs[n].why if n in qs else "") or "not recorded", []).append(n)
    if whys:  # also state what the undecidable expectations were given
        text = "; ".join(f"{', '.join(ns)} ({why})" for why, ns in whys.items())
        given = [n for e in claim.expect if e not in judged for n in e.names if not absent(n)]
        text += "".join(f"; given {n} {qs[n].text()}" for n in dict.fromkeys(given))
        outcomes.insert(0, Outcome(MISSING, text))
    status = {o.status for o in outcomes}
    if MISSING in status:
        verdict = INSUFFICIENT
    elif HOLDS in status and FAILS in status:
        verdict = PARTLY
    elif NOISY in status:
        verdict = UNDECIDED
    else:
        verdict = CONFIRMED if status == {HOLDS} else REFUTED
    order = (MISSING, FAILS, NOISY, HOLDS)
    ranked = tuple(sorted(outcomes, key=lambda o: order.index(o.status)))
    explanation = "; ".join(f"{o.status}: {o.text}" for o in ranked)
    rules = tuple(e.rule(qs[e.names[0]].unit if e.names[0] in qs else "text") for e in claim.expect)
    return ClaimResult(claim, verdict, explanation, ranked, qs, rules, rows)
