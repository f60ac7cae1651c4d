"""Unit tests of the report's figure functions on small tables: traces, axes, missing values
drawn as gaps (None, never 0), and text from results escaped before plotly sees it."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa
import pytest

from harness.report import figures
from harness.report.data import device_labels, prepare_cases, values
from harness.report.layers import layer_category, layer_shares, select_profile, vgg16_statement
from harness.report.roofline import device_peak
from harness.results.schema import arrow_schema
from tests.report_data import (
    CPU_NAME,
    GPU_NAME,
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    NVML_MISSING,
    VGG16_CFG,
    case_row,
    cpu_env,
    gpu_env,
    make_cases,
    power_trace,
    vgg16_layers,
)


def as_arrow(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The frame as load_results returns it: Arrow dtypes, nulls as pd.NA."""
    t = pa.Table.from_pandas(df, schema=arrow_schema(table), preserve_index=False)
    return t.to_pandas(types_mapper=pd.ArrowDtype)


def fig_json(fig: go.Figure) -> str:
    return pio.to_json(fig, validate=False)


def all_text(fig: go.Figure) -> str:
    """Every string plotly will render as (pseudo-)HTML: names, texts, titles, annotations."""
    parts = [str(fig.layout.title.text)]
    parts += [str(a.text) for a in fig.layout.annotations]
    for t in fig.data:
        for attr in ("name", "text", "hovertext", "x"):
            v = getattr(t, attr, None)
            if v is not None:
                parts.append(str(v if isinstance(v, str) else list(v)))
    return "\n".join(parts)


def traces(fig: go.Figure, name_part: str) -> list:
    return [t for t in fig.data if t.name and name_part in t.name]


# ------------------------------------------------------------------------------ data helpers


def test_values_turns_every_kind_of_missing_into_none() -> None:
    s = pd.Series([1, None, 3], dtype="Int64")
    assert values(s) == [1.0, None, 3.0]
    assert values(pd.Series([1.5, float("nan")])) == [1.5, None]
    arrow = pd.Series([2.0, None], dtype=pd.ArrowDtype(pa.float64()))
    assert values(arrow) == [2.0, None]
    assert values([pd.NA, None, float("inf"), 0]) == [None, None, None, 0.0]


def test_device_labels_disambiguate_only_when_needed() -> None:
    rows = pd.DataFrame(
        [
            case_row(model="m", batch_size=1, **gpu_env()),
            case_row(model="m", batch_size=1, **{**gpu_env(), "host": "other-box"}),
            case_row(model="m", batch_size=1, **cpu_env()),
        ]
    )
    labels = list(device_labels(rows))
    assert labels == [f"{GPU_NAME} @ gpu-box", f"{GPU_NAME} @ other-box", CPU_NAME]


# ------------------------------------------------------------------------ latency, throughput


def test_latency_figure_traces_axes_and_error_bars() -> None:
    cases = make_cases()
    fig = figures.latency_throughput_figure(cases, "resnet18")
    # per device: median (with p99 whisker), p90 tick, throughput
    assert len(fig.data) == 6
    gpu = cases[(cases["model"] == "resnet18") & (cases["device"] == "cuda:0")]
    gpu = gpu[gpu["status"] == "ok"].sort_values("batch_size")
    median = next(t for t in fig.data if t.name == GPU_NAME and t.xaxis == "x")
    assert list(median.x) == [1, 2, 4, 8]
    assert list(median.y) == pytest.approx(list(gpu["latency_s_median"]))
    whisker = [p - m for p, m in zip(gpu["latency_s_p99"], gpu["latency_s_median"], strict=True)]
    assert list(median.error_y.array) == pytest.approx(whisker)
    p90 = next(t for t in fig.data if t.name == f"{GPU_NAME} p90")
    assert list(p90.y) == pytest.approx(list(gpu["latency_s_p90"]))
    tput = [t for t in fig.data if t.xaxis == "x2" and t.name == GPU_NAME]
    assert list(tput[0].y) == pytest.approx(list(gpu["throughput_per_s"]))
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "batch size"


