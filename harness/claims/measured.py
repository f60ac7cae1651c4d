"""Claims the static numbers imply about measured time, memory and energy.

Each check reads the results table of ``Context.results`` (``load_results(paths)``). Without
one the verdict is "needs measurement"; with one, each device in it gets its own result, from
the rows ``harness.claims.rows.select`` picks (named in ``ClaimResult.rows``).
"""

from __future__ import annotations

import itertools
import math

from harness.claims.base import (
    CONFIRMED,
    NEEDS_MEASUREMENT,
    PARTLY,
    REFUTED,
    Claim,
    Context,
    Finding,
    Measured,
)
from harness.claims.rows import (
    direction,
    latency_ratio,
    missing,
    ok_rows,
    ratio_text,
    select,
    spearman,
)
from harness.units import nbytes, seconds

HOW = "run `pytest suites/ --benchmark-only`, then `cnnbench claims --results results/`"
RESNETS = tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152))
PLAIN_PAIRS = (("plain18", "resnet18"), ("plain34", "resnet34"))
SAME_COST_TOLERANCE = 0.10  # plain vs residual: latency ratio within 10% of the MAC ratio
RHO_CONFIRMED, RHO_PARTLY = 0.9, 0.5


def _no_results(measured: Measured | None = None) -> list[Finding]:
    return [Finding(NEEDS_MEASUREMENT, f"no result files given: {HOW}", measured or {})]


def _nothing_usable(what: str) -> list[Finding]:
    return [Finding(NEEDS_MEASUREMENT, f"the results hold no ok rows of {what}; {HOW}", {})]


def _static_resnets(ctx: Context) -> Measured:
    out: Measured = {}
    for name in RESNETS:
        prof = ctx.profile(name)
        out[f"{name}_params"], out[f"{name}_macs"] = prof.params, prof.macs
    return out


def _depth_vs_cost(ctx: Context) -> list[Finding]:
    if ctx.results is None:
        return _no_results(_static_resnets(ctx))
    findings = []
    for sel in select(ok_rows(ctx.results), [*RESNETS, "plain18", "plain34"], 2):
        rows = [(m, sel.row(m)) for m in RESNETS if sel.row(m) is not None]
        if len(rows) < 2:
            continue
        measured: Measured = {}
        for m, r in rows + [(p, sel.row(p)) for p, _ in PLAIN_PAIRS if sel.row(p) is not None]:
            measured[f"{m}_params"] = r["params"]
            measured[f"{m}_macs"] = r["macs"]
            measured[f"{m}_latency_s"] = r["latency_s_median"]
            measured[f"{m}_peak_memory_bytes"] = r["peak_memory_bytes"]
            measured[f"{m}_gmacs_per_s"] = r["macs"] / r["latency_s_median"] / 1e9
        slower, notes = 0, []
        for (a, ra), (b, rb) in itertools.pairwise(rows):
            ratio, lo, hi = latency_ratio(ra, rb)
            step = direction(ratio, lo, hi)
            slower += step > 0
            if step <= 0:
                notes.append(f"{b} vs {a} latency {ratio_text(ratio, lo, hi)}")
            ma, mb = ra["peak_memory_bytes"], rb["peak_memory_bytes"]
            if not missing(ma) and not missing(mb) and mb <= ma:
                notes.append(f"{b} peak memory {nbytes(mb)} <= {a}'s {nbytes(ma)}")
        steps = len(rows) - 1
        v = CONFIRMED if not notes else REFUTED if slower == 0 else PARTLY
        series = ", ".join(
            f"{m.removeprefix('resnet')}: {seconds(r['latency_s_median'])}"
            f"/{nbytes(r['peak_memory_bytes'])}"
            for m, r in rows
        )
        text = f"median latency/peak memory by depth ({series}); "
        text += (
            f"both grow at each of the {steps} steps"
            if not notes
            else f"{slower} of {steps} latency steps grow beyond noise; " + "; ".join(notes)
        )
        findings.append(Finding(v, text, measured, sel.describe()))
    return findings or _nothing_usable("two or more of resnet18/34/50/101/152 in one config")


