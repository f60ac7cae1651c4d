"""Unit tests of the report's figure functions on small tables: traces, axes, values, missing
values drawn as gaps (None, never 0), noisy rows hollow, configurations not runs, and text
escaped for plotly (quotes as typed)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
import pytest

from harness.core.schema import arrow_schema
from harness.report import figures
from harness.report.data import config_labels, prepare_cases, values
from harness.report.layers import (
    layer_category,
    layer_figure,
    layer_roofline,
    layer_shares,
    select_profile,
    shares_figure,
    vgg16_statement,
)
from harness.report.roofline import device_peak, roofline_figure
from harness.report.speedup import speedup_figure
from harness.report.style import Missing, Plot
from tests.report_data import (
    CPU_NAME,
    GPU_NAME,
    HOSTILE_IMG,
    NVML_MISSING,
    QUOTED,
    VGG16_CFG,
    case_row,
    cpu_env,
    gpu_env,
    make_cases,
    vgg16_layers,
)


def as_arrow(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The frame as load_results returns it: Arrow dtypes, nulls as pd.NA."""
    t = pa.Table.from_pandas(df, schema=arrow_schema(table), preserve_index=False)
    return t.to_pandas(types_mapper=pd.ArrowDtype)


def all_text(fig: go.Figure) -> str:
    """Every string plotly will render as (pseudo-)HTML: names, texts, titles, annotations."""
    parts = [str(fig.layout.title.text)]
    parts += [str(a.text) for a in fig.layout.annotations]
    for t in fig.data:
        for attr in ("name", "text", "hovertext", "x", "y"):
            v = getattr(t, attr, None)
            if v is not None:
                parts.append(str(v if isinstance(v, str) else list(v)))
    return "\n".join(parts)


def facet_traces(fig: go.Figure, model: str) -> list:
    """The traces drawn in the facet titled ``model``."""
    titles = [a for a in fig.layout.annotations if a.text == model]
    assert titles, f"no facet {model}"
    axes = [k for k in fig.layout if k.startswith("xaxis")]
    # facets are laid out in order: the n-th title belongs to the n-th x axis
    index = [a.text for a in fig.layout.annotations].index(model)
    axis = "x" if index == 0 else f"x{index + 1}"
    assert len(axes) >= index + 1
    return [t for t in fig.data if (t.xaxis or "x") == axis]


def series_rows(**extra: object) -> list[dict]:
    """resnet18 at four batch sizes on the GPU, batch 4 noisy."""
    rows = []
    for bs in (1, 2, 4, 8):
        median = 0.01 * bs
        rows.append(
            case_row(
                model="resnet18",
                batch_size=bs,
                latency_s_median=median,
                latency_s_p90=median * 1.1,
                latency_s_p99=median * 1.3,
                p99_reliable=False,
                throughput_per_s=bs / median,
                validity="noisy" if bs == 4 else "valid",
                validity_reason="IQR 36% of the median (limit 25%)" if bs == 4 else None,
                **{**gpu_env(), **extra},
            )
        )
    return rows


# ------------------------------------------------------------------------------ data helpers


def test_values_turns_every_kind_of_missing_into_none() -> None:
    assert values(pd.Series([1, None, 3], dtype="Int64")) == [1.0, None, 3.0]
    assert values(pd.Series([1.5, float("nan")])) == [1.5, None]
    assert values(pd.Series([2.0, None], dtype=pd.ArrowDtype(pa.float64()))) == [2.0, None]
    assert values([pd.NA, None, float("inf"), 0]) == [None, None, None, 0.0]