def test_latency_missing_point_is_a_gap_and_the_reason_is_shown() -> None:
    rows = [
        case_row(
            model="m",
            batch_size=b,
            latency_s_median=0.01 * b,
            latency_s_p90=0.011 * b,
            latency_s_p99=0.012 * b,
            throughput_per_s=100.0,
            **gpu_env(),
        )
        for b in (1, 2)
    ]
    rows.append(
        case_row(model="m", batch_size=4, status="oom", error="CUDA out of memory", **gpu_env())
    )
    fig = figures.latency_throughput_figure(as_arrow(pd.DataFrame(rows), "cases"), "m")
    median = fig.data[0]
    assert list(median.x) == [1, 2, 4]
    assert list(median.y)[2] is None  # a gap, not 0
    assert list(median.error_y.array)[2] is None
    assert list(fig.data[2].y)[2] is None
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "oom: CUDA out of memory (1 case: m bs 4)" in notes


def test_hostile_model_names_are_escaped_in_every_label() -> None:
    cases = make_cases()
    for model in (HOSTILE_IMG, HOSTILE_SCRIPT):
        fig = figures.latency_throughput_figure(cases, model)
        text = all_text(fig)
        assert model not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text or "&lt;/script&gt;" in text
    for fig in (
        figures.throughput_gmacs_figure(cases),
        figures.energy_figure(cases),
        figures.memory_figure(cases),
        figures.speedup_figure(cases),
        figures.roofline_figure(cases),
    ):
        text = all_text(fig)
        assert HOSTILE_IMG not in text and "<script>" not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text


# ----------------------------------------------------------------------------------- bubbles


def test_bubble_chart_one_point_per_model_and_device_at_the_best_batch() -> None:
    cases = make_cases(hostile=False)
    fig = figures.throughput_gmacs_figure(cases)
    assert len(fig.data) == 2  # one trace per device
    gpu = next(t for t in fig.data if t.name == GPU_NAME)
    assert list(gpu.text) == ["resnet18", "vgg16"]
    ok = cases[(cases["device"] == "cuda:0") & cases["throughput_per_s"].notna()]
    for i, model in enumerate(["resnet18", "vgg16"]):
        rows = ok[ok["model"] == model]
        best = rows.loc[rows["throughput_per_s"].idxmax()]
        assert gpu.y[i] == pytest.approx(best["throughput_per_s"])
        assert gpu.x[i] == pytest.approx(best["macs"] / best["batch_size"] / 1e9)
        assert gpu.marker.size[i] == best["params"]
    assert fig.layout.xaxis.type == "log"


# ------------------------------------------------------------------------------------ energy


def test_energy_figure_plots_measured_power_and_names_why_the_rest_is_missing() -> None:
    cases = make_cases(hostile=False)
    fig = figures.energy_figure(cases)
    assert fig.data, "GPU rows have energy"
    assert all(GPU_NAME in t.name for t in fig.data)  # the CPU has no energy: no trace
    res = next(t for t in fig.data if t.name.startswith("resnet18") and t.xaxis == "x")
    gpu = cases[(cases["model"] == "resnet18") & (cases["device"] == "cuda:0")]
    gpu = gpu.sort_values("batch_size")  # bs 16 failed: its energy is a gap
    assert list(res.x) == [1, 2, 4, 8, 16]
    assert list(res.y)[:4] == pytest.approx(list(gpu["energy_j_per_sample"])[:4])
    assert list(res.y)[4] is None
    per_j = next(t for t in fig.data if t.name.startswith("resnet18") and t.xaxis == "x2")
    assert list(per_j.y)[:4] == pytest.approx([1 / e for e in gpu["energy_j_per_sample"][:4]])
    assert list(per_j.y)[4] is None
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert f"power not measured: {NVML_MISSING} (8 cases" in notes
    assert "1 / energy per sample" in notes  # derived column named as such


def test_energy_uses_samples_per_j_when_the_results_have_it() -> None:
    rows = [
        case_row(model="m", batch_size=b, energy_j_per_sample=0.5, samples_per_j=2.5, **gpu_env())
        for b in (1, 2)
    ]
    fig = figures.energy_figure(pd.DataFrame(rows))
    assert list(fig.data[1].y) == [2.5, 2.5]
    assert "1 / energy" not in " ".join(a.text for a in fig.layout.annotations)


