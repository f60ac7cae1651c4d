"""Assemble the report from result tables, and write it from result files.

``build_report`` turns DataFrames into the HTML text; ``write_report`` reads parquet through
``load_results`` (and nothing else), builds, and writes the file atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.errors import ResultFileError
from harness.report import figures
from harness.report.data import (
    ensure_columns,
    esc,
    is_missing,
    prepare_cases,
)
from harness.report.layers import (
    VGG16_NAME,
    attach_case_keys,
    layer_figure,
    layer_shares,
    select_profile,
    vgg16_statement,
)
from harness.report.page import Html, Section, escaped_paragraph, paragraph, render_page
from harness.report.roofline import roofline_figure
from harness.report.tables import cases_table, run_summary_table, shares_table

DEFAULT_TITLE = "cnnbench report"


def _models(df: pd.DataFrame) -> list[str]:
    return [m for m in dict.fromkeys(df["model"]) if not is_missing(m)] if "model" in df else []


def build_report(
    cases: pd.DataFrame,
    layers: pd.DataFrame | None = None,
    power: pd.DataFrame | None = None,
    *,
    title: str = DEFAULT_TITLE,
    sources: Iterable[str] = (),
) -> str:
    """The report as one self-contained HTML text, from the result tables.

    ``cases`` is the per-case table, ``layers`` the per-layer table, ``power`` the power trace
    table (run_id, case_id, t_s, power_w); either of the last two may be None or empty.
    ``sources`` (the files read) are listed in the footer.
    """
    df = prepare_cases(cases)
    lay = None
    if layers is not None and not layers.empty:
        lay = attach_case_keys(ensure_columns(layers, "layers"), df)
    runs = df["run_id"].astype(object).nunique()
    devices = list(dict.fromkeys(df["device_label"]))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # Hardware, not labels: two runs on one machine have two labels (for the speedup figure)
    # but are one device.
    hardware = len(df[["device_name", "host", "device"]].astype(object).drop_duplicates())
    subtitle = (
        f"{len(df)} cases from {runs} run{'s' * (runs != 1)} on {hardware} "
        f"device{'s' * (hardware != 1)} · generated {now}"
    )
    sections = [
        Section(
            "summary",
            "Runs and environment",
            "Where and with what each run was measured, and how its cases ended.",
            [run_summary_table(df)],
        ),
        Section(
            "cases",
            "All cases",
            "Click a column heading to sort. A dash is a value that was not measured; "
            "hover it for the reason.",
            [cases_table(df)],
        ),
    ]
    sections.append(
        Section(
            "latency",
            "Latency and throughput",
            "Per model, against batch size: median step latency (p90 as a tick, p99 as the "
            "whisker) and throughput = batch size / median latency.",
            [figures.latency_throughput_figure(df, m) for m in _models(df)]
            or [paragraph("No cases in these results.", "missing")],
        )
    )
    sections.append(
        Section(
            "cost",
            "Speed against cost",
            "Each model at its best measured batch size: cost per sample (GMACs) against "
            "throughput; bubble area is the parameter count.",
            [figures.throughput_gmacs_figure(df)],
        )
    )
    sections.append(
        Section(
            "energy",
            "Energy",
            "Energy per sample and samples per joule, from the measured power "
            "over the timed rounds.",
            [figures.energy_figure(df)],
        )
    )
    sections.append(
        Section(
            "memory",
            "Memory",
            "Measured peak memory beside the analytic activation memory (the "
            "sum of the layer outputs of one forward pass) as the batch grows.",
            [figures.memory_figure(df)],
        )
    )
    sections.append(_layers_section(lay))
    sections.append(
        Section(
            "roofline",
            "Roofline",
            "How close each case comes to its device's compute or memory bound.",
            [roofline_figure(df)],
        )
    )
    speed_parts: list[Html | object] = (
        [figures.speedup_figure(df)]
        if len(devices) > 1
        else [
            paragraph(
                f"One device only ({devices[0] if devices else 'none'}): give result files "
                "from several devices to compare them.",
                "missing",
            )
        ]
    )
    sections.append(
        Section(
            "speedup",
            "Across hardware",
            "Median latency on the first device divided by the "
            "median latency on each other device, for the cases measured on both.",
            speed_parts,
        )
    )
    sections.append(
        Section(
            "power",
            "Power trace",
            "Power sampled during the timed rounds of each case.",
            [figures.power_trace_figure(power, df)],
        )
    )
    files = list(sources)
    footer = "cnnbench report" + (f" · files: {', '.join(files)}" if files else "")
    return render_page(title, subtitle, sections, footer)


def _layers_section(layers: pd.DataFrame | None) -> Section:
    intro = (
        "Per model (one profile: batch 1 and float32 where available): the output bytes "
        "and parameters of each leaf layer, their cumulative shares along the depth, and "
        "the split by layer type."
    )
    section = Section("layers", "Layer by layer", intro)
    if layers is None:
        section.parts.append(
            paragraph(
                "No layer table in these results: layer profiles are "
                "written beside the cases by the runner.",
                "missing",
            )
        )
        return section
    statement = vgg16_statement(layers)
    models = _models(layers)
    if statement:
        section.parts.append(escaped_paragraph(statement, "claim"))
        first = [m for m in models if VGG16_NAME.search(str(m))][:1]  # its figure next to it
        models = first + [m for m in models if m not in first]
    for model in models:
        section.parts.append(layer_figure(layers, model))
        shares = layer_shares(select_profile(layers, model))
        if not shares.empty:
            section.parts.append(Html(f"<p>Split by layer type, {esc(model)}:</p>"))
            section.parts.append(shares_table(shares))
    return section


def _load_optional(paths: list[str | Path], table: str) -> pd.DataFrame | None:
    """A secondary table (layers, power), or None where the files or the store have none."""
    from harness.results import schema, store

    if table not in schema.TABLES:  # a table this schema version does not define yet
        return None
    try:
        files = store.result_files(paths, table)
    except ResultFileError:  # no file of this table among the paths (a corrupt one raised
        return None  # already, when the cases were read from the same paths)
    df = store.load_results(files, table=table)
    return df if not df.empty else None


def write_report(paths: Iterable[str | Path], out: str | Path, *, title: str | None = None) -> Path:
    """Read result files (or directories of them), build the report and write it to ``out``
    atomically (a temporary file, then a rename). Returns the path written."""
    from harness.results.store import load_results

    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not path_list:
        raise ResultFileError("no result files given: pass parquet files or directories")
    cases = load_results(path_list, table="cases")
    layers = _load_optional(path_list, "layers")
    power = _load_optional(path_list, "power")
    text = build_report(
        cases, layers, power, title=title or DEFAULT_TITLE, sources=[str(p) for p in path_list]
    )
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path