def test_configurations_not_runs_and_short_labels_only_as_long_as_needed() -> None:
    rows = pd.DataFrame(
        [
            case_row(model="m", batch_size=1, **gpu_env()),
            case_row(model="m", batch_size=1, **{**gpu_env(), "run_id": "run-2"}),
            case_row(model="m", batch_size=1, **{**gpu_env(), "host": "other-box"}),
            case_row(model="m", batch_size=1, **cpu_env()),
            case_row(model="m", batch_size=1, **{**cpu_env(), "cpu_threads": 1}),
        ]
    )
    full, short = config_labels(rows)
    gpu = "H100 80GB HBM3"
    # two runs on one configuration are one label; host and threads added where they differ
    assert list(short) == [
        f"{gpu} @ gpu-box",
        f"{gpu} @ gpu-box",
        f"{gpu} @ other-box",
        "Intel Xeon Test · 2 threads",
        "Intel Xeon Test · 1 thread",
    ]
    assert full[0] == f"gpu-box, {GPU_NAME}, 8 threads, torch 2.13.0"
    assert full[4] == f"{rows['host'][4]}, {CPU_NAME}, 1 thread, torch 2.13.0"


def test_eight_gpus_of_one_model_under_xdist_are_one_configuration() -> None:
    """Issue 22 item 2: the legend showed eight identical H100s, one per cuda:N."""
    rows = pd.DataFrame(
        [case_row(model=f"m{i}", batch_size=1, **{**gpu_env(), "device": f"cuda:{i}"})
         for i in range(8)]
    )  # fmt: skip
    full, short = config_labels(rows)
    assert set(short) == {"H100 80GB HBM3"} and full.nunique() == 1
    assert prepare_cases(rows)["config"].nunique() == 1


# ----------------------------------------------------------------------- latency, throughput


def test_latency_facets_median_whisker_p90_and_noisy_point_apart() -> None:
    rows = series_rows()
    rows.append(case_row(model="resnet18", batch_size=16, status="oom", error="CUDA out of "
                         "memory", **gpu_env()))  # fmt: skip
    rows += [case_row(model="vgg16", batch_size=b, latency_s_median=0.1 * b,
                      latency_s_p90=0.12 * b, throughput_per_s=10.0, validity="valid",
                      **gpu_env()) for b in (1, 2)]  # fmt: skip
    plots = figures.latency_figures(as_arrow(pd.DataFrame(rows), "cases"))
    latency, throughput, batch_one = plots
    assert isinstance(latency, Plot) and isinstance(batch_one, Plot)
    curve, noisy = facet_traces(latency.figure, "resnet18")
    # the curve joins the valid points only; the noisy one is apart: no line, hidden, hollow
    assert list(curve.x) == [1, 2, 8] and curve.mode == "lines+markers"
    assert list(curve.y) == pytest.approx([0.01, 0.02, 0.08])
    assert list(curve.error_y.array) == pytest.approx([0.001, 0.002, 0.008])
    assert list(noisy.x) == [4] and noisy.mode == "markers" and noisy.visible is False
    assert noisy.marker.symbol == "circle-open" and noisy.showlegend is False
    assert "NOISY (drawn hollow): IQR 36% of the median" in noisy.hovertext[0]
    assert "unreliable: fewer than 100 samples" in curve.hovertext[0]
    tput, _ = facet_traces(throughput.figure, "resnet18")
    assert list(tput.y) == pytest.approx([100.0] * 3)
    # the failed case is not a point but a note with its reason
    assert any("oom: CUDA out of memory (1 case: resnet18 bs 16)" in n for n in latency.notes)


def test_a_noisy_outlier_does_not_stretch_the_axis() -> None:
    """Issue 25: lenet5's noisy p90 of 476 ms dominated a panel of millisecond points."""
    rows = [case_row(model="lenet5", batch_size=b, latency_s_median=0.001 * b,
                     latency_s_p90=(0.476 if b == 8 else 0.0011 * b),
                     throughput_per_s=1000.0, validity="noisy" if b == 8 else "valid",
                     **cpu_env()) for b in (1, 2, 4, 8)]  # fmt: skip
    fig = figures.latency_figures(pd.DataFrame(rows))[0].figure
    hi = 10 ** fig.layout.yaxis.range[1]
    assert hi < 0.1  # the axis spans the valid rows (1.1 to 4.4 ms), not the noisy 476 ms