def test_energy_of_a_v1_row_beside_a_v2_row_keeps_its_samples_per_joule() -> None:
    # schema v1 had energy_j_per_sample but no samples_per_j: read beside a v2 file, its rows
    # still get 1 / energy per sample (0.25 J -> 4 samples/J), not a gap
    rows = [
        case_row(model="m", batch_size=1, energy_j_per_sample=0.5, samples_per_j=2.0, **gpu_env()),
        case_row(
            model="m", batch_size=2, energy_j_per_sample=0.25, samples_per_j=None, **gpu_env()
        ),
    ]
    fig = figures.energy_figure(pd.DataFrame(rows))
    per_j = next(t for t in fig.data if t.xaxis == "x2")
    assert list(per_j.x) == [1, 2]
    assert list(per_j.y) == pytest.approx([2.0, 4.0])
    assert "1 / energy per sample" in " ".join(a.text for a in fig.layout.annotations)


def test_energy_placeholder_when_no_power_was_measured() -> None:
    cases = make_cases(hostile=False)
    cpu = cases[cases["device"] == "cpu"]
    fig = figures.energy_figure(cpu)
    assert len(fig.data) == 0
    text = fig.layout.annotations[0].text
    assert f"power not measured: {NVML_MISSING}" in text
    assert "0 J" not in text


# ------------------------------------------------------------------------------------ memory


def test_memory_figure_measured_and_analytic_lines() -> None:
    cases = make_cases(hostile=False)
    cases.loc[(cases["device"] == "cpu") & (cases["batch_size"] == 2), "peak_memory_bytes"] = None
    cases.loc[(cases["device"] == "cpu") & (cases["batch_size"] == 2), "memory_source"] = (
        "unavailable: tracker disabled"
    )
    fig = figures.memory_figure(cases)
    measured = next(t for t in fig.data if t.name == f"resnet18 · {CPU_NAME}")
    assert list(measured.x) == [1, 2, 4, 8]
    assert list(measured.y)[1] is None
    analytic = traces(fig, "resnet18 · activations (analytic)")
    assert len(analytic) == 1 and analytic[0].line.dash == "dash"
    rows = cases[(cases["model"] == "resnet18") & (cases["device"] == "cpu")]
    expected = list(rows.sort_values("batch_size")["activation_bytes"])
    assert list(analytic[0].y) == [*expected, None]  # bs 16 failed on the GPU: a gap
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "peak memory not measured: unavailable: tracker disabled" in notes


# ----------------------------------------------------------------------------------- speedup


def test_speedup_is_the_ratio_of_medians_against_the_first_device() -> None:
    cases = make_cases(hostile=False)
    fig = figures.speedup_figure(cases)
    assert len(fig.data) == 1
    bar = fig.data[0]
    ok = cases[cases["status"] == "ok"]
    gpu = ok[ok["device"] == "cuda:0"].set_index(["model", "batch_size"])["latency_s_median"]
    cpu = ok[ok["device"] == "cpu"].set_index(["model", "batch_size"])["latency_s_median"]
    expected = [gpu[(m, b)] / cpu[(m, b)] for m in ("resnet18", "vgg16") for b in (1, 2, 4, 8)]
    assert list(bar.y) == pytest.approx(expected)
    assert list(bar.x)[:2] == ["resnet18 bs 1", "resnet18 bs 2"]
    geo = math.exp(sum(math.log(r) for r in expected) / len(expected))
    assert f"geometric mean {geo:.3g}×" in bar.name
    assert fig.layout.yaxis.type == "log"


def test_speedup_stems_start_at_one_and_the_title_names_the_first_device() -> None:
    # Bars on a log axis start at the axis edge, so a ratio of 0.9 would look like a big bar:
    # each ratio is a marker on a stem from 1 instead, down from 1 when slower.
    cases = make_cases(hostile=False)
    fig = figures.speedup_figure(cases)
    (trace,) = fig.data
    stems = zip(trace.y, trace.error_y.array, trace.error_y.arrayminus, strict=True)
    for r, up, down in stems:
        assert (r - down, r + up) == pytest.approx((min(r, 1.0), max(r, 1.0)))
    assert all(r < 1 for r in trace.y)  # the CPU is slower than the first device, the GPU
    assert GPU_NAME not in fig.layout.yaxis.title.text  # short axis title, device in the title
    assert fig.layout.title.text.startswith(f"Speedup against {GPU_NAME} ")


def test_speedup_with_one_device_says_so() -> None:
    cases = make_cases(two_devices=False)
    fig = figures.speedup_figure(cases)
    assert len(fig.data) == 0
    assert "one device only" in fig.layout.annotations[0].text


