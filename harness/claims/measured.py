"""Claims about measured time, memory and energy: read from result rows, one configuration at a
time (``harness.claims.rows``), valid rows only. Torch-free."""

from __future__ import annotations

from harness.claims.core import Claim, Monotonic, Near, Quantity, Range, Ref, q
from harness.claims.rows import Rows, spearman
from harness.claims.vgg_memory import vgg16_memory
from harness.core.missing import is_missing

RESNETS = tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152))
PAIRS = ((18, "resnet18", "plain18"), (34, "resnet34", "plain34"))
DESIGN = 'the project\'s claims list (docs/CLAIMS.md, "Measured claims")'
SAME_COST = 0.10  # plain vs residual: latency ratio within 10% of the MAC ratio
RHO = 0.9  # MACs against time or energy: Spearman rank correlation at least this
LITTLE = 0.10  # "little of the computation": at most a tenth of the measured layer time


def _value_ratio(rows: Rows, base: str, other: str, column: str) -> Quantity:
    a, b = rows.static_value(base, column, "count"), rows.static_value(other, column, "count")
    if a.missing or b.missing or not a.value:
        return q(None, "x", why="; ".join(dict.fromkeys(x.why for x in (a, b) if x.missing)))
    return q(b.value / a.value, "x")


def _depth_vs_cost(rows: Rows) -> dict[str, Quantity]:
    """Parameters, MACs and peak memory do not depend on the timing's validity (a noisy row
    holds them exactly); the latency does."""
    out = {}
    for m in RESNETS:
        out[f"{m}_params"] = rows.static_value(m, "params", "count")
        out[f"{m}_macs"] = rows.static_value(m, "macs", "MACs")
        out[f"{m}_peak_memory_bytes"] = rows.static_value(m, "peak_memory_bytes", "bytes")
        out[f"{m}_latency_s"] = rows.latency(m)
    return out


def _plain_vs_residual(rows: Rows) -> dict[str, Quantity]:
    out = {}
    for _, res, plain in PAIRS:
        out[f"{res}_to_{plain}_latency_ratio"] = rows.ratio(plain, res)
        out[f"{res}_to_{plain}_macs_ratio"] = _value_ratio(rows, plain, res, "macs")
    return out


def _inception_3a_time(rows: Rows) -> dict[str, Quantity]:
    return {
        "naive_to_reduced_latency_ratio": rows.ratio("inception_3a", "inception_3a_naive"),
        "naive_to_reduced_macs_ratio": _value_ratio(
            rows, "inception_3a", "inception_3a_naive", "macs"
        ),
    }


def _macs_vs(rows: Rows, column: str, energy: bool) -> dict[str, Quantity]:
    use = rows.usable
    points = []
    for _, r in use.iterrows():
        macs, y = r["macs"], r[column]
        if is_missing(macs) or is_missing(y) or y <= 0:
            continue
        per = macs / r["batch_size"] if energy else macs
        label = r["model"] if (use["model"] == r["model"]).sum() == 1 else (
            f"{r['model']}@{r['input_shape']}"
        )  # fmt: skip
        points.append((label, per, y))
    rate = "MAC/J" if energy else "MAC/s"
    out: dict[str, Quantity] = {}
    if len(points) >= 3:
        rho = spearman([p[1] for p in points], [p[2] for p in points])
        out["spearman_rho"] = q(rho, "number", why="a side is constant")
    elif rows.frame.empty:
        out["spearman_rho"] = q(None, "number", why=rows.absent.format(model="any model"))
    else:
        why = f"{len(points)} valid row(s) with {column}; a rank correlation needs 3"
        if energy:
            sources = sorted({str(s) for s in use["power_source"] if not is_missing(s)})
            why += " (power: " + ("; ".join(sources) or "no power_source recorded") + ")"
        out["spearman_rho"] = q(None, "number", why=why)
    out |= {f"{label}_{rate.replace('/', '_per_')}": q(x / y, rate) for label, x, y in points}
    return out


def _macs_vs_time(rows: Rows) -> dict[str, Quantity]:
    return _macs_vs(rows, "latency_s_median", energy=False)


def _macs_vs_energy(rows: Rows) -> dict[str, Quantity]:
    return _macs_vs(rows, "energy_j_per_sample", energy=True)