def test_latency_axis_has_labelled_125_ticks_and_does_not_magnify_noise() -> None:
    rows = [case_row(model="m", batch_size=b, latency_s_median=med, latency_s_p90=med,
                     throughput_per_s=b / med, validity="valid", **gpu_env())
            for b, med in ((1, 0.162), (2, 0.175))]  # fmt: skip
    fig = figures.latency_figures(pd.DataFrame(rows))[0].figure
    axis = fig.layout.yaxis
    assert axis.type == "log"
    lo, hi = (10**v for v in axis.range)
    assert hi / lo >= 10  # a 0.162-0.175 s spread is not stretched over the axis
    assert list(axis.ticktext) == ["50 ms", "100 ms", "200 ms", "500 ms"]  # in the eye's unit
    assert all(round(t / 10 ** math.floor(math.log10(t)), 6) in (1, 2, 5) for t in axis.tickvals)


def test_models_with_one_batch_size_share_one_compact_chart() -> None:
    rows = [case_row(model=f"m{i}", batch_size=1, latency_s_median=0.01 * (5 - i),
                     latency_s_p90=0.011 * (5 - i), throughput_per_s=100 / (5 - i),
                     validity="valid", **cpu_env()) for i in range(5)]  # fmt: skip
    plots = figures.latency_figures(pd.DataFrame(rows))
    assert len(plots) == 1
    fig = plots[0].figure
    med = fig.data[0]
    assert list(med.y) == [f"m{i} · 3x224x224" for i in range(5)]
    assert list(med.x) == pytest.approx([0.01 * (5 - i) for i in range(5)])
    assert list(fig.data[1].x) == pytest.approx([100 / (5 - i) for i in range(5)])
    # fastest first (the top of a category axis is the end of its array)
    order = list(fig.layout.yaxis.categoryarray)[::-1]
    assert order == [f"m{i} · 3x224x224" for i in (4, 3, 2, 1, 0)]


def test_the_batch_one_chart_holds_every_model_ranked_within_its_input_size() -> None:
    """Issue 25: the batch-1 chart left out the models with their own charts and was not
    sorted; lenet5 on 1x32x32 is ranked apart from the 3x224x224 models."""
    rows = [case_row(model=m, batch_size=b, input_shape=shape, latency_s_median=t * b,
                     latency_s_p90=t * b, throughput_per_s=1 / t, validity="valid",
                     **cpu_env())
            for m, shape, t in (("vgg16", "3x224x224", 0.4), ("lenet5", "1x32x32", 0.001),
                                ("resnet18", "3x224x224", 0.05), ("alexnet", "3x224x224", 0.02))
            for b in ((1, 8) if m in ("lenet5", "resnet18") else (1,))]  # fmt: skip
    rows.append(case_row(model="googlenet", batch_size=1, latency_s_median=0.01,
                         latency_s_p90=0.01, throughput_per_s=100.0, validity="noisy",
                         **cpu_env()))  # fmt: skip
    plots = figures.latency_figures(pd.DataFrame(rows))
    chart = plots[-1].figure
    order = list(chart.layout.yaxis.categoryarray)[::-1]
    assert order == ["alexnet · 3x224x224", "resnet18 · 3x224x224", "vgg16 · 3x224x224",
                     "googlenet · 3x224x224 (noisy only)", "lenet5 · 1x32x32"]  # fmt: skip
    shown = [t for t in chart.data if t.visible is not False]
    assert all(t.x is not None for t in shown)
    assert {y for t in shown for y in t.y} == set(order) - {"googlenet · 3x224x224 (noisy only)"}


def test_figures_are_bounded_beyond_a_number_of_models() -> None:
    n = figures.MAX_FACETS + 7
    rows = [case_row(model=f"model{i:02d}", batch_size=b, latency_s_median=0.01 * b,
                     latency_s_p90=0.01 * b, throughput_per_s=100.0, validity="valid",
                     **gpu_env()) for i in range(n) for b in (1, 2)]  # fmt: skip
    plots = figures.latency_figures(pd.DataFrame(rows))
    fig = plots[0].figure
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == figures.MAX_FACETS
    assert any("7 more models with several batch sizes not drawn" in n for n in plots[0].notes)


# ----------------------------------------------------------------------------- speed vs cost


