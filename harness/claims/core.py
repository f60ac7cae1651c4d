"""Claims as data, and the one evaluator that decides them.

A ``Claim`` is an id, a kind, the source (document and the quoted sentence), the statement the
harness tests, ``measure(context) -> {name: Quantity}`` and expectations from a small set:

* ``Equals(name, expected)``: exactly this value (a number, a text such as a shape, a yes/no);
* ``Range(name, low, high, strict)``: within bounds ("most" is > 50%, "faster" is > 1x);
* ``Near(name, target, tol, relative)``: within a stated tolerance of a number or of another
  quantity ("about 3x" is 3 ± 0.5, the precision the source gives);
* ``Monotonic(names)``: rising at every step of a series.

A rank correlation is a quantity (``spearman_rho``) with a ``Range``. ``evaluate`` judges each
expectation and combines them (``COMBINATION_RULE``); the explanation is written from the
quantities and the expectations only, so it never states a number that is not one of them.
Torch-free: static measures import torch when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness import units
from harness.results.missing import is_missing

CONFIRMED, REFUTED, PARTLY = "confirmed", "refuted", "partly"
UNDECIDED, INSUFFICIENT = "undecided (noisy)", "insufficient data"
VERDICTS = (REFUTED, UNDECIDED, PARTLY, INSUFFICIENT, CONFIRMED)  # the compact listing's order
KINDS = ("static", "measured", "structural")
HOLDS, FAILS, NOISY, MISSING = "holds", "fails", "undecided", "missing"
COMBINATION_RULE = (
    "insufficient data when a quantity is missing; otherwise partly when some expectations hold "
    "and some fail, undecided (noisy) when a 95% interval straddles a bound and nothing fails "
    "outright, confirmed when every expectation holds, refuted when none does"
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
UNITS = tuple(_FORMATS)


def fmt(value: Any, unit: str) -> str:
    """A quantity's value for people, through harness.units ('yes'/'no' for a truth value)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _FORMATS[unit](value)


def _bound(value: Any, unit: str) -> str:
    """A rule's constant: a share with no more digits than it has (50%, 3.8%, 0.05%)."""
    if unit == "share":
        exact = round(100 * value, 6)
        digits = next((d for d in range(4) if round(100 * value, d) == exact), 4)
        return units.percent(value, digits)
    return fmt(value, unit)


@dataclass(frozen=True)
class Quantity:
    """A named number (or text) with its unit; ``low``/``high`` a 95% interval where measured;
    ``value`` None when missing, ``why`` then says why (the row's status, its noise...)."""

    value: Any
    unit: str
    low: float | None = None
    high: float | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.unit not in _FORMATS:  # a bug in a claim definition, not user input
            raise ValueError(f"unit {self.unit!r} is not one of {UNITS}")

    @property
    def missing(self) -> bool:
        return is_missing(self.value)

    def text(self) -> str:
        if self.missing:
            return f"missing ({self.why or 'not recorded'})"
        shown = fmt(self.value, self.unit)
        if self.low is not None and self.high is not None:
            shown += f" (interval {fmt(self.low, self.unit)} to {fmt(self.high, self.unit)})"
        return shown

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if not isinstance(value, (str, bool)) and not self.missing:
            value = value.item() if hasattr(value, "item") else value
        return {
            "value": None if self.missing else value,
            "unit": self.unit,
            "low": self.low,
            "high": self.high,
            "why": self.why or None,
            "text": self.text(),
        }


def q(value: Any, unit: str, low: Any = None, high: Any = None, why: str = "") -> Quantity:
    """A Quantity; numpy scalars become Python numbers, pandas' missing values None."""

    def plain(v: Any) -> Any:
        if is_missing(v):
            return None
        return v.item() if hasattr(v, "item") and not isinstance(v, (str, bool)) else v

    return Quantity(plain(value), unit, plain(low), plain(high), why)


@dataclass(frozen=True)
class Ref:
    """An expectation's target that is another quantity of the claim, named."""

    name: str


@dataclass(frozen=True)
class Outcome:
    status: str  # holds, fails, undecided, missing
    text: str


