"""`cnnbench profile MODEL`: the static profile (parameters, MACs, activation memory) of a model,
layer by layer or by layer type, as a table, JSON or CSV.

``--measure`` also runs the model on a device and measures the time per layer
(harness.measure.layer_times): a short warm-up and timed steps give the step median
(harness.measure.timing), then K profiled steps the time of each layer, beside its MACs and
parameters."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from harness.core import units

if TYPE_CHECKING:
    import pandas as pd

    from harness.profile import ModelProfile

DEFAULT_STEPS = 5


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "profile",
        help="static profile of a model: params, MACs, activation memory per layer",
        description="Profile a model on the meta device (no memory, no compute): totals and "
        "one row per leaf layer, or one per layer type with --by-type.",
    )
    p.add_argument("model", help="registered name (see `cnnbench models`), torchvision:NAME, "
                   "timm:NAME or package.module:factory")  # fmt: skip
    p.add_argument(
        "--input",
        default=None,
        metavar="SHAPE",
        help="input shape without the batch: CxHxW (3x224x224) or, for 1D models, CxL (1x5000); "
        "default: the model's",
    )
    p.add_argument("--batch", type=int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--dtype", default="float32", help="float32, float16, bfloat16, float64")
    p.add_argument("--by-type", action="store_true", help="one row per layer type")
    p.add_argument(
        "--measure",
        action="store_true",
        help="also run the model and measure the time per layer (torch.profiler): measured "
        "time and its share next to MACs and params",
    )
    p.add_argument(
        "--device",
        default=None,
        help="with --measure: cpu (default) or cuda[:N]",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="K",
        help=f"with --measure: profiled steps the layer times are the median of (default "
        f"{DEFAULT_STEPS})",
    )
    p.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="PATH",
        help="import a suite file (or a directory's test files) first, so the models it "
        "registers are known, with their input (repeatable)",
    )
    p.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output (default table); json holds the totals, the split by type and every layer",
    )
    p.set_defaults(func=run)
    return p


def summary_lines(prof: ModelProfile) -> list[str]:
    """The header of the table view: what was profiled and the totals, humanised."""
    unhandled = ", ".join(f"{k} x{v}" for k, v in sorted(prof.unhandled_ops.items()))
    return [
        f"{prof.model}: input {units.shape(prof.input_shape)}, batch {prof.batch_size}, "
        f"{prof.dtype}",
        f"params       {units.count(prof.params)} ({prof.params:,}; trainable "
        f"{prof.trainable_params:,}; {units.nbytes(prof.param_bytes)})",
        f"MACs         {units.macs(prof.macs)} ({prof.macs:,}; {units.flops(prof.flops)})",
        f"activations  {units.nbytes(prof.activation_bytes)} ({prof.activation_bytes:,} bytes, "
        "sum of leaf-layer outputs)",
        f"connections  {units.count(prof.connections)} (MACs + bias additions)",
        f"counter      {prof.counter}",
        f"unhandled    {unhandled or 'none (every op is counted or ignored on purpose)'}",
    ]


def layer_table(prof: ModelProfile) -> str:
    frame = prof.to_frame()
    rows = [
        [r.layer_index, r.layer_name, r.layer_type, r.output_shape, units.count(r.params),
         units.macs(r.macs), units.count(r.connections), units.nbytes(r.activation_bytes),
         units.percent(r.cum_params_share), units.percent(r.cum_macs_share),
         units.percent(r.cum_activation_share)]
        for r in frame.itertuples()
    ]  # fmt: skip
    headers = ["#", "layer", "type", "output", "params", "MACs", "connections", "activations",
               "cum params", "cum MACs", "cum act"]  # fmt: skip
    align = ("right", "left", "left", "right", *["right"] * 7)
    return tabulate(rows, headers=headers, colalign=align, disable_numparse=True)


def type_table(prof: ModelProfile) -> str:
    frame = prof.by_type()
    rows = [
        [r.layer_type, r.count, units.count(r.params), units.percent(r.params_share),
         units.macs(r.macs), units.percent(r.macs_share), units.nbytes(r.activation_bytes),
         units.percent(r.activation_share)]
        for r in frame.itertuples()
    ]  # fmt: skip
    headers = ["type", "layers", "params", "params %", "MACs", "MACs %", "activations", "act %"]
    align = ("left", *["right"] * 7)
    return tabulate(rows, headers=headers, colalign=align, disable_numparse=True)


@dataclass
class Measured:
    """What --measure adds: the step median and the layer frame with its time columns."""

    device: str
    step_median_s: float
    rounds: int
    layers: pd.DataFrame
    columns: dict[str, Any]


def _device(name: str | None) -> Any:
    import torch

    from harness.core.errors import InvalidInputError
    from harness.run.runner import resolve_device, unavailable_reason

    text = name or "cpu"
    try:
        device = resolve_device(text)
    except (RuntimeError, ValueError):
        raise InvalidInputError(
            f"unknown device {text!r}: use --device cpu or --device cuda[:N]"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            "--device cuda: CUDA is not available here (no GPU or no NVIDIA driver); "
            "use --device cpu"
        )
    reason = unavailable_reason(device)
    if reason:
        raise InvalidInputError(f"--device {text}: {reason}")
    return device


def measure(prof: ModelProfile, args: argparse.Namespace) -> Measured:
    """Build the case on the device (harness.run.step.prepare_step), time a short warm-up and
    steps for the step median (harness.measure.timing), then measure the layer times."""
    from harness.core.errors import InvalidInputError
    from harness.core.schema import column_names
    from harness.core.spec import Case
    from harness.measure.layer_times import measure_layer_times
    from harness.measure.timing import measure_latency
    from harness.run.step import prepare_step

    steps = DEFAULT_STEPS if args.steps is None else args.steps
    if steps < 1:
        raise InvalidInputError(f"--steps must be at least 1, got {steps}")
    device = _device(args.device)
    case = Case(args.model, prof.input_shape, prof.batch_size, prof.dtype, device=str(device))
    static = prof.to_frame().assign(
        model=case.model,
        input_shape=case.to_dict()["input_shape"],
        batch_size=case.batch_size,
        dtype=case.dtype,
    )
    static = static[[c for c in column_names("layers") if c in static.columns]]
    prepared = prepare_step(case, device)
    with prepared.contexts():
        timing = measure_latency(
            prepared.step,
            device=device,
            warmup_rounds=2,
            warmup_time_s=0.1,
            min_rounds=3,
            min_time_s=0.3,
            max_time_s=5.0,
        )
        summary = timing.summary()
        median = float(summary["latency_s_median"])
        measured = measure_layer_times(
            prepared, case, device, steps=steps, static=static, step_median_s=median
        )
    return Measured(str(device), median, int(summary["rounds"]), measured.layers, measured.columns)


def _type_label(layer_type: str, kind: str) -> str:
    """A parent's own ops (the residual add, cat) are listed apart from its type's layers."""
    return f"{layer_type} (own ops)" if kind == "parent_ops" else layer_type


def measured_by_type(frame: pd.DataFrame, totals: dict[str, int]) -> pd.DataFrame:
    """Roll-up of a measured layer frame per layer type (a parent's own ops apart), in order of
    first appearance: layers, time_s (and time_s_backward where measured), and the shares of
    time (of the summed layer times), MACs, params and activation bytes (of the model's
    totals)."""
    pairs = zip(frame["layer_type"], frame["layer_kind"], strict=True)
    labelled = frame.assign(layer_type=[_type_label(t, k) for t, k in pairs])
    grouped = labelled.groupby("layer_type", sort=False).agg(
        layers=("layer_index", "size"),
        time_s=("time_s", lambda c: c.sum(min_count=1)),
        time_s_backward=("time_s_backward", lambda c: c.sum(min_count=1)),
        macs=("macs", "sum"),
        params=("params", "sum"),
        activation_bytes=("activation_bytes", "sum"),
    )
    time_total = frame["time_s"].sum(min_count=1)
    grouped["time_share"] = grouped["time_s"] / time_total
    for col, total in (
        ("macs", totals["macs"]),
        ("params", totals["params"]),
        ("activation_bytes", totals["activation_bytes"]),
    ):
        grouped[f"{col.removesuffix('_bytes')}_share"] = grouped[col] / total if total else None
    return grouped.reset_index()


def measured_lines(measured: Measured) -> list[str]:
    """What was measured, how, and how much of the step the layers cover."""
    c = measured.columns
    return [
        f"measured     {measured.device}: step median {units.seconds(measured.step_median_s)} "
        f"({measured.rounds} timed steps); layer times: median of {c['layer_time_steps']} "
        "profiled steps",
        f"coverage     {units.percent(c['layer_time_coverage'])} of the step median is in "
        "the layers' ops",
        f"method       {c['layer_time_source']}",
    ]


def measured_layer_table(frame: pd.DataFrame) -> str:
    backward = frame["time_s_backward"].notna().any()
    rows = []
    for r in frame.itertuples():
        row = [r.layer_index, r.layer_name, _type_label(r.layer_type, r.layer_kind),
               r.output_shape, units.count(r.params), units.macs(r.macs),
               units.seconds(r.time_s), units.percent(r.time_share),
               units.si(r.achieved_flops_per_s, "FLOP/s")]  # fmt: skip
        if backward:
            row.append(units.seconds(r.time_s_backward))
        rows.append(row)
    headers = ["#", "layer", "type", "output", "params", "MACs", "time", "time %", "FLOP/s"]
    if backward:
        headers.append("backward")
    align = ("right", "left", "left", "right", *["right"] * (len(headers) - 4))
    return tabulate(rows, headers=headers, colalign=align, disable_numparse=True)


def measured_type_table(frame: pd.DataFrame, prof: ModelProfile) -> str:
    grouped = measured_by_type(frame, prof.totals())
    rows = [
        [r.layer_type, r.layers, units.seconds(r.time_s), units.percent(r.time_share),
         units.percent(r.macs_share), units.percent(r.params_share),
         units.percent(r.activation_share)]
        for r in grouped.itertuples()
    ]  # fmt: skip
    headers = ["type", "layers", "time", "time %", "MACs %", "params %", "act %"]
    align = ("left", *["right"] * 6)
    return tabulate(rows, headers=headers, colalign=align, disable_numparse=True)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: missing values (NaN, pd.NA) are null."""
    plain = frame.astype(object).where(frame.notna(), None)
    return plain.to_dict(orient="records")


def _print_measured(prof: ModelProfile, measured: Measured, args: argparse.Namespace) -> None:
    frame = measured.layers
    if args.format == "json":
        data = prof.to_dict()
        data["by_type"] = _records(measured_by_type(frame, prof.totals()))
        data["layers"] = _records(frame)
        data["measured"] = {
            "device": measured.device,
            "step_median_s": measured.step_median_s,
            "rounds": measured.rounds,
            **measured.columns,
        }
        print(json.dumps(data, indent=2))
    elif args.format == "csv":
        out = measured_by_type(frame, prof.totals()) if args.by_type else frame
        print(out.to_csv(index=False), end="")
    else:
        print("\n".join(summary_lines(prof) + measured_lines(measured)))
        print()
        print(measured_type_table(frame, prof) if args.by_type else measured_layer_table(frame))


def run(args: argparse.Namespace) -> int:
    from harness.core.errors import InvalidInputError
    from harness.models.suites import load_suites
    from harness.profile import profile  # torch is imported only when a command needs it

    if not args.measure and (args.device is not None or args.steps is not None):
        raise InvalidInputError("--device and --steps go with --measure (a measured profile)")
    load_suites(args.suite)
    prof = profile(args.model, args.input, batch_size=args.batch, dtype=args.dtype)
    if args.measure:
        _print_measured(prof, measure(prof, args), args)
    elif args.format == "json":
        print(json.dumps(prof.to_dict(), indent=2))
    elif args.format == "csv":
        frame = prof.by_type() if args.by_type else prof.to_frame()
        print(frame.to_csv(index=False), end="")
    else:
        print("\n".join(summary_lines(prof)))
        print()
        print(type_table(prof) if args.by_type else layer_table(prof))
    return 0
