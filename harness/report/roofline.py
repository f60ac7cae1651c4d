"""Roofline view: achieved FLOP/s against arithmetic intensity, under the device's roofs.

Achieved FLOP/s = ``flops / latency_s_median`` (inference cases: ``flops`` counts one forward
pass). Arithmetic intensity is approximated as ``flops / (param_bytes + activation_bytes)``:
every weight read once and every layer output written once, ignoring re-reads, caches, input
reads and workspace. The figure says so.

Roofs: a GPU in the datasheet table below gets the vendor's peaks; any other device (every
CPU) gets the roofs its run measured (``peak_flops_measured``, ``peak_bytes_per_s_measured``:
a short GEMM and copy benchmark at the start of the run, ``harness.measure.roofs``); a device
with neither gets its points and no roof, and the figure says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from harness.core import units
from harness.report.data import drawable, is_missing, number, prepared, records
from harness.report.noisy import noisy_style
from harness.report.style import Missing, Plot, colors, legend_once, log_range, style, symbols
from harness.report.text import hover, ptext

T = 1e12
MAX_POINTS = 1500  # beyond this many cases, one point per model and setting


@dataclass(frozen=True)
class DevicePeak:
    """Datasheet peaks of one GPU: FLOP/s per precision (dense, no sparsity) and bytes/s."""

    name: str
    pattern: str  # regex matched (case-insensitive) against the device name NVML/CUDA report
    fp32_flops: float  # FP32 on CUDA cores
    bandwidth_bytes_per_s: float
    tf32_flops: float | None = None  # TF32 tensor cores (cuDNN uses them for float32 convs)
    fp16_flops: float | None = None  # FP16 tensor cores, dense
    bf16_flops: float | None = None  # BF16 tensor cores, dense

    def roofs(self, dtype: str, tf32: bool | None = None) -> list[tuple[str, float]]:
        """(label, FLOP/s) roofs that apply to a case run at ``dtype``; for float32 the one of
        the precision its convolutions ran in (``tf32``; None, older files: both)."""
        if dtype == "float32":
            out = [("FP32", self.fp32_flops)] if tf32 is not True or not self.tf32_flops else []
            if self.tf32_flops and tf32 is not False:
                out.append(("TF32 tensor", self.tf32_flops))
            return out
        peak = {"float16": self.fp16_flops, "bfloat16": self.bf16_flops}.get(dtype)
        return [(f"{dtype} tensor", peak)] if peak else []


# NVIDIA datasheets; tensor-core figures are the dense ones (half the "with sparsity" figure).
# Order matters: the first pattern that matches wins.
PEAKS: tuple[DevicePeak, ...] = (
    # H200 datasheet (2024): SXM 67 TF FP32, 989 TF TF32*, 1979 TF FP16/BF16*, 4.8 TB/s;
    # NVL 60 TF, 835 TF*, 1671 TF*, 4.8 TB/s (* with sparsity).
    DevicePeak("H200 NVL", r"H200 NVL", 60 * T, 4.8e12, 417.5 * T, 835.5 * T, 835.5 * T),
    DevicePeak("H200 SXM", r"H200", 67 * T, 4.8e12, 494.5 * T, 989.5 * T, 989.5 * T),
    # H100 datasheet (2023): SXM 67 TF FP32, 989 TF TF32*, 1979 TF FP16/BF16*, 3.35 TB/s;
    # PCIe 51 TF, 756 TF*, 1513 TF*, 2 TB/s; NVL 60 TF, 835 TF*, 1671 TF*, 3.9 TB/s.
    DevicePeak("H100 NVL", r"H100 NVL", 60 * T, 3.9e12, 417.5 * T, 835.5 * T, 835.5 * T),
    DevicePeak("H100 PCIe", r"H100.*PCIe", 51 * T, 2.0e12, 378 * T, 756.5 * T, 756.5 * T),
    DevicePeak("H100 SXM", r"H100", 67 * T, 3.35e12, 494.5 * T, 989.5 * T, 989.5 * T),
    # A100 datasheet (2021): 19.5 TF FP32, 156 TF TF32, 312 TF FP16/BF16 (dense);
    # 80GB SXM 2,039 GB/s, 80GB PCIe 1,935 GB/s, 40GB 1,555 GB/s.
    DevicePeak(
        "A100 SXM 80GB",
        r"A100.*SXM.*80GB|A100.*80GB.*SXM",
        19.5 * T,
        2.039e12,
        156 * T,
        312 * T,
        312 * T,
    ),
    DevicePeak("A100 PCIe 80GB", r"A100.*80GB", 19.5 * T, 1.935e12, 156 * T, 312 * T, 312 * T),
    DevicePeak("A100 40GB", r"A100", 19.5 * T, 1.555e12, 156 * T, 312 * T, 312 * T),
    # V100 datasheet (2020): SXM2 15.7 TF FP32, 125 TF tensor; PCIe 14 TF, 112 TF; V100S PCIe
    # 16.4 TF, 130 TF; 900 GB/s (V100S 1,134 GB/s). No TF32 or BF16.
    DevicePeak("V100S PCIe", r"V100S", 16.4 * T, 1.134e12, None, 130 * T),
    DevicePeak("V100 SXM2", r"V100.*SXM", 15.7 * T, 0.9e12, None, 125 * T),
    DevicePeak("V100 PCIe", r"V100", 14 * T, 0.9e12, None, 112 * T),
    # L40S datasheet: 91.6 TF FP32, 183 TF TF32, 362 TF FP16/BF16 (dense), 864 GB/s.
    DevicePeak("L40S", r"L40S", 91.6 * T, 0.864e12, 183 * T, 362 * T, 362 * T),
    # L4 datasheet: 30.3 TF FP32, 120 TF TF32*, 242 TF FP16/BF16*, 300 GB/s.
    DevicePeak("L4", r"\bL4\b", 30.3 * T, 0.3e12, 60 * T, 121 * T, 121 * T),
    # A10 datasheet: 31.2 TF FP32, 62.5 TF TF32, 125 TF FP16/BF16 (dense), 600 GB/s.
    DevicePeak("A10", r"\bA10\b", 31.2 * T, 0.6e12, 62.5 * T, 125 * T, 125 * T),
    # T4 datasheet: 8.1 TF FP32, 65 TF mixed FP16/FP32 tensor, 320 GB/s. No TF32 or BF16.
    DevicePeak("T4", r"\bT4\b", 8.1 * T, 0.32e12, None, 65 * T),
)

APPROXIMATION = (
    "Arithmetic intensity ≈ flops / (param_bytes + activation_bytes): each weight read once and "
    "each layer output written once (no re-reads, caches, input or workspace). Achieved = "
    "flops / median latency. Inference cases only (flops counts one forward pass)."
)


@dataclass(frozen=True)
class Roof:
    """One compute ceiling with its memory slope: FLOP/s, bytes/s and where they come from."""

    label: str
    flops_per_s: float
    bytes_per_s: float
    source: str  # "datasheet" or "measured"


def device_peak(device_name: object) -> DevicePeak | None:
    """The datasheet peaks of a GPU from its reported name, or None when it is not in PEAKS."""
    if is_missing(device_name):
        return None
    for peak in PEAKS:
        if re.search(peak.pattern, str(device_name), re.IGNORECASE):
            return peak
    return None


def roofs_for(rows: pd.DataFrame, dtype: str) -> list[Roof]:
    """The roofs of one configuration's rows at ``dtype``: the datasheet's for a known GPU,
    else the medians of the measured roof columns, else none."""
    if rows.empty:
        return []
    name = rows["device_name"].iloc[0]
    peak = device_peak(name) if str(rows["device"].iloc[0]).startswith("cuda") else None
    at = rows[rows["dtype"] == dtype] if "dtype" in rows else rows
    if peak is not None:
        return [
            Roof(f"{peak.name} {label}", flops, peak.bandwidth_bytes_per_s, "datasheet")
            for label, flops in peak.roofs(dtype, _one_flag(at, "tf32_conv"))
        ]
    flops = [number(v) for v in at.get("peak_flops_measured", [])]
    bw = [number(v) for v in at.get("peak_bytes_per_s_measured", [])]
    flops = sorted(v for v in flops if v)
    bw = sorted(v for v in bw if v)
    if not flops or not bw:
        return []
    label = f"measured {dtype}" + (" (TF32)" if _one_flag(at, "peak_flops_tf32") else "")
    return [Roof(label, flops[len(flops) // 2], bw[len(bw) // 2], "measured")]


def _one_flag(rows: pd.DataFrame, column: str) -> bool | None:
    """The rows' one value of a boolean column (None when absent, unknown or mixed)."""
    values = {bool(v) for v in rows.get(column, []) if not is_missing(v)}
    return values.pop() if len(values) == 1 else None


