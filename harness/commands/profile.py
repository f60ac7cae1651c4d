"""`cnnbench profile MODEL`: the static profile (parameters, MACs, activation memory) of a model,
layer by layer or by layer type, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from tabulate import tabulate

from harness import units

if TYPE_CHECKING:
    from harness.profile import ModelProfile


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


def run(args: argparse.Namespace) -> int:
    from harness.profile import profile  # torch is imported only when a command needs it

    prof = profile(args.model, args.input, batch_size=args.batch, dtype=args.dtype)
    if args.format == "json":
        print(json.dumps(prof.to_dict(), indent=2))
    elif args.format == "csv":
        frame = prof.by_type() if args.by_type else prof.to_frame()
        print(frame.to_csv(index=False), end="")
    else:
        print("\n".join(summary_lines(prof)))
        print()
        print(type_table(prof) if args.by_type else layer_table(prof))
    return 0