def _plain_vs_residual(ctx: Context) -> list[Finding]:
    if ctx.results is None:
        return _no_results()
    findings = []
    models = [m for pair in PLAIN_PAIRS for m in pair]
    for sel in select(ok_rows(ctx.results), models, 2):
        measured: Measured = {}
        parts, agree, pairs = [], 0, 0
        for plain, res in PLAIN_PAIRS:
            rp, rr = sel.row(plain), sel.row(res)
            if rp is None or rr is None:
                continue
            pairs += 1
            macs_ratio = rr["macs"] / rp["macs"]
            ratio, lo, hi = latency_ratio(rp, rr)
            low, high = (lo, hi) if lo is not None else (ratio, ratio)
            band = (macs_ratio / (1 + SAME_COST_TOLERANCE), macs_ratio * (1 + SAME_COST_TOLERANCE))
            same = low <= band[1] and high >= band[0]
            agree += same
            measured |= {
                f"{res}_to_{plain}_macs_ratio": macs_ratio,
                f"{res}_to_{plain}_latency_ratio": ratio,
                f"{res}_latency_s": rr["latency_s_median"],
                f"{plain}_latency_s": rp["latency_s_median"],
            }
            if lo is not None:
                measured[f"{res}_to_{plain}_latency_ci_low"] = lo
                measured[f"{res}_to_{plain}_latency_ci_high"] = hi
            parts.append(
                f"{res}/{plain}: MACs {macs_ratio:.3f}x, latency {ratio_text(ratio, lo, hi)}"
                + ("" if same else " (outside +-10% of the MAC ratio)")
            )
        if not pairs:
            continue
        v = CONFIRMED if agree == pairs else REFUTED if agree == 0 else PARTLY
        findings.append(Finding(v, "; ".join(parts), measured, sel.describe()))
    return findings or _nothing_usable("a ResNet and its plain net (18 or 34) in one config")


def _reduction_time(ctx: Context) -> list[Finding]:
    if ctx.results is None:
        return _no_results()
    findings = []
    for sel in select(ok_rows(ctx.results), ["inception_3a", "inception_3a_naive"], 2):
        reduced, naive = sel.row("inception_3a"), sel.row("inception_3a_naive")
        ratio, lo, hi = latency_ratio(reduced, naive)
        macs_ratio = naive["macs"] / reduced["macs"]
        measured: Measured = {
            "naive_to_reduced_macs_ratio": macs_ratio,
            "naive_to_reduced_latency_ratio": ratio,
            "reduced_latency_s": reduced["latency_s_median"],
            "naive_latency_s": naive["latency_s_median"],
            "reduced_gmacs_per_s": reduced["macs"] / reduced["latency_s_median"] / 1e9,
            "naive_gmacs_per_s": naive["macs"] / naive["latency_s_median"] / 1e9,
        }
        step = direction(ratio, lo, hi)
        v = CONFIRMED if step > 0 else REFUTED if step < 0 else NEEDS_MEASUREMENT
        text = (
            f"the naive module has {macs_ratio:.2f}x the MACs and takes "
            f"{ratio_text(ratio, lo, hi)} the reduced module's time "
            f"({seconds(naive['latency_s_median'])} vs {seconds(reduced['latency_s_median'])})"
        )
        if step == 0:
            text += "; the interval holds 1: measure more rounds to decide"
        findings.append(Finding(v, text, measured, sel.describe()))
    return findings or _nothing_usable("inception_3a and inception_3a_naive in one config")


def _rank_verdict(rho: float) -> str:
    if math.isnan(rho):
        return NEEDS_MEASUREMENT
    return CONFIRMED if rho >= RHO_CONFIRMED else PARTLY if rho >= RHO_PARTLY else REFUTED


