"""Result tables for the report tests, built with the schema's column names.

The numbers here are display inputs, not measurements: the report tests check that what is in
a table reaches the page (and that what is missing shows as missing), so any consistent values
do. The VGG-16 layer table is the exception: it is derived from the architecture by formula
(3x3 convolutions with padding 1, 2x2/2 pooling, torchvision's classifier), so the shares the
report prints can be checked against numbers computed independently in the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.schema import column_names

HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "</script><script>alert(1)</script>"
HOSTILE_HOST = "lab\"host'<b>"
QUOTED = 'my "net"'  # quotes must read as typed in plotly labels (not &quot;)
GPU_NAME = "NVIDIA H100 80GB HBM3"
CPU_NAME = "Intel(R) Xeon(R) Test CPU"
NVML_MISSING = "unavailable: NVML library not found"

# VGG-16 (configuration D): channels per conv layer, "M" for 2x2/2 max pooling.
VGG16_CFG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def case_row(**values: Any) -> dict[str, Any]:
    """One cases-table row: every schema column, None unless given."""
    row: dict[str, Any] = dict.fromkeys(column_names("cases"))
    row.update(
        schema_version=3,
        run_id="run-a",
        run_complete=True,
        input_shape="3x224x224",
        dtype="float32",
        dtype_method=None,
        memory_format="contiguous",
        mode="inference",
        compiled=False,
        status="ok",
    )
    row.update(values)
    if row.get("case_id") is None:
        row["case_id"] = f"{row['model']}-bs{row['batch_size']}-{row['device']}"
    return row


def _measured(
    model: str, bs: int, base_s: float, *, gflops: float, params: int, **extra: Any
) -> dict[str, Any]:
    median = base_s * (0.6 + 0.4 * bs)
    extra.setdefault("validity", "valid")
    return case_row(
        model=model,
        batch_size=bs,
        latency_s_median=median,
        latency_s_mean=median * 1.01,
        latency_s_p90=median * 1.05,
        latency_s_p99=median * 1.12,
        throughput_per_s=bs / median,
        params=params,
        param_bytes=4 * params,
        macs=int(gflops * 1e9 * bs),
        flops=int(2 * gflops * 1e9 * bs),
        activation_bytes=int(2e6 * bs * gflops),
        peak_memory_bytes=int(4 * params + 3e6 * bs * gflops),
        **extra,
    )


def gpu_env(**extra: Any) -> dict[str, Any]:
    return dict(
        run_id="run-gpu",
        host="gpu-box",
        device="cuda:0",
        device_name=GPU_NAME,
        timestamp_utc="2026-11-23T10:00:00Z",
        torch_version="2.13.0",
        cuda_version="12.8",
        cpu_threads=8,
        memory_source="cuda_allocator",
        **extra,
    )


def cpu_env(**extra: Any) -> dict[str, Any]:
    return dict(
        run_id="run-cpu",
        host=HOSTILE_HOST,
        device="cpu",
        device_name=CPU_NAME,
        timestamp_utc="2026-11-23T11:00:00Z",
        torch_version="2.13.0",
        cpu_threads=2,
        memory_source="cpu_tensor_tracker",
        power_source=NVML_MISSING,
        **extra,
    )


def make_cases(*, hostile: bool = True, two_devices: bool = True) -> pd.DataFrame:
    """A cases table: resnet18 and (optionally hostile-named) models on a GPU and a CPU, with
    an out-of-memory case, a failed case, and power measured on the GPU only."""
    models = [("resnet18", 1.82, 11_689_512), ("vgg16", 15.5, 138_357_544)]
    if hostile:
        models += [(HOSTILE_IMG, 0.5, 1_000_000), (HOSTILE_SCRIPT, 0.3, 500_000)]
    rows = []
    for model, gflops, params in models:
        for bs in (1, 2, 4, 8):
            lat = 1e-4 * gflops
            power = 300.0 + 10 * bs
            rows.append(
                _measured(
                    model,
                    bs,
                    lat,
                    gflops=gflops,
                    params=params,
                    power_w_mean=power,
                    power_w_max=power * 1.1,
                    energy_j_per_sample=power * lat * (0.6 + 0.4 * bs) / bs,
                    power_source="nvml_energy_counter",
                    **gpu_env(),
                )
            )
            if two_devices:
                rows.append(
                    _measured(model, bs, 40 * lat, gflops=gflops, params=params, **cpu_env())
                )
    rows.append(
        case_row(
            model="vgg16",
            batch_size=4096,
            status="oom",
            error="CUDA out of memory. Tried to allocate 12.00 GiB",
            params=138_357_544,
            **gpu_env(),
        )
    )
    rows.append(
        case_row(
            model=HOSTILE_IMG if hostile else "resnet18",
            batch_size=16,
            status="error",
            error=f"RuntimeError: {HOSTILE_SCRIPT}",
            **gpu_env(),
        )
    )
    return pd.DataFrame(rows, columns=column_names("cases"))


def vgg16_layers(
    batch_size: int = 1,
    *,
    model: str = "vgg16",
    run_id: str = "run-gpu",
    case_id: str = "vgg16-bs1-cuda:0",
    timed: bool = False,
) -> pd.DataFrame:
    """The leaf layers of torchvision's VGG-16 at 3x224x224, float32, from the configuration.

    With ``timed``, each layer gets a constructed time (not a measurement: 1 ns per MAC plus
    1 ns per output byte, so the FC layers' share of the time follows from the formula) and the
    columns that follow from it, as the layer-time measurement writes them."""
    rows: list[dict[str, Any]] = []
    c, hw = 3, 224

    def add(name: str, kind: str, shape: tuple[int, ...], params: int, macs: int) -> None:
        numel = batch_size
        for d in shape:
            numel *= d
        rows.append(
            dict(
                schema_version=1,
                run_id=run_id,
                case_id=case_id,
                model=model,
                input_shape="3x224x224",
                batch_size=batch_size,
                dtype="float32",
                layer_index=len(rows),
                layer_name=name,
                layer_type=kind,
                output_shape="x".join(str(d) for d in (batch_size, *shape)),
                params=params,
                macs=macs * batch_size,
                connections=None,
                activation_bytes=4 * numel,
            )
        )

    i = 0
    for v in VGG16_CFG:
        if v == "M":
            hw //= 2
            add(f"features.{i}", "MaxPool2d", (c, hw, hw), 0, 0)
            i += 1
            continue
        out = int(v)
        add(f"features.{i}", "Conv2d", (out, hw, hw), 9 * c * out + out, 9 * c * out * hw * hw)
        add(f"features.{i + 1}", "ReLU", (out, hw, hw), 0, 0)
        c, i = out, i + 2
    add("avgpool", "AdaptiveAvgPool2d", (512, 7, 7), 0, 0)
    add("flatten", "Flatten", (25088,), 0, 0)
    dims = [(25088, 4096), (4096, 4096), (4096, 1000)]
    for j, (n_in, n_out) in enumerate(dims):
        add(f"classifier.{3 * j}", "Linear", (n_out,), n_in * n_out + n_out, n_in * n_out)
        if j < 2:
            add(f"classifier.{3 * j + 1}", "ReLU", (n_out,), 0, 0)
            add(f"classifier.{3 * j + 2}", "Dropout", (n_out,), 0, 0)
    df = pd.DataFrame(rows, columns=column_names("layers"))
    df["layer_kind"] = "leaf"
    if timed:
        df["time_s"] = (df["macs"] + df["activation_bytes"]) * 1e-9
        df["time_share"] = df["time_s"] / df["time_s"].sum()
        moved = 4 * df["params"] + 2 * df["activation_bytes"]
        df["bytes_moved"] = moved
        df["achieved_flops_per_s"] = [
            None if m == 0 else 2 * m / t for m, t in zip(df["macs"], df["time_s"], strict=True)
        ]
        df["arithmetic_intensity"] = [
            None if m == 0 else 2 * m / b for m, b in zip(df["macs"], moved, strict=True)
        ]
    return df


def power_trace(
    run_id: str = "run-gpu",
    case_id: str = "resnet18-bs8-cuda:0",
    n: int = 50,
    rate_hz: float = 50.0,
) -> pd.DataFrame:
    """A power trace table (run_id, case_id, t_s, power_w) with one missing sample."""
    t = [i / rate_hz for i in range(n)]
    w: list[float | None] = [250.0 + 100.0 * min(1.0, i / 10) for i in range(n)]
    w[n // 2] = None
    return pd.DataFrame({"run_id": run_id, "case_id": case_id, "t_s": t, "power_w": w})


# ------------------------------------------------- a new user's results directory (issue 25)

# The quick grid's cases (suites/test_classic_cnns.py): (test, model, input, batch, format, mode).
_SHAPES = {"lenet5": "1x32x32", "alexnet_original": "3x227x227", "inception_3a": "192x28x28",
           "inception_3a_naive": "192x28x28", "inception_v4": "3x299x299",
           "inception_resnet_v2": "3x299x299", "resnet1d18": "1x5000",
           "resnet1d_multiscale": "1x5000"}  # fmt: skip
QUICK_MODELS = ("lenet5", "alexnet_original", "alexnet", "zfnet", "vgg11", "vgg16", "vgg19",
                "googlenet", "inception_3a", "inception_3a_naive", "resnet18", "resnet34",
                "resnet50", "resnet101", "resnet152", "plain18", "plain34", "preact_resnet18",
                "inception_v4", "inception_resnet_v2", "resnet1d18",
                "resnet1d_multiscale")  # fmt: skip
# per model: GMACs of one sample at its input (for consistent display values only)
_GMACS = {"lenet5": 0.0004, "alexnet_original": 1.1, "alexnet": 0.71, "zfnet": 1.2,
          "vgg11": 7.6, "vgg16": 15.5, "vgg19": 19.6, "googlenet": 1.5, "inception_3a": 0.13,
          "inception_3a_naive": 0.3, "resnet18": 1.8, "resnet34": 3.7, "resnet50": 4.1,
          "resnet101": 7.8, "resnet152": 11.5, "plain18": 1.79, "plain34": 3.64,
          "preact_resnet18": 1.8, "inception_v4": 12.3, "inception_resnet_v2": 13.2,
          "resnet1d18": 0.2, "resnet1d_multiscale": 0.3}  # fmt: skip


def quick_grid(models: tuple[str, ...] = QUICK_MODELS) -> list[dict[str, Any]]:
    """The quick grid's case keys for ``models`` (31 cases for every model)."""
    cases = [dict(model=m, batch_size=1, memory_format="contiguous", mode="inference")
             for m in models]  # fmt: skip
    for m in ("lenet5", "alexnet", "resnet18", "resnet1d18"):
        formats = ("contiguous",) if m == "resnet1d18" else ("contiguous", "channels_last")
        if m in models:
            cases += [dict(model=m, batch_size=8, memory_format=f, mode="inference")
                      for f in formats]  # fmt: skip
    for m in ("lenet5", "resnet18"):
        if m in models:
            cases.append(dict(model=m, batch_size=8, memory_format="contiguous", mode="training"))
    return cases


def user_run(run_id: str, stamp: str, cases: list[dict[str, Any]], *, valid: int,
             cpu_threads: int = 2, threads: int | None = None, slow: float = 1.0,
             ) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of one run on a 2-core CPU: the first ``valid`` cases valid, the rest noisy."""
    rows = []
    for i, c in enumerate(cases):
        model, bs = c["model"], c["batch_size"]
        per_sample = 0.002 + 0.02 * _GMACS[model] * slow * (3 if c["mode"] == "training" else 1)
        median = per_sample * bs
        noisy = i >= valid
        rows.append(
            dict(
                case_id=f"{model}-{bs}-{c['memory_format']}-{c['mode']}-t{threads}",
                model=model,
                input_shape=_SHAPES.get(model, "3x224x224"),
                batch_size=bs,
                dtype="float32",
                dtype_method="autocast",  # older files recorded a method for float32 too
                memory_format=c["memory_format"],
                mode=c["mode"],
                compiled=False,
                threads=threads,
                device="cpu",
                device_name=CPU_NAME,
                host="vm-1",
                cpu_threads=cpu_threads,
                torch_version="2.13.0",
                timestamp_utc=stamp,
                latency_s_samples=[median * f for f in (0.97, 0.99, 1.0, 1.01, 1.04)],
                latency_s_median=median,
                latency_s_p90=median * 1.03,
                latency_s_p99=median * 1.04,
                throughput_per_s=bs / median,
                params=int(_GMACS[model] * 5e6) + 1000,
                macs=int(_GMACS[model] * 1e9 * bs),
                activation_bytes=int(_GMACS[model] * 4e7 * bs),
                peak_memory_bytes=int(_GMACS[model] * 2e7 * bs + 2e7),
                memory_source="cpu_tensor_tracker",
                status="ok",
                validity="noisy" if noisy else "valid",
                validity_reason="CPU pressure 0.41 > 0.1" if noisy else None,
                power_source=NVML_MISSING,
            )
        )
    return rows


USER_RUNS = {
    "full-1": "20261129T100000Z-vm-1",
    "full-2": "20261129T110000Z-vm-1",
    "xdist": "20261129T120000Z-vm-1",
    "threads": "20261129T130000Z-vm-1",
}


def user_directory(root: Path) -> Path:
    """What a first hour of use leaves in results/ (issue 25): two full quick-grid runs (31
    cases on 2 threads; 12 and 10 valid), a three-model ``-n auto`` run (each worker on one
    core: 1 thread), and a thread sweep of the same three models at 1 and 2 threads, each
    written through ResultWriter as the plugin writes them."""
    from harness.results import ResultWriter

    three = ("lenet5", "alexnet", "resnet18")
    runs = {
        "full-1": user_run(USER_RUNS["full-1"], "2026-11-29T10:05:00+00:00", quick_grid(),
                           valid=12),
        "full-2": user_run(USER_RUNS["full-2"], "2026-11-29T11:05:00+00:00", quick_grid(),
                           valid=10),
        "xdist": user_run(USER_RUNS["xdist"], "2026-11-29T12:05:00+00:00", quick_grid(three),
                          valid=0, cpu_threads=1, slow=1.7),
        "threads": [
            *user_run(USER_RUNS["threads"], "2026-11-29T13:05:00+00:00", quick_grid(three),
                      valid=1, cpu_threads=1, threads=1, slow=1.8),
            *user_run(USER_RUNS["threads"], "2026-11-29T13:06:00+00:00", quick_grid(three),
                      valid=2, cpu_threads=2, threads=2),
        ],
    }  # fmt: skip
    for name, rows in runs.items():
        with ResultWriter(root, run_id=USER_RUNS[name]) as w:
            for r in rows:
                w.add_case(r)
    return root
