"""Assemble the report from result tables, and write it from result files.

``build_report`` turns DataFrames into the HTML text; ``write_report`` reads parquet through
``load_results`` (and nothing else), builds, and writes the file atomically.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.core.errors import ResultFileError
from harness.report import figures
from harness.report.data import ensure_columns, prepare_cases
from harness.report.headline import headline
from harness.report.layers import (
    attach_case_keys,
    keep_wanted,
    layer_figure,
    layer_models,
    layer_roofline,
    layer_shares,
    select_profile,
    shares_figure,
    vgg16_statement,
)
from harness.report.noisy import TRUSTED, noisy_toggle
from harness.report.page import Html, Section, paragraph, render_page
from harness.report.power import power_trace_figure
from harness.report.roofline import roofline_figure
from harness.report.speedup import speedup_figure
from harness.report.style import Missing, Plot
from harness.report.tables import cases_table, run_summary_table, shares_table
from harness.report.text import esc
from harness.results.loader import ResultFileWarning
from harness.results.runs import RunSelection, select_runs

DEFAULT_TITLE = "cnnbench report"


def _selected(
    cases: pd.DataFrame, *, all_runs: bool = False, runs: Sequence[str] | None = None
) -> tuple[pd.DataFrame, RunSelection]:
    """The cases with ``in_figures`` marking the rows the run selection keeps (one run per
    configuration, one row per case), and the selection."""
    raw = cases.drop(columns=["latency_s_samples"], errors="ignore").reset_index(drop=True)
    raw = raw.assign(_row=range(len(raw)))
    selection = select_runs(raw, all_runs=all_runs, runs=runs)
    if raw.empty:
        return raw.drop(columns="_row").assign(in_figures=pd.Series(dtype=bool)), selection
    kept = set(selection.frame["_row"])
    marked = raw.assign(in_figures=[i in kept for i in raw["_row"]]).drop(columns="_row")
    return marked, selection


def build_report(
    cases: pd.DataFrame,
    layers: pd.DataFrame | None = None,
    power: pd.DataFrame | None = None,
    *,
    title: str = DEFAULT_TITLE,
    sources: Iterable[str] = (),
    all_runs: bool = False,
    runs: Sequence[str] | None = None,
) -> str:
    """The report as one self-contained HTML text, from the result tables.

    ``cases`` is the per-case table, ``layers`` the per-layer table, ``power`` the power trace
    table (run_id, case_id, t_s, power_w); either of the last two may be None or empty.
    ``sources`` (the files read) are listed in the footer. Per-model figures read one run per
    configuration (``harness.results.runs.select_runs``: ``all_runs`` pools them, ``runs`` names
    the runs to draw); the table of cases holds every row.
    """
    df, selection = prepare(cases, all_runs=all_runs, runs=runs)
    return render(df, selection, layers, power, title=title, sources=sources)


def prepare(
    cases: pd.DataFrame, *, all_runs: bool = False, runs: Sequence[str] | None = None
) -> tuple[pd.DataFrame, RunSelection]:
    """The cases ready for the page (``data.prepare_cases``, with ``in_figures`` from the run
    selection) and the selection."""
    marked, selection = _selected(cases, all_runs=all_runs, runs=runs)
    return prepare_cases(marked), selection


def render(
    df: pd.DataFrame,
    selection: RunSelection,
    layers: pd.DataFrame | None,
    power: pd.DataFrame | None,
    *,
    title: str = DEFAULT_TITLE,
    sources: Iterable[str] = (),
    passed_over: Sequence[str] = (),
) -> str:
    """The page from prepared cases (``prepare``) and the side tables; ``passed_over`` names
    the result files that could not be read (said on the first screen)."""
    lay = None
    if layers is not None and not layers.empty:
        lay = attach_case_keys(ensure_columns(keep_wanted(layers, df), "layers"), df)
    runs = df["run_id"].astype(object).nunique()
    configs = df["config"].nunique()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = (
        f"{len(df)} cases from {runs} run{'s' * (runs != 1)} on {configs} "
        f"configuration{'s' * (configs != 1)} · generated {now}"
    )
    named = df[df["model"].notna()]
    sections = [
        Section(
            "headline",
            "At a glance",
            "Which runs the figures draw, how the cases ended, and per input size the fastest "
            "model at batch 1 with its memory and validity; below, per configuration (host, "
            "device, threads, torch), the best throughput, efficiency and Pareto front.",
            headline(df, selection, passed_over)
            if not named.empty
            else [paragraph(_no_models(df), "missing")],
        )
    ]
    if named.empty:
        sections.append(Section("cases", "All cases", "", [cases_table(df)]))
        return render_page(title, subtitle, sections, _footer(sources))
    sections += [
        Section(
            "latency",
            "Latency and throughput",
            "Per model, against batch size (one small chart per model measured at several batch "
            "sizes; the others side by side): median step latency with a whisker to p90, and "
            "throughput = batch size / median latency.",
            list(figures.latency_figures(df)),
        ),
        Section("cost", "Speed against cost", "", [figures.cost_figure(df)]),
        Section(
            "memory",
            "Memory",
            "Measured peak memory of one step beside the analytic activation memory (the sum "
            "of the layer outputs of one forward pass), in binary units (KiB, MiB, GiB).",
            list(figures.memory_figure(df)),
        ),
        Section(
            "energy",
            "Energy",
            "Samples per joule from the power measured over the timed rounds.",
            [figures.energy_figure(df)],
        ),
        _layers_section(lay, df),
        Section(
            "roofline",
            "Roofline",
            "How close each inference case comes to its device's compute or memory roof.",
            [roofline_figure(df)],
        ),
        Section(
            "speedup",
            "Across configurations",
            "Median latency ratios between configurations (devices, hosts, thread counts), for "
            "the cases measured in both; configurations whose cases differ in one setting "
            "(1 and 2 threads) are compared across it, as cnnbench compare does.",
            [speedup_figure(df)],
        ),
        Section(
            "power",
            "Power trace",
            "Power sampled during the timed rounds of each case.",
            [figures_power(power, df)],
        ),
        Section(
            "cases",
            "All cases",
            "Every row of every run given. Click a heading to sort, type to filter. A dash is a "
            "value that was not measured: hover it for the reason; † marks a p99 from fewer than "
            "100 samples.",
            [cases_table(df)],
        ),
        Section(
            "runs",
            "Runs and environment",
            "Where and with what each run was measured.",
            [run_summary_table(df)],
        ),
    ]
    drawn = df[df["in_figures"].astype(bool)]
    noisy = int((drawn["quality"] == "noisy").sum())
    trusted = int(drawn["quality"].isin(TRUSTED).sum())
    toggle = noisy_toggle(noisy, shown=trusted == 0) if noisy else ""
    return render_page(title, subtitle, sections, _footer(sources), nav_extra=toggle)


def figures_power(power: pd.DataFrame | None, df: pd.DataFrame) -> Plot | Missing:
    """The power trace of the cases the figures draw."""
    return power_trace_figure(power, df[df["in_figures"]])


def _no_models(df: pd.DataFrame) -> str:
    if df.empty:
        return "No cases in these results."
    return (
        f"None of the {len(df)} rows names a model (the model column is empty): nothing to "
        "draw. The rows are listed below."
    )


def _footer(sources: Iterable[str]) -> str:
    files = list(sources)
    return "cnnbench report" + (f" · files: {', '.join(files)}" if files else "")


def _layers_section(layers: pd.DataFrame | None, cases: pd.DataFrame) -> Section:
    intro = (
        "Static numbers (parameters, MACs, output bytes) come from the profile on the meta "
        "device and are exact; measured numbers (time per layer) come from runs with layer "
        "times. Per-layer charts for up to three models (VGG-16 first, then models with "
        "measured times); the split by layer type for every model."
    )
    section = Section("layers", "Layer by layer", intro)
    if layers is None:
        section.parts.append(
            paragraph(
                "No layer table in these results: layer profiles are written beside the cases "
                "by the runner.",
                "missing",
            )
        )
        return section
    statement = vgg16_statement(layers)
    if statement:
        section.parts.append(Html(f'<p class="claim">{esc(statement)}</p>'))
    models = [m for m in dict.fromkeys(layers["model"]) if isinstance(m, str)]
    section.parts.append(shares_figure(layers, models))
    for model in layer_models(layers):
        section.parts.append(layer_figure(layers, model))
        if layers.loc[layers["model"] == model, "time_s"].notna().any():
            section.parts.append(layer_roofline(layers, cases, model))
    rows = []
    split = dict(tuple(layers.groupby("model", sort=False)))
    for model in models:
        shares = layer_shares(select_profile(split[model], model, timed=True))
        if not shares.empty:
            rows.append(shares.assign(model=model))
    if rows:
        section.parts.append(
            Html("<details><summary>Split by layer type, every model (table)</summary>")
        )
        section.parts.append(shares_table(pd.concat(rows, ignore_index=True)))
        section.parts.append(Html("</details>"))
    return section


def _load_side(
    paths: list[str | Path], table: str, keep: Callable[[pd.DataFrame], pd.DataFrame]
) -> pd.DataFrame | None:
    """A side table (layers, power) read file by file, each file cut to the rows ``keep``
    returns before the next is read (a 50,000-case directory holds millions of layer rows; the
    page reads a few thousand); None where the paths hold no such file."""
    from harness.core import schema
    from harness.results import store

    if table not in schema.TABLES:  # a table this schema version does not define yet
        return None
    try:
        files = store.result_files(paths, table)
    except ResultFileError:  # no file of this table among the paths (a corrupt one raised
        return None  # already, when the cases were read from the same paths)
    parts = []
    for f in files:
        try:
            part = keep(store.load_results([f], table=table))
        except ResultFileError as exc:  # one bad side file does not stop the page
            warnings.warn(f"passed over {exc}", ResultFileWarning, stacklevel=2)
            continue
        if not part.empty:
            parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else None


def write_report(
    paths: Iterable[str | Path],
    out: str | Path,
    *,
    title: str | None = None,
    replace: bool = True,
    all_runs: bool = False,
    runs: Sequence[str] | None = None,
) -> Path:
    """Read result files (or directories of them), build the report and write it to ``out``
    atomically (a temporary file, then a rename). Returns the path written. ``all_runs`` and
    ``runs`` choose the runs the figures draw (``harness.results.runs.select_runs``).

    ``replace=False`` never replaces a file: where ``out`` exists (another report written in
    the same second), the page goes to ``<stem>-2.html``, ``-3``... (an atomic link, so two
    reports at once never take one name)."""
    from harness.results.store import load_results

    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not path_list:
        raise ResultFileError("no result files given: pass parquet files or directories")
    cases = load_results(path_list, table="cases")
    df, selection = prepare(cases, all_runs=all_runs, runs=runs)
    passed_over = [f"passed over {why}" for why in cases.attrs.get("skipped_files", [])]
    layers = _load_side(path_list, "layers", lambda t: keep_wanted(t, df))
    drawn = set(zip(df.loc[df["in_figures"], "run_id"], df.loc[df["in_figures"], "case_id"],
                    strict=True))  # fmt: skip
    power = _load_side(
        path_list,
        "power",
        lambda t: t[[p in drawn for p in zip(t["run_id"], t["case_id"], strict=True)]],
    )
    text = render(
        df,
        selection,
        layers,
        power,
        title=title or DEFAULT_TITLE,
        sources=[str(p) for p in path_list],
        passed_over=passed_over,
    )
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        if replace:
            os.replace(tmp, out_path)
        else:
            out_path = _link_fresh(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out_path


def _link_fresh(tmp: str, out: Path) -> Path:
    """Link ``tmp`` at ``out``, or at ``<stem>-2<suffix>``, ``-3``... where a file is there:
    ``os.link`` fails rather than replace, so two writers never take one name."""
    for n in range(1, 10_000):
        target = out if n == 1 else out.with_name(f"{out.stem}-{n}{out.suffix}")
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        return target
    raise FileExistsError(f"{out} and 9,998 numbered names beside it are taken")