def brute_force_front(points: list[tuple[str, float, float]]) -> set[str]:
    """Models for which no other model is at most as costly and faster, or cheaper and as fast."""
    return {
        m
        for m, c, t in points
        if not any((c2 <= c and t2 > t) or (c2 < c and t2 >= t) for _, c2, t2 in points)
    }


def test_cost_figure_inference_and_training_panels_with_the_pareto_front() -> None:
    spec = [("a", 1e9, 1000.0), ("b", 2e9, 1500.0), ("c", 3e9, 900.0), ("d", 5e8, 400.0)]
    rows = [case_row(model=m, batch_size=4, macs=int(c * 4), throughput_per_s=t,
                     latency_s_median=4 / t, validity="valid", **gpu_env())
            for m, c, t in spec]  # fmt: skip
    rows.append(case_row(model="a", batch_size=8, mode="training", macs=int(8e9),
                         throughput_per_s=300.0, latency_s_median=8 / 300, validity="valid",
                         **gpu_env()))  # fmt: skip
    plot = figures.cost_figure(pd.DataFrame(rows))
    fig = plot.figure
    inference = next(t for t in fig.data if t.mode == "markers+text" and t.xaxis == "x")
    training = next(t for t in fig.data if t.mode == "markers+text" and t.xaxis == "x2")
    assert list(inference.x) == pytest.approx([c for _, c, _ in spec])
    labelled = {t for t in inference.text if t}
    assert labelled == brute_force_front(spec) == {"a", "b", "d"}
    assert list(training.x) == pytest.approx([3 * 1e9])  # about 3x the forward MACs
    titles = [a.text for a in fig.layout.annotations]
    assert "training: about 3 × forward MACs per sample" in titles
    assert any("3 × the forward MACs" in n for n in plot.notes)


# ------------------------------------------------------------------------ energy and memory


def test_energy_is_samples_per_joule_and_missing_energy_says_why() -> None:
    cases = make_cases(hostile=False)
    plot = figures.energy_figure(cases)
    (trace,) = facet_traces(plot.figure, "resnet18")
    gpu = cases[(cases["model"] == "resnet18") & (cases["device"] == "cuda:0")]
    gpu = gpu[gpu["status"] == "ok"].sort_values("batch_size")
    assert list(trace.y) == pytest.approx(list(1 / gpu["energy_j_per_sample"]))
    assert any(f"power not measured: {NVML_MISSING} (8 cases" in n for n in plot.notes)
    missing = figures.energy_figure(cases[cases["device"] == "cpu"])
    assert isinstance(missing, Missing)
    assert any(f"power not measured: {NVML_MISSING}" in line for line in missing.lines)


def test_memory_in_binary_units_measured_and_analytic_labelled() -> None:
    cases = make_cases(hostile=False, two_devices=False)
    plots = figures.memory_figure(cases)
    fig = plots[0].figure
    ticks = [t for k in fig.layout if k.startswith("yaxis") for t in (fig.layout[k].ticktext or [])]
    assert ticks and all(t.endswith(("KiB", "MiB", "GiB", " B")) for t in ticks)
    measured, analytic = facet_traces(fig, "resnet18")
    assert measured.line.dash is None and analytic.line.dash == "dash"
    assert analytic.name == "analytic activations"
    rows = cases[(cases["model"] == "resnet18") & (cases["status"] == "ok")]
    assert list(measured.y) == list(rows.sort_values("batch_size")["peak_memory_bytes"])
    assert list(analytic.y) == list(rows.sort_values("batch_size")["activation_bytes"])


# ----------------------------------------------------------------------------------- speedup


def test_speedup_groups_by_configuration_and_gives_geometric_means() -> None:
    cases = make_cases(hostile=False)
    plot = speedup_figure(cases)
    (trace,) = plot.figure.data
    ok = cases[cases["status"] == "ok"]
    gpu = ok[ok["device"] == "cuda:0"].set_index(["model", "batch_size"])["latency_s_median"]
    cpu = ok[ok["device"] == "cpu"].set_index(["model", "batch_size"])["latency_s_median"]
    for i, model in enumerate(["resnet18", "vgg16"]):
        ratios = [gpu[(model, b)] / cpu[(model, b)] for b in (1, 2, 4, 8)]
        geo = math.exp(sum(math.log(r) for r in ratios) / 4)
        assert trace.y[i] == pytest.approx(geo)
        assert trace.error_y.arrayminus[i] == pytest.approx(geo - min(ratios))
    assert trace.name.startswith("Intel Xeon Test (0.025×, 8 of 8 cases judged)")
    assert all("footnote" not in a.text for a in plot.figure.layout.annotations)
    assert plot.notes[0].startswith(f"Baseline: gpu-box, {GPU_NAME}")


