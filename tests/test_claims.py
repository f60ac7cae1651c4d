"""The claims as data and their one evaluator: for every claim a set of quantities that must
confirm and one that must refute (measured claims also one with a missing value and one with an
interval straddling the bound), each explanation stating the quantities it was given; a property
test that no explanation holds a number that is not one of its quantities or its rule; the
explicit order; the command. Static numbers against formulas: test_claims_static.py; measured
claims from result rows: test_claims_measured.py.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from typing import Any

import pytest

from harness.claims import (
    CLAIMS,
    CONFIRMED,
    INSUFFICIENT,
    ORDER,
    PARTLY,
    REFUTED,
    UNDECIDED,
    VERDICTS,
    check_claims,
    select_claims,
)
from harness.claims.core import (
    Equals,
    Monotonic,
    Near,
    Quantity,
    Range,
    Ref,
    as_quantity,
    evaluate,
    fmt,
    q,
)
from harness.claims.static import Models
from harness.cli.main import main
from harness.core.errors import InvalidInputError

BY_ID = {c.id: c for c in CLAIMS}
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@pytest.fixture(scope="module")
def real() -> dict[str, dict[str, Quantity]]:
    """The quantities the static and structural claims measure on the zoo (meta device)."""
    models = Models()
    return {
        c.id: {k: as_quantity(v) for k, v in c.measure(models).items()}
        for c in CLAIMS
        if c.kind != "measured"
    }


def names(claim_id: str) -> list[str]:
    return list(dict.fromkeys(n for e in BY_ID[claim_id].expect for n in e.names))


def left_names(claim_id: str) -> list[str]:
    """The quantity each expectation judges (not a Ref target)."""
    return [e.names[0] for e in BY_ID[claim_id].expect if not isinstance(e, Monotonic)]


def other(value: Any) -> Any:
    """A value that differs: a text changed, a yes/no flipped, a number moved far off."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "-changed"
    return value * 3 + 7


def override(base: dict[str, Quantity], values: dict[str, Any]) -> dict[str, Quantity]:
    out = dict(base)
    for name, v in values.items():
        unit = base[name].unit if name in base else "count"
        out[name] = v if isinstance(v, Quantity) else q(v, unit)
    return out


# Static and structural claims: the zoo's numbers, with these values changed. Where the zoo's
# numbers refute (the documents are wrong), the confirming set puts in what the source says.
CONFIRM = {
    "cs231n.vgg16_total": {"rows_values": 24_000_000},
    "googlenet.inception_3a_weights": {"weights_ratio": 3.0},
    "googlenet.params_vs_alexnet": {"two_gpu_ratio": 12.0, "torchvision_ratio": 11.6},
}
REFUTE = {  # every expectation must fail; Equals claims get every judged value changed
    "lenet5.params": {"trainable_params": 61_706, "output_trainable_params": 840},
    "alexnet.conv_fc_split": {"conv_share": 0.0404, "fc_share": 0.9596, "params": 58_000_000},
    "vgg.params_vs_depth": {"params_11_to_19_change": 0.5, "vgg11_fc_share": 0.4,
                            "vgg19_fc_share": 0.3},
    "cs231n.vgg16_memory": {"conv_pool_activation_share": 0.4, "early_activation_share": 0.3,
                            "fc_params_share": 0.2},
    "cs231n.vgg16_params": {"params": 143_667_240},
    "googlenet.inception_3a_weights": {"weights_ratio": 2.37},
    "googlenet.params_vs_alexnet": {"two_gpu_ratio": 9.2, "torchvision_ratio": 12.6},
    "inception_resnet.scale": {**{f"{n}_{end}_scale": 1.0 for n in (
        "inception_resnet_v1", "inception_resnet_v2_paper", "inception_resnet_v2")
        for end in ("min", "max")}, "inception_resnet_v2_final_block_scale": 0.2},
}  # fmt: skip