Quantities = Mapping[str, Quantity]


def _missing(qs: Quantities, names: list[str]) -> Outcome | None:
    """One outcome naming every missing quantity, grouped by why it is missing."""
    whys: dict[str, list[str]] = {}
    for n in dict.fromkeys(names):
        if n not in qs or qs[n].missing:
            why = (qs[n].why if n in qs else "") or "not recorded"
            whys.setdefault(why, []).append(n)
    if not whys:
        return None
    return Outcome(MISSING, "; ".join(f"{', '.join(ns)} ({why})" for why, ns in whys.items()))


def _target(qs: Quantities, target: Any, unit: str) -> tuple[Any, str]:
    """(value, text) of a target: a constant, or the quantity a Ref names."""
    if isinstance(target, Ref):
        return qs[target.name].value, f"{target.name} {qs[target.name].text()}"
    return target, _bound(target, unit)


def _interval(quantity: Quantity) -> tuple[float, float]:
    v = float(quantity.value)
    if quantity.low is None or quantity.high is None:
        return v, v
    return float(quantity.low), float(quantity.high)


def _judge_interval(lo: float, hi: float, low: float | None, high: float | None,
                    strict: bool) -> str:  # fmt: skip
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
        return (self.name, self.expected.name) if isinstance(self.expected, Ref) else (self.name,)

    def rule(self) -> str:
        e = self.expected
        return f"{self.name} = {e.name if isinstance(e, Ref) else _plain_text(e)}"

    def judge(self, qs: Quantities) -> Outcome:
        got = qs[self.name]
        want, want_text = _target(qs, self.expected, got.unit)
        status = HOLDS if got.value == want else FAILS
        return Outcome(status, f"{self.name} {got.text()}, expected {want_text}")


def _plain_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return units.grouped(value) if isinstance(value, int) else str(value)


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
        lt, gt = ("<", ">") if self.strict else ("<=", ">=")
        if self.low is not None and self.high is not None:
            return f"between {_bound(self.low, unit)} and {_bound(self.high, unit)}"
        if self.low is not None:
            return f"{gt} {_bound(self.low, unit)}"
        return f"{lt} {_bound(self.high, unit)}"

    def rule(self, unit: str = "text") -> str:
        return f"{self.name} {self._bounds(unit)}"

    def judge(self, qs: Quantities) -> Outcome:
        got = qs[self.name]
        status = _judge_interval(*_interval(got), self.low, self.high, self.strict)
        return Outcome(status, f"{self.name} {got.text()}, expected {self._bounds(got.unit)}")


@dataclass(frozen=True)
class Near:
    name: str
    target: Any  # a constant or a Ref
    tol: float
    relative: bool = False  # tol as a share of the target

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, self.target.name) if isinstance(self.target, Ref) else (self.name,)

    def _within(self, unit: str) -> str:
        return units.percent(self.tol, 0) if self.relative else _bound(self.tol, unit)

    def rule(self, unit: str = "text") -> str:
        t = self.target.name if isinstance(self.target, Ref) else _bound(self.target, unit)
        return f"{self.name} within ±{self._within(unit)} of {t}"

    def judge(self, qs: Quantities) -> Outcome:
        got = qs[self.name]
        target, target_text = _target(qs, self.target, got.unit)
        spread = abs(target) * self.tol if self.relative else self.tol
        status = _judge_interval(*_interval(got), target - spread, target + spread, False)
        text = f"{self.name} {got.text()}, expected within ±{self._within(got.unit)} of "
        return Outcome(status, text + target_text)