# ---------------------------------------------------------------------------------- roofline


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB"),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
        ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
        ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
        ("Tesla V100-SXM2-32GB", "V100 SXM2"),
        ("Tesla V100-PCIE-16GB", "V100 PCIe"),
        ("Tesla T4", "T4"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA A10G", None),
        ("Intel(R) Xeon(R) Platinum 8480+", None),
        (None, None),
    ],
)
def test_device_peak_by_reported_name(name: str | None, expected: str | None) -> None:
    peak = device_peak(name)
    assert (peak.name if peak else None) == expected


def test_roofline_points_roofs_and_the_stated_approximation() -> None:
    cases = make_cases(hostile=False)
    train = case_row(
        model="resnet18",
        batch_size=8,
        mode="training",
        flops=10**9,
        latency_s_median=0.1,
        param_bytes=10,
        activation_bytes=10,
        **gpu_env(),
    )
    cases = pd.concat([cases, pd.DataFrame([train])], ignore_index=True)
    fig = figures.roofline_figure(cases)
    gpu = next(t for t in fig.data if t.name == f"{GPU_NAME} · float32")
    ok = cases[(cases["device"] == "cuda:0") & (cases["status"] == "ok")]
    ok = ok[ok["mode"] == "inference"]
    ai = list(ok["flops"] / (ok["param_bytes"] + ok["activation_bytes"]))
    achieved = list(ok["flops"] / ok["latency_s_median"])
    assert list(gpu.x) == pytest.approx(ai)
    assert list(gpu.y) == pytest.approx(achieved)
    h100 = device_peak(GPU_NAME)
    roofs = [t for t in fig.data if "roof" in t.name]
    assert {max(t.y) for t in roofs} == {h100.fp32_flops, h100.tf32_flops}
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "flops / (param_bytes + activation_bytes)" in notes
    assert f"no datasheet peak known for: {CPU_NAME}" in notes
    assert "1 non-inference cases are not drawn" in notes


def test_roofline_placeholder_without_param_bytes() -> None:
    cases = make_cases(hostile=False).assign(param_bytes=None)
    fig = figures.roofline_figure(cases)
    assert len(fig.data) == 0
    assert "param_bytes" in fig.layout.annotations[0].text


# ------------------------------------------------------------------------------- power trace


def test_power_trace_plots_the_table_with_gaps() -> None:
    cases = make_cases(hostile=False)
    power = power_trace()
    fig = figures.power_trace_figure(as_arrow_power(power), cases)
    assert len(fig.data) == 1
    t = fig.data[0]
    assert list(t.x) == pytest.approx(list(power["t_s"]))
    ys = list(t.y)
    assert ys[25] is None and ys[0] == 250.0
    assert t.name == f"resnet18 bs 8 · {GPU_NAME}"


def as_arrow_power(df: pd.DataFrame) -> pd.DataFrame:
    return pa.Table.from_pandas(df, preserve_index=False).to_pandas(types_mapper=pd.ArrowDtype)


def test_power_trace_placeholder_gives_the_power_source() -> None:
    cases = make_cases(hostile=False)
    fig = figures.power_trace_figure(None, cases[cases["device"] == "cpu"])
    assert len(fig.data) == 0
    assert f"power not measured: {NVML_MISSING}" in fig.layout.annotations[0].text


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
    pool_out += 512 * 7 * 7  # torchvision's adaptive average pooling
    fc_params = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    return {
        "conv_out": conv_out,
        "pool_out": pool_out,
        "fc_out": 4096 + 4096 + 1000,
        "conv_params": conv_params,
        "fc_params": fc_params,
    }


def test_vgg16_fixture_matches_torchvision_documented_parameter_count() -> None:
    # torchvision documents VGG16_Weights.IMAGENET1K_V1 with 138,357,544 parameters.
    assert int(vgg16_layers()["params"].sum()) == 138_357_544