def measured_sets() -> dict[str, dict[str, dict[str, Quantity]]]:
    """For each measured claim: confirm, refute, missing and straddle quantities, by hand."""
    resnets = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

    def depth(lat: list[Quantity], rising: bool = True) -> dict[str, Quantity]:
        k = 1 if rising else -1
        out = {}
        for i, m in enumerate(resnets):
            out |= {f"{m}_params": q(10_000_000 + k * i * 1_000_000, "count"),
                    f"{m}_macs": q(2_000_000_000 + k * i * 10**9, "MACs"),
                    f"{m}_peak_memory_bytes": q(50 * 2**20 + k * i * 2**20, "bytes"),
                    f"{m}_latency_s": lat[i]}  # fmt: skip
        return out

    rising = [q(t, "s", t * 0.99, t * 1.01) for t in (0.02, 0.04, 0.05, 0.1, 0.15)]
    falling = [q(t, "s", t * 0.99, t * 1.01) for t in (0.15, 0.1, 0.05, 0.04, 0.02)]
    overlap = [*rising[:2], q(0.041, "s", 0.039, 0.043), *rising[3:]]

    def plain(r18: Quantity, r34: Quantity) -> dict[str, Quantity]:
        return {"resnet18_to_plain18_latency_ratio": r18, "resnet18_to_plain18_macs_ratio":
                q(1.011, "x"), "resnet34_to_plain34_latency_ratio": r34,
                "resnet34_to_plain34_macs_ratio": q(1.005, "x")}  # fmt: skip

    def ratio(v: float, lo: float, hi: float) -> dict[str, Quantity]:
        return {"naive_to_reduced_latency_ratio": q(v, "x", lo, hi),
                "naive_to_reduced_macs_ratio": q(2.37, "x")}  # fmt: skip

    def rho(v: Quantity) -> dict[str, Quantity]:
        return {"spearman_rho": v, "resnet18_MAC_per_s": q(6.86e10, "MAC/s")}

    def fc(params: float, time: Quantity) -> dict[str, Quantity]:
        return {"fc_params_share": q(params, "share"), "fc_time_share": time,
                "fc_macs_share": q(0.008, "share")}  # fmt: skip

    noisy = "noisy row: IQR 36% of the median (limit 25%)"
    return {
        "resnet.depth_vs_cost": {
            "confirm": depth(rising), "refute": depth(falling, rising=False),
            "missing": depth([*rising[:4], q(None, "s", why=noisy)]),
            "straddle": depth(overlap)},
        "resnet.plain_vs_residual_time": {
            "confirm": plain(q(1.02, "x", 0.99, 1.05), q(1.03, "x", 1.0, 1.06)),
            "refute": plain(q(1.41, "x", 1.3, 1.5), q(2.0, "x", 1.9, 2.1)),
            "missing": plain(q(1.02, "x", 0.99, 1.05), q(None, "x", why="oom: out of memory")),
            "straddle": plain(q(1.41, "x", 0.57, 3.54), q(1.03, "x", 1.0, 1.06))},
        "googlenet.inception_3a_time": {
            "confirm": ratio(1.355, 1.34, 1.37), "refute": ratio(0.8, 0.78, 0.82),
            "missing": {"naive_to_reduced_latency_ratio": q(None, "x", why=noisy)},
            "straddle": ratio(1.05, 0.9, 1.2)},
        "macs_vs_time": {
            "confirm": rho(q(0.957, "number")), "refute": rho(q(0.31, "number")),
            "missing": rho(q(None, "number", why="2 valid row(s); a rank correlation needs 3")),
            "straddle": rho(q(0.9, "number", 0.85, 0.95))},
        "macs_vs_energy": {
            "confirm": rho(q(1.0, "number")), "refute": rho(q(0.5, "number")),
            "missing": rho(q(None, "number", why="power: unavailable: NVML library not found")),
            "straddle": rho(q(0.92, "number", 0.8, 0.97))},
        "vgg16.fc_time_share": {
            "confirm": fc(0.894, q(0.05, "share")), "refute": fc(0.3, q(0.4, "share")),
            "missing": fc(0.894, q(None, "share", why="no layer times for the vgg16 row")),
            "straddle": fc(0.894, q(0.08, "share", 0.05, 0.15))},
    }  # fmt: skip