@dataclass(frozen=True)
class Monotonic:
    """Strictly rising along ``names``: each step rises beyond the intervals (the next value's
    low end above the previous one's high end)."""

    names: tuple[str, ...]

    def rule(self, unit: str = "text") -> str:
        return " < ".join(self.names)

    def judge(self, qs: Quantities) -> Outcome:
        pairs = list(zip(self.names, self.names[1:], strict=False))
        steps = []
        for a, b in pairs:
            (lo_a, hi_a), (lo_b, hi_b) = _interval(qs[a]), _interval(qs[b])
            steps.append(HOLDS if lo_b > hi_a else FAILS if hi_b <= lo_a else NOISY)
        status = FAILS if FAILS in steps else NOISY if NOISY in steps else HOLDS
        series = ", ".join(f"{n} {qs[n].text()}" for n in self.names)
        why = {FAILS: "does not rise", NOISY: "unclear: the intervals overlap"}
        notes = [f"{a} to {b} {why[s]}" for (a, b), s in zip(pairs, steps, strict=True) if s in why]
        return Outcome(status, f"{series}, expected rising" + "".join(f"; {n}" for n in notes))


Expectation = Equals | Range | Near | Monotonic


def rule_text(expectation: Expectation, qs: Quantities | None = None) -> str:
    """The expectation as a rule, its constants in the unit of the quantity it judges."""
    if isinstance(expectation, Equals):
        return expectation.rule()
    unit = "text"
    if qs is not None and expectation.names[0] in qs:
        unit = qs[expectation.names[0]].unit
    return expectation.rule(unit)


@dataclass(frozen=True)
class Claim:
    """A claim of a source document and the numbers that decide it.

    ``measure`` gets a static context (``profile``, ``model``) or, for a measured claim, the
    rows of one configuration (``harness.claims.rows.Rows``); ``models`` names the models whose
    rows a measured claim reads (empty: any). ``tests`` are pytest tests asserting the same
    numbers by other means.
    """

    id: str
    kind: str
    source: str
    quote: str
    statement: str
    measure: Callable[[Any], dict[str, Quantity]]
    expect: tuple[Expectation, ...]
    models: tuple[str, ...] = ()
    tests: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class ClaimResult:
    """A verdict, written by ``evaluate``: the outcome of each expectation, the quantities, the
    rules, and for a measured claim the configuration and run its rows came from."""

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
        """JSON-ready; every field a report or a tool needs to render the verdict."""
        c = self.claim
        return {
            "id": c.id,
            "kind": c.kind,
            "verdict": self.verdict,
            "explanation": self.explanation,
            "source": c.source,
            "quote": c.quote,
            "statement": c.statement,
            "rule": list(self.rules),
            "combination_rule": COMBINATION_RULE,
            "outcomes": [{"status": o.status, "text": o.text} for o in self.outcomes],
            "quantities": {k: v.to_dict() for k, v in self.quantities.items()},
            "rows": self.rows or None,
            "tests": list(c.tests),
        }

    def __str__(self) -> str:
        return f"{self.id}: {self.verdict}: {self.explanation}"


def evaluate(claim: Claim, quantities: Mapping[str, Quantity], rows: str = "") -> ClaimResult:
    """The one place a verdict is decided and explained (``COMBINATION_RULE``)."""

    def absent(n: str) -> bool:
        return n not in quantities or quantities[n].missing

    judged = [e for e in claim.expect if not any(map(absent, e.names))]
    outcomes = [e.judge(quantities) for e in judged]
    gone = _missing(quantities, [n for e in claim.expect for n in e.names])
    if gone:  # also state what the undecidable expectations were given
        given = [n for e in claim.expect if e not in judged for n in e.names if not absent(n)]
        shown = ", ".join(f"{n} {quantities[n].text()}" for n in dict.fromkeys(given))
        outcomes.insert(0, Outcome(MISSING, gone.text + (f"; given {shown}" if shown else "")))
    status = {o.status for o in outcomes}
    if MISSING in status:
        verdict = INSUFFICIENT
    elif HOLDS in status and FAILS in status:
        verdict = PARTLY
    elif NOISY in status:
        verdict = UNDECIDED
    else:
        verdict = CONFIRMED if status == {HOLDS} else REFUTED
    order = (MISSING, FAILS, NOISY, HOLDS)  # what decided first
    ranked = sorted(outcomes, key=lambda o: order.index(o.status))
    explanation = "; ".join(f"{o.status}: {o.text}" for o in ranked)
    rules = tuple(rule_text(e, quantities) for e in claim.expect)
    return ClaimResult(claim, verdict, explanation, tuple(ranked), dict(quantities), rules, rows)