def test_two_runs_of_one_configuration_are_not_two_devices() -> None:
    first = make_cases(hostile=False, two_devices=False)
    second = first.assign(run_id="run-gpu-2", timestamp_utc="2026-11-24T10:00:00Z")
    cases = pd.concat([first, second], ignore_index=True)
    from harness.report.build import _selected

    marked, selection = _selected(cases)
    assert isinstance(speedup_figure(prepare_cases(marked)), Missing)
    assert marked["in_figures"].sum() == len(first)  # the later run only
    assert set(marked.loc[marked["in_figures"], "run_id"]) == {"run-gpu-2"}
    assert any("1 other run(s) left out" in n for n in selection.notes())


# ---------------------------------------------------------------------------------- roofline


def test_roofline_datasheet_roofs_for_a_gpu_and_measured_roofs_for_a_cpu() -> None:
    cases = make_cases(hostile=False).assign(
        peak_flops_measured=[50e9 if d == "cpu" else None for d in make_cases(
            hostile=False)["device"]],
        peak_bytes_per_s_measured=[10e9 if d == "cpu" else None for d in make_cases(
            hostile=False)["device"]],
    )  # fmt: skip
    plot = roofline_figure(cases)
    fig = plot.figure
    h100 = device_peak(GPU_NAME)
    roofs = [t for t in fig.data if t.mode == "lines"]
    tops = {round(max(t.y)) for t in roofs}
    assert tops == {round(h100.fp32_flops), round(h100.tf32_flops), round(50e9)}
    cpu_roof = next(t for t in roofs if "measured float32 roof" in t.name)
    # the memory slope: bandwidth x intensity below the ridge (5 FLOP/byte)
    assert cpu_roof.y[0] == pytest.approx(10e9 * cpu_roof.x[0])
    gpu = next(t for t in fig.data if t.mode == "markers" and "H100" in t.name)
    ok = cases[(cases["device"] == "cuda:0") & (cases["status"] == "ok")]
    assert list(gpu.x) == pytest.approx(list(ok["flops"] / (ok["param_bytes"] +
                                                             ok["activation_bytes"])))  # fmt: skip
    assert any("Measured roofs" in n for n in plot.notes)


def test_a_float32_gpu_row_gets_the_datasheet_roof_of_the_precision_it_ran() -> None:
    """Issue 22 item 10: float32 convolutions in TF32 are under the TF32 roof, not FP32's."""
    base = make_cases(hostile=False)
    gpu = base[base["device"] == "cuda:0"]
    h100 = device_peak(GPU_NAME)
    for tf32, tops in ((True, {h100.tf32_flops}), (False, {h100.fp32_flops}),
                       (None, {h100.fp32_flops, h100.tf32_flops})):  # fmt: skip
        fig = roofline_figure(gpu.assign(tf32_conv=tf32)).figure
        assert {round(max(t.y)) for t in fig.data if t.mode == "lines"} == {
            round(t) for t in tops
        }, tf32