def test_layer_shares_and_the_vgg16_statement() -> None:
    exp = vgg16_expected()
    layers = as_arrow(vgg16_layers(), "layers")
    shares = layer_shares(select_profile(layers, "vgg16")).set_index("category")
    assert shares.loc["fc", "params_pct"] == pytest.approx(100 * exp["fc_params"] / 138_357_544)
    assert shares.loc["conv", "activation_bytes"] == 4 * exp["conv_out"]
    statement = vgg16_statement(layers)
    assert statement is not None
    tabulated = exp["conv_out"] + exp["pool_out"] + exp["fc_out"]
    conv_pool = 100 * (exp["conv_out"] + exp["pool_out"]) / tabulated
    assert f"the convolution and pooling layers hold {conv_pool:.1f}%" in statement
    assert (
        f"the FC layers hold {100 * exp['fc_params'] / 138_357_544:.1f}% of the param" in statement
    )
    first_two = 2 * 64 * 224**2 + 64 * 112**2 + 2 * 128 * 112**2 + 128 * 56**2
    assert f"alone {100 * first_two / tabulated:.1f}%" in statement
    assert "agrees with the sum of the rows, not with the total line" in statement


def test_vgg16_statement_only_for_vgg16() -> None:
    assert vgg16_statement(vgg16_layers(model="vgg19")) is None
    assert vgg16_statement(None) is None


def test_layer_figure_bars_by_type_and_cumulative_shares() -> None:
    layers = vgg16_layers()
    fig = figures.layer_figure(layers, "vgg16")
    conv = [t for t in fig.data if t.name == "conv"]
    assert len(conv) == 2  # activation bars and parameter bars
    assert sum(conv[0].y) == 4 * vgg16_expected()["conv_out"]
    cum = next(t for t in fig.data if t.name == "cumulative parameters")
    assert cum.y[-1] == pytest.approx(100.0)
    assert all(b >= a for a, b in zip(cum.y, cum.y[1:], strict=False))


@pytest.mark.parametrize(
    ("kind", "category"),
    [
        ("Conv2d", "conv"),
        ("MaxPool2d", "pool"),
        ("AdaptiveAvgPool2d", "pool"),
        ("Linear", "fc"),
        ("BatchNorm2d", "norm"),
        ("LocalResponseNorm", "norm"),
        ("ReLU", "activation"),
        ("Dropout", "other"),
        (None, "other"),
    ],
)
def test_layer_category(kind: str | None, category: str) -> None:
    assert layer_category(kind) == category


def test_prepare_cases_accepts_an_older_table_missing_columns() -> None:
    old = make_cases(hostile=False).drop(columns=["param_bytes", "power_source", "host"])
    df = prepare_cases(old)
    assert df["param_bytes"].isna().all()
    for fig in (figures.energy_figure(old), figures.roofline_figure(old)):
        assert fig.layout.annotations  # says what is missing rather than failing


def test_power_reason_is_preferred_over_the_source() -> None:
    rows = [
        case_row(model="m", batch_size=1, energy_j_per_sample=0.5, **gpu_env()),
        case_row(
            model="m",
            batch_size=2,
            power_source="nvml_energy_counter",
            power_reason="window 0.2 s, shorter than the 1 s minimum",
            **gpu_env(),
        ),
    ]
    fig = figures.energy_figure(pd.DataFrame(rows))
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert (
        "power not measured: window 0.2 s, shorter than the 1 s minimum (1 case: m bs 2)" in notes
    )


def test_curves_split_only_on_dimensions_that_vary_within_a_model() -> None:
    rows = [
        case_row(model="lenet5", batch_size=1, input_shape="1x32x32", **gpu_env()),
        case_row(model="lenet5", batch_size=1, input_shape="1x32x32", mode="training", **gpu_env()),
        case_row(model="resnet18", batch_size=1, **gpu_env()),
    ]
    df = prepare_cases(pd.DataFrame(rows))
    assert list(df["series"]) == [
        f"{GPU_NAME} · inference",
        f"{GPU_NAME} · training",
        f"{GPU_NAME} · inference",
    ]


def test_layer_rows_without_case_keys_take_them_from_their_case() -> None:
    from harness.report.layers import attach_case_keys

    layers = vgg16_layers().assign(model=None, input_shape=None, batch_size=None, dtype=None)
    cases = make_cases(hostile=False)
    filled = attach_case_keys(layers, cases)
    assert set(filled["model"]) == {"vgg16"}
    assert set(filled["batch_size"]) == {1}
    assert vgg16_statement(filled) is not None


def test_durations_round_before_choosing_the_unit() -> None:
    from harness.report.data import seconds

    assert seconds(0.9996) == "1 s"
    assert seconds(0.0009996) == "1 ms"
    assert seconds(0.00123) == "1.23 ms"