MEASURED_SETS = measured_sets()


def sets_of(claim_id: str, real: dict[str, dict[str, Quantity]]) -> dict[str, dict]:
    if claim_id in MEASURED_SETS:
        return MEASURED_SETS[claim_id]
    base = real[claim_id]
    refute = REFUTE.get(claim_id) or {n: other(base[n].value) for n in left_names(claim_id)}
    return {"confirm": override(base, CONFIRM.get(claim_id, {})), "refute": override(base, refute)}


EXPECTED = {"confirm": CONFIRMED, "refute": REFUTED, "missing": INSUFFICIENT,
            "straddle": UNDECIDED}  # fmt: skip


def assert_states_its_quantities(result: Any, given: dict[str, Quantity], claim_id: str) -> None:
    for name in names(claim_id):
        quantity = given[name]
        assert name in result.explanation, (claim_id, name, result.explanation)
        shown = quantity.why if quantity.missing else fmt(quantity.value, quantity.unit)
        assert shown in result.explanation, (claim_id, name, shown, result.explanation)


@pytest.mark.parametrize("claim_id", ORDER)
def test_every_claim_confirms_and_refutes_on_its_quantities(claim_id: str, real: dict) -> None:
    sets = sets_of(claim_id, real)
    assert {"confirm", "refute"} <= set(sets)
    if BY_ID[claim_id].kind == "measured":
        assert set(sets) == {"confirm", "refute", "missing", "straddle"}
    for label, given in sets.items():
        result = evaluate(BY_ID[claim_id], given)
        assert result.verdict == EXPECTED[label], (claim_id, label, result.explanation)
        assert_states_its_quantities(result, given, claim_id)
        assert len(result.rules) == len(BY_ID[claim_id].expect)


def test_the_zoo_decides_what_the_documents_get_right_and_wrong(real: dict) -> None:
    got = {c: evaluate(BY_ID[c], qs).verdict for c, qs in real.items()}
    wrong = {
        "cs231n.vgg16_total": REFUTED,
        "googlenet.inception_3a_weights": REFUTED,
        "googlenet.params_vs_alexnet": REFUTED,
    }
    assert got == {c: wrong.get(c, CONFIRMED) for c in real}  # fmt: skip


def test_missing_names_the_quantity_and_why() -> None:
    claim = BY_ID["googlenet.inception_3a_time"]
    result = evaluate(claim, {})
    assert result.verdict == INSUFFICIENT
    assert "naive_to_reduced_latency_ratio" in result.explanation
    assert "not recorded" in result.explanation