def test_a_case_above_its_measured_roof_is_said() -> None:
    """Issue 25 item 4: the roof is a maximum; where a row passes it, the page says so."""
    base = make_cases(hostile=False)
    cpu = base[base["device"] == "cpu"]
    achieved = (cpu["flops"] / cpu["latency_s_median"]).max()
    plot = roofline_figure(cpu.assign(peak_flops_measured=achieved / 2,
                                      peak_bytes_per_s_measured=10e9))  # fmt: skip
    assert any(n.startswith("Cases above their measured roof (") for n in plot.notes)
    fine = roofline_figure(cpu.assign(peak_flops_measured=achieved * 2,
                                      peak_bytes_per_s_measured=10e9))  # fmt: skip
    assert not any("above their measured roof" in n for n in fine.notes)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB"),
        ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
        ("Tesla V100-SXM2-32GB", "V100 SXM2"),
        ("Tesla T4", "T4"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10G", None),
        ("Intel(R) Xeon(R) Platinum 8480+", None),
        (None, None),
    ],
)
def test_device_peak_by_reported_name(name: str | None, expected: str | None) -> None:
    peak = device_peak(name)
    assert (peak.name if peak else None) == expected


# ------------------------------------------------------------------------------------ layers


def vgg16_expected() -> dict[str, float]:
    """VGG-16 at 224x224 from its configuration: output values and weights by layer type."""
    conv_out = pool_out = conv_params = 0
    c, hw = 3, 224
    for v in VGG16_CFG:
        if v == "M":
            hw //= 2
            pool_out += c * hw * hw
        else:
            conv_out += int(v) * hw * hw
            conv_params += 9 * c * int(v) + int(v)
            c = int(v)
    fc_params = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    return {"conv_out": conv_out, "pool_out": pool_out, "fc_out": 4096 + 4096 + 1000,
            "conv_params": conv_params, "fc_params": fc_params}  # fmt: skip


def test_vgg16_fixture_matches_torchvision_documented_parameter_count() -> None:
    # torchvision documents VGG16_Weights.IMAGENET1K_V1 with 138,357,544 parameters.
    assert int(vgg16_layers()["params"].sum()) == 138_357_544


def test_layer_shares_from_the_formula() -> None:
    exp = vgg16_expected()
    shares = layer_shares(select_profile(as_arrow(vgg16_layers(), "layers"), "vgg16"))
    shares = shares.set_index("category")
    assert shares.loc["fc", "params_share"] == pytest.approx(exp["fc_params"] / 138_357_544)
    assert shares.loc["conv", "activation_bytes"] == 4 * exp["conv_out"]
    assert shares["time_s_share"].isna().all()  # nothing measured: missing, not 0


def test_vgg16_statement_comes_from_the_claims_function_with_time_shares_per_batch() -> None:
    exp = vgg16_expected()
    layers = pd.concat(
        [vgg16_layers(), vgg16_layers(8, case_id="vgg16-bs8", timed=True),
         vgg16_layers(1, case_id="vgg16-bs1-timed", timed=True)],
        ignore_index=True,
    )  # fmt: skip
    text = vgg16_statement(layers)
    assert text is not None
    assert f"FC layers hold {100 * exp['fc_params'] / 138_357_544:.1f}% of the parameters" in text
    rows = 224 * 224 * 3 + exp["conv_out"] + exp["pool_out"] + exp["fc_out"]
    assert f"{rows:,} values per sample" in text
    # the constructed time is 1 ns per MAC and per output byte: the FC share follows
    for bs in (1, 8):
        t = vgg16_layers(bs, timed=True)
        fc = t[t["layer_type"] == "Linear"]
        share = fc["time_s"].sum() / t["time_s"].sum()
        assert (
            f"batch {bs} (float32, {t['time_s'].sum():.3g} s): FC layers {100 * share:.1f}%" in text
        )
    assert vgg16_statement(vgg16_layers(model="vgg19")) is None
    assert vgg16_statement(None) is None


def test_layer_figure_names_layers_and_labels_static_and_measured() -> None:
    layers = vgg16_layers(timed=True)
    layers.loc[3, "activation_bytes"] = None  # missing stays missing
    plot = layer_figure(layers, "vgg16")
    fig = plot.figure
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "time per layer (measured, median over steps)"
    assert all("(static)" in t for t in titles[1:])
    ticks = [t for k in fig.layout if k.startswith("xaxis") for t in (fig.layout[k].ticktext or [])]
    assert "features.0" in ticks and "classifier.6" in ticks
    bars = [t for t in fig.data if t.name == "conv" and t.yaxis == "y2"]  # output bytes panel
    conv_rows = layers[layers["layer_type"] == "Conv2d"]
    assert list(bars[0].y) == [None if pd.isna(v) else v for v in conv_rows["activation_bytes"]]
    assert any("1 layers have no output bytes recorded: gaps, not zeros" in n for n in plot.notes)