def _fc_time_share(rows: Rows) -> dict[str, Quantity]:
    names = ("fc_params_share", "fc_time_share", "fc_macs_share")
    row, layers = rows.row("vgg16"), rows.layer_rows("vgg16")
    if row is None:
        return {n: q(None, "share", why=rows.why("vgg16")) for n in names}
    timed = layers is not None and "time_s" in layers and layers["time_s"].notna().any()
    if not timed:
        source = row.get("layer_time_source")
        why = "no layer times for the vgg16 row" + (
            "" if is_missing(source) else f" (layer_time_source: {source})"
        )
        return {n: q(None, "share", why=why) for n in names}
    shares = vgg16_memory(layers).shares
    out = {n: q(shares[n], "share", why="not in the layer table") for n in names}
    coverage = row.get("layer_time_coverage")
    return out | {"layer_time_coverage": q(coverage, "share", why="not recorded")}


MEASURED_CLAIMS = (
    Claim(
        "resnet.depth_vs_cost", "measured", DESIGN + "; He et al. 2015, Table 1",
        "For ResNet: depth against parameters, MACs, memory and measured time.",
        "From resnet18 to resnet152, parameters, MACs, peak memory and median latency rise at "
        "every step (latency beyond the medians' intervals).",
        _depth_vs_cost,
        tuple(Monotonic(tuple(f"{m}_{x}" for m in RESNETS))
              for x in ("params", "macs", "peak_memory_bytes", "latency_s")),
        models=RESNETS,
    ),
    Claim(
        "resnet.plain_vs_residual_time", "measured",
        "He et al. 2015, Section 4.1 (plain and residual nets of equal depth and cost)",
        "A plain network of the same depth without shortcuts is the comparison the paper draws.",
        "At depths 18 and 34 a ResNet's latency over its plain net's is within 10% of their MAC "
        "ratio ('the same cost', the harness's reading).",
        _plain_vs_residual,
        tuple(Near(f"{r}_to_{p}_latency_ratio", Ref(f"{r}_to_{p}_macs_ratio"), SAME_COST,
                   relative=True) for _, r, p in PAIRS),
        models=tuple(m for _, r, p in PAIRS for m in (r, p)),
    ),
    Claim(
        "googlenet.inception_3a_time", "measured",
        "Szegedy et al. 2014, Section 4 (1x1 reductions before the expensive convolutions)",
        "1x1 convolutions reduce channels before the 3x3 and 5x5 branches and after the pooling "
        "branch.",
        "The naive module 3a (more MACs, no reductions) takes longer than the reduced one: "
        "latency ratio above 1x.",
        _inception_3a_time, (Range("naive_to_reduced_latency_ratio", 1, strict=True),),
        models=("inception_3a", "inception_3a_naive"),
    ),
    Claim(
        "macs_vs_time", "measured", DESIGN,
        "Everywhere: measured latency, throughput, memory and energy next to the static numbers, "
        "so a user sees how MACs translate into time and joules on their hardware.",
        "Models ranked by MACs rank the same by median latency: Spearman rho at least 0.9 over "
        "the measured models (the harness's threshold).",
        _macs_vs_time, (Range("spearman_rho", RHO),),
    ),
    Claim(
        "macs_vs_energy", "measured", DESIGN,
        "Everywhere: measured latency, throughput, memory and energy next to the static numbers, "
        "so a user sees how MACs translate into time and joules on their hardware.",
        "Models ranked by MACs per sample rank the same by energy per sample: Spearman rho at "
        "least 0.9.",
        _macs_vs_energy, (Range("spearman_rho", RHO),),
    ),
    Claim(
        "vgg16.fc_time_share", "measured",
        "Stanford cs231n notes, 'Convolutional Neural Networks', case study VGGNet",
        "... while most of its parameters sit in the fully connected layers.",
        "Measured layer by layer, VGG-16's FC layers hold more than half of the parameters but "
        "take at most a tenth of the layer time ('little of the computation', the harness's "
        "reading).",
        _fc_time_share,
        (Range("fc_params_share", 0.5, strict=True), Range("fc_time_share", high=LITTLE)),
        models=("vgg16",),
    ),
)  # fmt: skip