def roof_traces(
    roof: Roof, color: str, lo: float, hi: float, *, name: str, dash: str = "solid"
) -> go.Scatter:
    """The roof line min(peak, bandwidth x intensity) over [lo, hi] FLOP/byte, with its ridge."""
    ridge = roof.flops_per_s / roof.bytes_per_s
    xs = sorted({lo, min(max(ridge, lo), hi), hi})
    return go.Scatter(
        x=xs,
        y=[min(roof.flops_per_s, roof.bytes_per_s * x) for x in xs],
        mode="lines",
        line={"color": color, "dash": dash, "width": 1.5},
        name=ptext(name),
        legendgroup="roofs",
        hovertext=hover(
            name,
            f"{roof.source}: {units.si(roof.flops_per_s, 'FLOP/s')} compute, "
            f"{units.si(roof.bytes_per_s, 'B/s')} memory",
            f"ridge at {units.si(ridge)} FLOP/byte",
        ),
        hoverinfo="text",
    )


def roof_name(config: str, roof: Roof) -> str:
    return (
        f"{config}: {roof.label} roof ({roof.source}), {units.si(roof.flops_per_s, 'FLOP/s')}, "
        f"{units.si(roof.bytes_per_s, 'B/s')}"
    )


def roofline_figure(cases: pd.DataFrame) -> Plot | Missing:
    """Achieved FLOP/s against approximate arithmetic intensity, one colour per configuration,
    with each configuration's roofs (datasheet or measured) for the dtypes it ran."""
    full = prepared(cases)
    df = drawable(full)
    title = "Roofline: achieved FLOP/s against arithmetic intensity (approximate)"
    needed = ("flops", "latency_s_median", "param_bytes", "activation_bytes")
    inf = df[df["mode"] == "inference"]
    ok = inf.dropna(subset=list(needed))
    ok = ok[(ok["flops"] > 0) & (ok["latency_s_median"] > 0)]
    if ok.empty:
        return Missing(
            title,
            [
                f"no inference case has all of {', '.join(needed)} "
                f"({len(inf)} inference cases, {len(df)} cases)"
            ],
        )
    reduced = len(ok) > MAX_POINTS
    if reduced:  # one point per model and setting: its best batch size
        from harness.report.cost import best_per_model

        ok = best_per_model(ok, "series")
    ok = ok.assign(
        ai=ok["flops"] / (ok["param_bytes"].fillna(0) + ok["activation_bytes"].fillna(0)),
        achieved=ok["flops"] / ok["latency_s_median"],
    )
    configs = list(dict.fromkeys(ok["config_short"]))
    col = colors(configs)
    fig = go.Figure()
    lo, hi = float(ok["ai"].min()) / 3, float(ok["ai"].max()) * 3
    roofs: list[tuple[str, str, Roof]] = []
    without: list[str] = []
    seen: set[str] = set()
    for config in configs:
        g = ok[ok["config_short"] == config]
        rows = df[df["config_short"] == config]
        for dtype, gd in g.groupby(g["dtype"].fillna("?"), sort=False):
            found = roofs_for(rows, str(dtype))
            if not found:
                without.append(f"{config} ({dtype})")
            best = max((r.flops_per_s for r in found), default=None)
            name = f"{config} · {dtype}"
            for part, hidden in (
                (gd[gd["quality"] != "noisy"], False),
                (gd[gd["quality"] == "noisy"], True),
            ):
                if part.empty:
                    continue
                recs = records(part)
                trace = dict(
                    x=list(part["ai"]),
                    y=list(part["achieved"]),
                    mode="markers",
                    name=ptext(name),
                    showlegend=legend_once(seen, name),
                    marker={
                        "color": col[config],
                        "size": 9,
                        "symbol": symbols(
                            part["quality"], "circle" if dtype == "float32" else "diamond"
                        ),
                        "line": {"width": 1, "color": col[config]},
                    },
                    hovertext=[
                        hover(
                            f"{r['model']} bs {units.integer(r['batch_size'])} · {r['series']}",
                            r["config"],
                            f"intensity {units.si(r['ai'])} FLOP/byte",
                            f"achieved {units.si(r['achieved'], 'FLOP/s')}"
                            + (
                                f" ({units.percent(r['achieved'] / best)} of the roof)"
                                if best
                                else ""
                            ),
                            "NOISY (hollow): " + str(r["validity_reason"])
                            if r["quality"] == "noisy"
                            else "",
                        )
                        for r in recs
                    ],
                    hoverinfo="text",
                )
                fig.add_trace(go.Scatter(**(noisy_style(trace) if hidden else trace)))
            for roof in found:
                ridge = roof.flops_per_s / roof.bytes_per_s
                lo, hi = min(lo, ridge / 3), max(hi, ridge * 3)
                roofs.append((config, col[config], roof))
    for i, (config, color, roof) in enumerate(roofs):
        fig.add_trace(
            roof_traces(
                roof, color, lo, hi, name=roof_name(config, roof), dash="dash" if i % 2 else "solid"
            )
        )
    x_axis = log_range([lo, hi], kind="count")
    shown = ok[ok["quality"] != "noisy"] if (ok["quality"] != "noisy").any() else ok
    y_vals = list(shown["achieved"]) + [r.flops_per_s for _, _, r in roofs]
    y_axis = log_range(y_vals, kind="flops", pad=2.0)
    if x_axis:
        x_axis["range"] = [math.log10(lo), math.log10(hi)]
        fig.update_xaxes(**x_axis)
    if y_axis:
        fig.update_yaxes(**y_axis)
    fig.update_xaxes(title_text="arithmetic intensity (FLOP per byte, approximate)")
    fig.update_yaxes(title_text="achieved FLOP/s")
    style(fig, title, height=520)
    fig.update_layout(legend={"orientation": "h", "y": -0.15, "yanchor": "top"})
    notes = [APPROXIMATION]
    sources = {r.source for _, _, r in roofs}
    if "datasheet" in sources:
        notes.append("Datasheet roofs: vendor peaks, dense (no sparsity).")
    above = [
        f"{config}: {int((ok[ok['config_short'] == config]['achieved'] > r.flops_per_s).sum())}"
        for config, _, r in roofs
        if r.source == "measured"
        and (ok[ok["config_short"] == config]["achieved"] > r.flops_per_s).any()
    ]
    if above:
        notes.append(
            "Cases above their measured roof (" + "; ".join(above) + "): that roof is not this "
            "machine's maximum (measured under load, or slower kernels than the cases ran); "
            "their share of it is not meaningful."
        )
    if "measured" in sources:
        notes.append(
            "Measured roofs: the run's own best dense rate (matmul or convolution, at the "
            "cases' threads and dtype) and memory copy bandwidth (harness.measure.roofs, at the "
            "start of the run): what this software reaches on this machine, not the vendor's "
            "theoretical peak."
        )
    if without:
        notes.append(
            "No datasheet entry and no measured roof for: "
            + ", ".join(dict.fromkeys(without))
            + " (points only)"
        )
    skipped = 0 if reduced else len(inf) - len(ok)
    if reduced:
        notes.append(
            f"More than {MAX_POINTS} inference cases: each model is drawn at its best batch size "
            "per setting (every case is in the table)."
        )
    if skipped:
        notes.append(f"{skipped} inference cases lack a latency, flops or byte count")
    if len(df) > len(inf):
        notes.append(f"{len(df) - len(inf)} non-inference cases are not drawn")
    return Plot(fig, notes)