def test_intervals_decide_only_when_clear_of_the_bound() -> None:
    def verdict(e: Any, **qs: Quantity) -> str:
        from harness.claims.core import Claim

        return evaluate(Claim("t", "measured", "s", "q", "s", lambda _: {}, (e,)), qs).verdict

    above = Range("r", 1.0, strict=True)
    assert verdict(above, r=q(1.2, "x", 1.1, 1.3)) == CONFIRMED
    assert verdict(above, r=q(0.8, "x", 0.7, 0.9)) == REFUTED
    assert verdict(above, r=q(1.2, "x", 0.9, 1.3)) == UNDECIDED
    assert verdict(above, r=q(1.0, "x")) == REFUTED  # strictly above: 1 is not
    near = Near("r", Ref("m"), 0.10, relative=True)
    assert verdict(near, r=q(1.08, "x", 1.06, 1.09), m=q(1.0, "x")) == CONFIRMED
    assert verdict(near, r=q(1.5, "x", 1.4, 1.6), m=q(1.0, "x")) == REFUTED
    assert verdict(near, r=q(1.41, "x", 0.57, 3.54), m=q(1.0, "x")) == UNDECIDED  # issue 14
    series = Monotonic(("a", "b"))
    assert verdict(series, a=q(1, "s", 0.9, 1.1), b=q(2, "s", 1.9, 2.1)) == CONFIRMED
    assert verdict(series, a=q(2, "s", 1.9, 2.1), b=q(1, "s", 0.9, 1.1)) == REFUTED
    assert verdict(series, a=q(1, "s", 0.9, 1.1), b=q(1.05, "s", 1.0, 1.2)) == UNDECIDED
    assert verdict(series, a=q(1, "count"), b=q(1, "count")) == REFUTED  # equal is no rise
    two = (Equals("a", 1), Equals("b", 2))
    from harness.claims.core import Claim

    both = Claim("t", "static", "s", "q", "s", lambda _: {}, two)
    assert evaluate(both, {"a": q(1, "count"), "b": q(3, "count")}).verdict == PARTLY


def _random_value(rng: random.Random, unit: str, like: Any) -> Quantity:
    if rng.random() < 0.1:
        return q(None, unit, why="oom: out of memory")
    if isinstance(like, bool):
        return q(rng.random() < 0.5, unit)
    if isinstance(like, str):
        return q(rng.choice([like, like + "x", "3x3/2"]), unit)
    scale = abs(like) if like else 1.0
    v = rng.choice([like, scale * rng.uniform(0, 3), float(rng.randint(0, 10**9))])
    if unit in ("count", "MACs") and rng.random() < 0.5:
        v = int(v)
    if rng.random() < 0.3 and v:
        return q(v, unit, v * rng.uniform(0.5, 1), v * rng.uniform(1, 1.5))
    return q(v, unit)


def test_property_no_explanation_states_a_number_it_was_not_given(real: dict) -> None:
    """Seeded random quantities for every claim: every number in the explanation is one of the
    quantities (value or interval end, as formatted) or a constant of the claim's rules."""
    rng = random.Random(14)
    for claim in CLAIMS:
        base = sets_of(claim.id, real)["confirm"]
        for _ in range(60):
            given = {n: _random_value(rng, base[n].unit, base[n].value) for n in names(claim.id)}
            result = evaluate(claim, given)
            allowed = set()
            for qty in given.values():
                shown = (
                    [qty.why]
                    if qty.missing
                    else [fmt(v, qty.unit) for v in (qty.value, qty.low, qty.high) if v is not None]
                )
                allowed |= {t for s in shown for t in NUMBER.findall(s)}
            allowed |= {t for rule in result.rules for t in NUMBER.findall(rule)}
            text = result.explanation
            for name in sorted(given, key=len, reverse=True):  # names hold digits (resnet18)
                text = text.replace(name, "")
            stray = set(NUMBER.findall(text)) - allowed
            assert not stray, (claim.id, stray, result.explanation)


def test_order_is_explicit_by_id() -> None:
    ids = [c.id for c in CLAIMS]
    assert ids == list(ORDER) and len(set(ids)) == len(ids) == 34
    assert ids[:4] == ["lenet5.maps", "lenet5.layers", "lenet5.c3_table", "lenet5.params"]
    assert ids[-3:] == ["vgg16.fc_time_share", "macs_vs_time", "macs_vs_energy"]
    assert {c.kind for c in CLAIMS} == {"static", "structural", "measured"}
    structural = {c.id for c in CLAIMS if c.kind == "structural"}
    assert {"lenet5.c3_table", "vgg.kernels", "alexnet.layout", "inception_resnet.scale",
            "inception_resnet.projection"} <= structural  # fmt: skip


