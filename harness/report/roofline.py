"""Roofline view: achieved FLOP/s against arithmetic intensity, with datasheet peaks.

Achieved FLOP/s = ``flops / latency_s_median`` (inference cases: ``flops`` counts one forward
pass). Arithmetic intensity is approximated as ``flops / (param_bytes + activation_bytes)``:
every weight read once and every layer output written once, ignoring re-reads, caches, input
reads and workspace. The figure says so. Peaks come from vendor datasheets (table below); a
device not in the table gets its points and no roof, and the figure says that too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from harness.report.data import esc, integer_text, is_missing, number, prepare_cases, si
from harness.report.style import add_notes, colors, hover, placeholder, style

T = 1e12


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

    def roofs(self, dtype: str) -> list[tuple[str, float]]:
        """(label, FLOP/s) roofs that apply to a case run at ``dtype``."""
        if dtype == "float32":
            out = [("FP32", self.fp32_flops)]
            if self.tf32_flops:
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
    "flops / median latency. Inference cases only (flops counts one forward pass). Roofs: "
    "vendor datasheet peaks, dense."
)


def device_peak(device_name: object) -> DevicePeak | None:
    """The datasheet peaks of a GPU from its reported name, or None when it is not in PEAKS."""
    if is_missing(device_name):
        return None
    for peak in PEAKS:
        if re.search(peak.pattern, str(device_name), re.IGNORECASE):
            return peak
    return None


def roofline_figure(cases: pd.DataFrame) -> go.Figure:
    """Achieved FLOP/s against approximate arithmetic intensity, one colour per device, with
    each known device's memory and compute roofs for the dtypes it ran."""
    df = cases if "series" in cases.columns else prepare_cases(cases)
    title = "Roofline: achieved FLOP/s against arithmetic intensity (approximate)"
    needed = ("flops", "latency_s_median", "param_bytes", "activation_bytes")
    inf = df[df["mode"].astype(object) == "inference"]
    ok = inf.dropna(subset=list(needed))
    ok = ok[
        [
            (number(f) or 0) > 0 and (number(t) or 0) > 0
            for f, t in zip(ok["flops"], ok["latency_s_median"], strict=True)
        ]
    ]
    if ok.empty:
        lines = [
            esc(
                f"no inference case has all of {', '.join(needed)} "
                f"({len(inf)} inference cases, {len(df)} cases)"
            )
        ]
        return placeholder(title, lines)
    ok = ok.assign(
        ai=[
            number(f) / ((number(p) or 0) + (number(a) or 0))
            for f, p, a in zip(ok["flops"], ok["param_bytes"], ok["activation_bytes"], strict=True)
        ],
        achieved=[
            number(f) / number(t) for f, t in zip(ok["flops"], ok["latency_s_median"], strict=True)
        ],
    )
    devices = list(dict.fromkeys(ok["device_label"]))
    col = colors(devices)
    fig = go.Figure()
    lo, hi = min(ok["ai"]) / 3, max(ok["ai"]) * 3
    unknown: list[str] = []
    for dev in devices:
        g = ok[ok["device_label"] == dev]
        peak = device_peak(g["device_name"].iloc[0])
        if peak is None:
            unknown.append(
                str(g["device_name"].iloc[0] if not is_missing(g["device_name"].iloc[0]) else dev)
            )
        for dtype, gd in g.groupby(g["dtype"].astype(object).fillna("?"), sort=False):
            roofs = peak.roofs(str(dtype)) if peak else []
            best = max((f for _, f in roofs), default=None)
            fig.add_trace(
                go.Scatter(
                    x=list(gd["ai"]),
                    y=list(gd["achieved"]),
                    mode="markers",
                    name=esc(f"{dev} · {dtype}"),
                    marker={
                        "color": col[dev],
                        "size": 9,
                        "line": {"width": 1, "color": "#333"},
                        "symbol": "circle" if dtype == "float32" else "diamond",
                    },
                    hovertext=[
                        hover(
                            f"{r['model']} bs {integer_text(r['batch_size'])} · {r['series']}",
                            f"intensity {r['ai']:.3g} FLOP/byte",
                            f"achieved {si(r['achieved'], 'FLOP/s')}"
                            + (
                                f" ({100 * r['achieved'] / best:.2g}% of {si(best)})"
                                if best
                                else ""
                            ),
                        )
                        for _, r in gd.iterrows()
                    ],
                    hoverinfo="text",
                )
            )
            for i, (label, flops) in enumerate(roofs):
                ridge = flops / peak.bandwidth_bytes_per_s
                lo, hi = min(lo, ridge / 3), max(hi, ridge * 3)
                xs = [lo / 10, ridge, hi * 10]
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=[min(flops, peak.bandwidth_bytes_per_s * x) for x in xs],
                        mode="lines",
                        line={"color": col[dev], "dash": "dash" if i else "solid", "width": 1.5},
                        name=esc(
                            f"{peak.name} {label} roof: {si(flops, 'FLOP/s')}, "
                            f"{si(peak.bandwidth_bytes_per_s, 'B/s')}"
                        ),
                        hoverinfo="name",
                    )
                )
    fig.update_xaxes(
        type="log",
        title_text="arithmetic intensity (FLOP per byte, approximate)",
        range=[math.log10(lo), math.log10(hi)],
    )
    fig.update_yaxes(type="log", title_text="achieved FLOP/s", tickformat="~s")
    style(fig, title, height=520)
    lines = [esc(APPROXIMATION)]
    if unknown:
        lines.append(
            esc(
                "no datasheet peak known for: "
                + ", ".join(dict.fromkeys(unknown))
                + " (points only, no roof)"
            )
        )
    skipped = len(inf) - len(ok)
    if skipped:
        lines.append(esc(f"{skipped} inference cases lack a latency, flops or byte count"))
    if len(df) > len(inf):
        lines.append(esc(f"{len(df) - len(inf)} non-inference cases are not drawn"))
    return add_notes(fig, lines)