def _macs_vs(ctx: Context, energy: bool) -> list[Finding]:
    if ctx.results is None:
        return _no_results()
    frame = ok_rows(ctx.results)
    what = "energy" if energy else "latency"
    if energy:
        frame = frame[[not missing(e) and e > 0 for e in frame["energy_j_per_sample"]]]
        if frame.empty:
            reasons = sorted({str(s) for s in ok_rows(ctx.results)["power_source"] if s})
            return [
                Finding(
                    NEEDS_MEASUREMENT,
                    "no row of the results has an energy reading ("
                    + ("; ".join(reasons) or "power_source empty")
                    + "): measure on a GPU with NVML or a CPU with RAPL counters",
                    {},
                )
            ]
    findings = []
    for sel in select(frame, None, 3, same_input=False):
        rows = sel.rows
        shapes = rows.groupby("model")["input_shape"].nunique()
        labels = [
            m if shapes[m] < 2 else f"{m}@{shape}"
            for m, shape in zip(rows["model"], rows["input_shape"], strict=True)
        ]
        per = rows["macs"] / rows["batch_size"]
        y = rows["energy_j_per_sample"] if energy else rows["latency_s_median"]
        rho = spearman(per if energy else rows["macs"], y)
        rate = per / y / 1e9 if energy else rows["macs"] / y / 1e9
        unit = "gmacs_per_j" if energy else "gmacs_per_s"
        measured: Measured = {"spearman_rho": rho, "models": len(rows)}
        for label, value in zip(labels, rate, strict=True):
            measured[f"{label}_{unit}"] = float(value)
        lo_i, hi_i = int(rate.to_numpy().argmin()), int(rate.to_numpy().argmax())
        text = (
            f"ranked by MACs, {len(rows)} models rank by measured {what} with Spearman rho = "
            f"{rho:.2f}; achieved {'GMAC/J' if energy else 'GMAC/s'} spans "
            f"{rate.iloc[lo_i]:.3g} ({rows['model'].iloc[lo_i]}) to {rate.iloc[hi_i]:.3g} "
            f"({rows['model'].iloc[hi_i]}), {rate.iloc[hi_i] / rate.iloc[lo_i]:.0f}x apart"
        )
        findings.append(Finding(_rank_verdict(rho), text, measured, sel.describe()))
    return findings or _nothing_usable(f"three or more models with {what} in one config")


def _macs_vs_time(ctx: Context) -> list[Finding]:
    return _macs_vs(ctx, energy=False)


def _macs_vs_energy(ctx: Context) -> list[Finding]:
    return _macs_vs(ctx, energy=True)


DESIGN = "implied by the static numbers (CLAIMS.md, 'What the harness must make visible')"
MEASURED_CLAIMS = [
    Claim(
        "resnet.depth_vs_cost",
        DESIGN + "; He et al. 2015, Table 1 (FLOPs by depth)",
        "Deeper ResNets cost more: parameters, MACs, peak memory and measured latency grow "
        "with depth (18, 34, 50, 101, 152).",
        _depth_vs_cost,
        kind="measured",
        method=(
            "Result rows of one device and configuration: median latency of resnet18 to resnet152 "
            "(each step's ratio with a bootstrap interval) and peak memory."
        ),
        tests=("tests/test_claims.py::test_measured_claims_from_fake_rows",),
    ),
    Claim(
        "resnet.plain_vs_residual_time",
        "He et al. 2015, Section 4.1 (plain and residual nets of equal depth and cost)",
        "At equal depth a residual net costs what its plain net costs: its MACs are higher "
        "only by the projection shortcuts, so its latency is within 10% of the MAC ratio.",
        _plain_vs_residual,
        kind="measured",
        method=(
            "Result rows: latency ratio of each ResNet to its plain net (bootstrap interval) "
            "against their MAC ratio, for 18 and 34."
        ),
        tests=("tests/test_claims.py::test_measured_claims_from_fake_rows",),
    ),
    Claim(
        "googlenet.inception_3a_time",
        "Szegedy et al. 2014, Section 4 (1x1 reductions before the expensive convolutions)",
        "The 1x1 reductions make module 3a cheaper: with 2.37x fewer MACs it runs faster than "
        "the naive module.",
        _reduction_time,
        kind="measured",
        method=(
            "Result rows: latency ratio of the naive to the reduced module (bootstrap interval) "
            "against the MAC ratio."
        ),
        tests=("tests/test_claims.py::test_measured_claims_from_fake_rows",),
    ),
    Claim(
        "macs_vs_time",
        DESIGN,
        "MACs translate into time: a model with more MACs takes longer (Spearman rank "
        "correlation of MACs and median latency >= 0.9 across the measured models).",
        _macs_vs_time,
        kind="measured",
        method=(
            "Result rows of one device and configuration: Spearman rank correlation of MACs and "
            "median latency over the models; GMAC/s per model."
        ),
        tests=("tests/test_claims.py::test_measured_claims_from_fake_rows",),
    ),
    Claim(
        "macs_vs_energy",
        DESIGN,
        "MACs translate into joules: a model with more MACs per sample takes more energy per "
        "sample (Spearman rank correlation >= 0.9).",
        _macs_vs_energy,
        kind="measured",
        method=(
            "Result rows with an energy reading: Spearman rank correlation of MACs per sample and "
            "energy per sample; GMAC/J per model."
        ),
        tests=("tests/test_claims.py::test_energy_claim_names_why_power_is_missing",),
    ),
]