def test_shares_figure_and_layer_roofline() -> None:
    layers = pd.concat([vgg16_layers(timed=True), vgg16_layers(model="vgg19", case_id="v19")])
    plot = shares_figure(layers, ["vgg16", "vgg19"])
    titles = [a.text for a in plot.figure.layout.annotations]
    assert titles[0] == "measured time" and "parameters (static)" in titles
    row = case_row(model="vgg16", batch_size=1, case_id="vgg16-bs1-cuda:0", **gpu_env())
    cases = prepare_cases(pd.DataFrame([row]))
    from harness.report.layers import attach_case_keys

    roof = layer_roofline(attach_case_keys(vgg16_layers(timed=True), cases), cases, "vgg16")
    conv = next(t for t in roof.figure.data if t.name == "conv")
    t = vgg16_layers(timed=True)
    t = t[t["layer_type"] == "Conv2d"]
    assert list(conv.x) == pytest.approx(list(t["arithmetic_intensity"]))
    assert list(conv.y) == pytest.approx(list(t["achieved_flops_per_s"]))
    assert any("H100 SXM FP32" in (r.name or "") for r in roof.figure.data)


@pytest.mark.parametrize(
    ("kind", "layer_kind", "category"),
    [
        ("Conv2d", None, "conv"),
        ("MaxPool2d", None, "pool"),
        ("Linear", "leaf", "fc"),
        ("BatchNorm2d", None, "norm"),
        ("ReLU", None, "activation"),
        ("Dropout", None, "other"),
        ("BasicBlock", "parent_ops", "parent ops"),
        (None, None, "other"),
    ],
)
def test_layer_category(kind: str | None, layer_kind: str | None, category: str) -> None:
    assert layer_category(kind, layer_kind) == category


# ------------------------------------------------------------------------------------ escaping


def test_hostile_names_are_escaped_and_quotes_read_as_typed() -> None:
    cases = make_cases()
    cases.loc[cases["model"] == "resnet18", "model"] = QUOTED
    texts = []
    for plot in [
        *figures.latency_figures(cases),
        figures.cost_figure(cases),
        *figures.memory_figure(cases),
        figures.energy_figure(cases),
        speedup_figure(cases),
        roofline_figure(cases),
    ]:
        texts.append(all_text(plot.figure))
    text = "\n".join(texts)
    assert HOSTILE_IMG not in text and "<script>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert QUOTED in text and "&quot;" not in text


def test_prepare_cases_accepts_an_older_table_missing_columns() -> None:
    old = make_cases(hostile=False).drop(columns=["param_bytes", "power_source", "host",
                                                  "validity"])  # fmt: skip
    df = prepare_cases(old)
    assert df["param_bytes"].isna().all()
    assert set(df["quality"]) <= {"unassessed", "oom", "error"}
    assert isinstance(figures.energy_figure(old), Plot)


# ------------------------------------------------------------------------------- power trace


def test_power_trace_plots_the_table_with_gaps_and_units_in_the_hover() -> None:
    from harness.report.power import power_trace_figure
    from tests.report_data import power_trace

    cases = make_cases(hostile=False)
    power = power_trace()
    arrow = pa.Table.from_pandas(power, preserve_index=False).to_pandas(types_mapper=pd.ArrowDtype)
    plot = power_trace_figure(arrow, cases)
    (trace,) = plot.figure.data
    assert list(trace.x) == pytest.approx(list(power["t_s"]))
    assert trace.y[25] is None and trace.y[0] == 250.0  # a missing sample is a gap
    assert trace.name == "resnet18 bs 8 · H100 80GB HBM3"
    assert trace.hovertext[1] == "20 ms: 260 W"
    missing = power_trace_figure(None, cases[cases["device"] == "cpu"])
    assert isinstance(missing, Missing)
    assert any(f"power not measured: {NVML_MISSING}" in line for line in missing.lines)