def test_select_claims_by_pattern_and_kind() -> None:
    assert [c.id for c in select_claims("cs231n.*")] == [
        "cs231n.vgg16_memory", "cs231n.vgg16_total", "cs231n.vgg16_params"]  # fmt: skip
    assert {c.kind for c in select_claims(kinds=["measured"])} == {"measured"}
    with pytest.raises(InvalidInputError, match="no claim id matches"):
        select_claims("no.such.claim")


def test_claim_tests_exist() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for claim in CLAIMS:
        for node in claim.tests:
            path, _, name = node.partition("::")
            tree = ast.parse((root / path).read_text())
            assert name in {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}, node


def test_importing_claims_and_deciding_measured_ones_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom harness.claims import check_claims, vgg16_memory\n"
        "r = check_claims(kinds=['measured'])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\nprint(len(r))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "6"


# --------------------------------------------------------------------------- the command


def test_cli_compact_default_lists_refuted_first_and_structural_apart(capsys: Any) -> None:
    assert main(["claims", "--only", "googlenet.*,lenet5.c3_table"]) == 0
    out = capsys.readouterr().out
    evidence, structural = out.split("Structural checks")
    lines = [line for line in evidence.splitlines()[1:] if line.strip()]
    verdicts = [line.split("  ")[0] for line in lines[:4]]
    assert verdicts[:2] == [REFUTED, REFUTED]  # inception_3a_weights, params_vs_alexnet
    assert "googlenet.inception_3a_time" in evidence and INSUFFICIENT in evidence
    assert "lenet5.c3_table" in structural and "googlenet.depth" in structural
    assert "weights_ratio 2.37×, expected within ±0.5× of 3×" in out
    assert "Rule: insufficient data when a quantity is missing" in out


def test_cli_verdict_filter_details_and_markdown(capsys: Any) -> None:
    assert main(["claims", "--only", "googlenet.*", "--verdict", "refuted", "--details"]) == 0
    out = capsys.readouterr().out
    assert "googlenet.inception_3a_weights (static)" in out
    assert "rule: weights_ratio within ±0.5× of 3×" in out
    assert "quote: Without the reductions" in out and "naive_weights 387,072" in out
    assert "googlenet.depth" not in out and "2 results: 2 refuted." in out
    assert main(["claims", "--only", "alexnet.conv_fc_split", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| `alexnet.conv_fc_split` | **confirmed** |" in out and "conv_share 3.83%" in out


def test_cli_json_lists_structural_apart_with_rules(capsys: Any) -> None:
    assert main(["claims", "--only", "googlenet.*", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    evidence = {c["id"]: c for c in data["evidence"]}
    assert {c["kind"] for c in data["structural"]} == {"structural"}
    assert evidence["googlenet.params_vs_alexnet"]["verdict"] == REFUTED
    weights = evidence["googlenet.inception_3a_weights"]
    assert weights["rule"] == ["weights_ratio within ±0.5× of 3×"]
    assert weights["quantities"]["naive_weights"]["value"] == 387_072
    assert evidence["googlenet.inception_3a_time"]["verdict"] == INSUFFICIENT
    assert data["results"] is None and sum(data["summary"].values()) == 6
    assert set(data["summary"]) == set(VERDICTS)


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Any, capsys: Any) -> None:
    for argv, message in (
        (["--only", "no.such"], "no claim id matches"),
        (["--verdict", "maybe"], "--verdict maybe: use one of"),
        (["--results", str(tmp_path / "missing")], "does not exist"),
    ):
        assert main(["claims", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_check_claims_rejects_a_table_that_is_not_the_cases_table() -> None:
    import pandas as pd

    with pytest.raises(InvalidInputError, match="model and status"):
        check_claims(pd.DataFrame({"layer_name": ["x"]}), only="macs_vs_time")
    with pytest.raises(InvalidInputError, match="DataFrame"):
        check_claims([1, 2], only="macs_vs_time")  # type: ignore[arg-type]
