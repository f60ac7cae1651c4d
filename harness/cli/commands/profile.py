"""`cnnbench profile MODEL`: the static profile (parameters, MACs, activation memory) of a model,
layer by layer or by layer type, as a table, JSON or CSV.

``--measure`` also runs the model on a device and measures the time per layer
(harness.measure.layer_times): a short warm-up and timed steps give the step median
(harness.measure.timing), then K profiled steps the time of each layer, beside its MACs and
parameters."""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from harness.cli import static_cache
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
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute a registered model's static profile (kept after the first run, keyed "
        "by the harness's code and the torch version)",
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
    """What --measure adds: the case's row (the runner's: median, interval, rounds, validity,
    layer-time columns) and the layer frame with its time columns."""

    device: str
    row: dict[str, Any]
    layers: pd.DataFrame

    @property
    def step_median_s(self) -> float:
        return float(self.row["latency_s_median"])

    @property
    def rounds(self) -> int:
        return int(self.row["rounds"])


def measure(prof: ModelProfile, args: argparse.Namespace) -> Measured:
    """Run the case through the runner (harness.run.runner.run_case: the memory pre-check,
    the timed rounds with their noise verdict, then the layer times), with the quick preset's
    timing (harness.run.options)."""
    from harness.core.errors import InvalidInputError, MeasurementError
    from harness.core.settings import SettingError
    from harness.core.spec import Case
    from harness.measure.devices import usable_device
    from harness.run.options import preset
    from harness.run.runner import run_case

    device = usable_device(args.device or "cpu")
    steps = DEFAULT_STEPS if args.steps is None else args.steps
    try:
        options = preset("quick", layer_times=True, layer_time_steps=steps)
    except SettingError as exc:
        raise InvalidInputError(f"--steps: {exc}") from None
    case = Case(args.model, prof.input_shape, prof.batch_size, prof.dtype, device=str(device))
    result = run_case(case, options)
    row = result.row
    if row["status"] == "skipped":  # refused before it ran: the input is too big here
        raise InvalidInputError(f"{case.model} at batch {case.batch_size}: {row['error']}")
    if row["status"] != "ok":
        raise MeasurementError(f"{case.model}: {row['status']}: {row['error']}")
    if result.layers is None or "time_s" not in result.layers:
        raise MeasurementError(f"{case.model}: {row.get('layer_time_source')}")
    return Measured(str(device), row, result.layers)


def _type_label(layer_type: str, kind: str) -> str:
    """A parent's own ops (the residual add, cat) are listed apart from its type's layers."""
    return f"{layer_type} (own ops)" if kind == "parent_ops" else layer_type


def measured_by_type(frame: pd.DataFrame, totals: dict[str, int]) -> pd.DataFrame:
    """Roll-up of a measured layer frame per layer type (a parent's own ops apart), in order of
    first appearance (harness.core.layers.roll_up): layers, time_s (and time_s_backward where
    measured), and the shares of time (of the summed layer times), MACs, params and activation
    bytes (of the model's totals)."""
    kinds = zip(frame["layer_type"], frame["layer_kind"], strict=True)
    from harness.core.layers import roll_up  # pandas: only for a measured profile

    grouped = roll_up(
        frame,
        [_type_label(t, k) for t, k in kinds],
        ("time_s", "time_s_backward", "macs", "params", "activation_bytes"),
        totals={k: totals[k] for k in ("macs", "params", "activation_bytes")},
    )
    names = {"key": "layer_type", "time_s_share": "time_share",
             "activation_bytes_share": "activation_share"}  # fmt: skip
    return grouped.rename(columns=names).drop(columns=["time_s_backward_share"])


def measured_lines(measured: Measured) -> list[str]:
    """What was measured, how, whether the number can be trusted, and how much of the step the
    layers cover."""
    r = measured.row
    from harness.core.stats import half_width_rel

    half = half_width_rel(
        r.get("latency_s_median_ci_low"), r.get("latency_s_median_ci_high"), r["latency_s_median"]
    )
    spread = "" if half is None else f" ±{units.percent(half)}"
    verdict = str(r.get("validity") or "not judged")
    if r.get("validity_reason"):
        verdict += f": {r['validity_reason']}"
    return [
        f"measured     {measured.device}: step median {units.seconds(measured.step_median_s)}"
        f"{spread} ({measured.rounds} timed steps); layer times: median of "
        f"{r['layer_time_steps']} profiled steps",
        f"validity     {verdict}",
        f"coverage     {units.percent(r['layer_time_coverage'])} of the step median is in "
        "the layers' ops",
        f"method       {r['layer_time_source']}",
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
        keep = ("latency_s_median", "latency_s_median_ci_low", "latency_s_median_ci_high",
                "rounds", "stop_reason", "validity", "validity_reason", "layer_time_steps",
                "layer_time_coverage", "layer_time_source")  # fmt: skip
        data["measured"] = {
            "device": measured.device,
            "step_median_s": measured.step_median_s,
            **{k: measured.row.get(k) for k in keep},
        }
        print(json.dumps(data, indent=2))
    elif args.format == "csv":
        from harness.cli.csv_out import write_csv

        write_csv(measured_by_type(frame, prof.totals()) if args.by_type else frame, sys.stdout)
    else:
        print("\n".join(summary_lines(prof) + measured_lines(measured)))
        print()
        print(measured_type_table(frame, prof) if args.by_type else measured_layer_table(frame))


def static_text(prof: ModelProfile, args: argparse.Namespace) -> str:
    """The static profile as the command prints it (a final newline included)."""
    if args.format == "json":
        return json.dumps(prof.to_dict(), indent=2) + "\n"
    if args.format == "csv":
        from harness.cli.csv_out import write_csv

        out = io.StringIO()
        write_csv(prof.by_type() if args.by_type else prof.to_frame(), out)
        return out.getvalue()
    table = type_table(prof) if args.by_type else layer_table(prof)
    return "\n".join(summary_lines(prof)) + "\n\n" + table + "\n"


def run(args: argparse.Namespace) -> int:
    from harness.core.errors import InvalidInputError

    if not args.measure and (args.device is not None or args.steps is not None):
        raise InvalidInputError("--device and --steps go with --measure (a measured profile)")
    if args.measure and args.steps is not None and args.steps < 1:
        raise InvalidInputError(f"--steps must be at least 1, got {args.steps}")
    # a registered name's static profile depends on the harness's code and torch only
    cacheable = not (args.measure or args.suite or ":" in args.model) and static_cache.usable()
    key = [args.model, str(args.input), str(args.batch), args.dtype, str(args.by_type),
           args.format]  # fmt: skip
    text = None if args.no_cache or not cacheable else static_cache.get("profile", key)
    if text is not None:
        print(text, end="")
        return 0
    from harness.models.suites import load_suites
    from harness.profile import profile  # torch is imported only when a command needs it

    load_suites(args.suite)
    prof = profile(args.model, args.input, batch_size=args.batch, dtype=args.dtype)
    if args.measure:
        _print_measured(prof, measure(prof, args), args)
        return 0
    text = static_text(prof, args)
    if cacheable:
        static_cache.put("profile", key, text)
    print(text, end="")
    return 0
