"""The one definition of the result tables: columns, dtypes, units, SCHEMA_VERSION.

Units live in column names and never change (``_s`` seconds, ``_bytes``, ``_w`` watts,
``_j`` joules, ``_hz``). A metric that could not be measured is null, with a ``*_source`` or
``error`` column saying why: never 0 and never invented.

Tables, each its own parquet file beside the others in a results directory:
  * ``cases``  ``<run_id>.parquet``: one row per case (CASES)
  * ``layers`` ``<run_id>.layers.parquet``: one row per leaf layer per measured case (LAYERS)
  * ``power``  ``<run_id>.power.parquet``: the power trace of each case's timed window (POWER)

Every file carries the key-value metadata ``cnnbench.table`` and ``cnnbench.schema_version``;
a parquet file without them is not a result file.

Version history:
  1: the first schema.
  2: power columns (power_w_idle, energy_j_total, samples_per_j, energy_window_s,
     power_samples, power_sample_hz, power_polls, power_reason; clocks, temperature, power limit
     and clock-event reasons at the start and end of the window) and the ``power`` table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 2
META_TABLE = b"cnnbench.table"
META_VERSION = b"cnnbench.schema_version"
STATUSES = ("ok", "oom", "error", "skipped")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    unit: str
    doc: str


def _c(name: str, type_: pa.DataType, unit: str, doc: str) -> Column:
    return Column(name, type_, unit, doc)


S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()

CASES: tuple[Column, ...] = (
    # identity and provenance
    _c("schema_version", I, "", "version of this schema the row was written with"),
    _c("run_id", S, "", "one id per pytest session or CLI run"),
    _c("run_complete", B, "", "false while the run is going on or after it was interrupted"),
    _c("timestamp_utc", S, "ISO 8601", "when the case finished"),
    _c("case_id", S, "", "readable id of the case (also its pytest id)"),
    # the case key
    _c("model", S, "", "registered model name"),
    _c("input_shape", S, "", "input without batch, CxHxW or CxL"),
    _c("batch_size", I, "samples", "samples per forward pass"),
    _c("dtype", S, "", "float32, float16, bfloat16"),
    _c("dtype_method", S, "", "autocast or cast (how a reduced precision was applied)"),
    _c("memory_format", S, "", "contiguous or channels_last"),
    _c("mode", S, "", "inference (forward) or training (forward+backward+optimizer step)"),
    _c("compiled", B, "", "run through torch.compile"),
    _c("device", S, "", "torch device string the case ran on (cpu, cuda:0)"),
    # environment
    _c("device_name", S, "", "GPU name, or the CPU model on CPU"),
    _c("host", S, "", "host name"),
    _c("os", S, "", "operating system and kernel"),
    _c("cpu_model", S, "", "CPU model name"),
    _c("cpu_cores", I, "cores", "logical CPU cores of the machine"),
    _c("cpu_threads", I, "threads", "torch intra-op threads used for the case"),
    _c("ram_bytes", I, "bytes", "total system memory"),
    _c("gpu_uuid", S, "", "GPU UUID (NVML/CUDA)"),
    _c("gpu_pci_bus_id", S, "", "GPU PCI bus id"),
    _c("gpu_memory_bytes", I, "bytes", "total GPU memory"),
    _c("driver_version", S, "", "NVIDIA driver version"),
    _c("cuda_version", S, "", "CUDA version torch was built with"),
    _c("cudnn_version", S, "", "cuDNN version"),
    _c("cudnn_benchmark", B, "", "torch.backends.cudnn.benchmark during the case"),
    _c("torch_version", S, "", "torch.__version__"),
    _c("python_version", S, "", "Python version"),
    _c("harness_version", S, "", "version of this harness"),
    _c("git_commit", S, "", "commit of the project the run came from"),
    _c("git_dirty", B, "", "uncommitted changes in that checkout"),
    _c("command_line", S, "", "the command that started the run"),
    # static profile
    _c("params", I, "count", "parameters"),
    _c("trainable_params", I, "count", "parameters with requires_grad"),
    _c("param_bytes", I, "bytes", "bytes of the parameters at the case's dtype"),
    _c("macs", I, "MACs", "multiply-accumulates of one forward pass at the case's batch"),
    _c("flops", I, "FLOPs", "2 * macs"),
    _c("activation_bytes", I, "bytes", "sum of leaf-layer output bytes, one forward pass"),
    # timing
    _c("timing_method", S, "", "how rounds were timed (perf_counter + synchronize, ...)"),
    _c("percentile_method", S, "", "numpy percentile method used for iqr, p90, p99"),
    _c("warmup_rounds", I, "rounds", "uncounted rounds before measuring"),
    _c("rounds", I, "rounds", "measured rounds (one step each)"),
    _c("latency_s_first", F, "s", "the very first call (cold), kept apart"),
    _c("latency_s_median", F, "s", "median step latency"),
    _c("latency_s_mean", F, "s", "mean step latency"),
    _c("latency_s_stddev", F, "s", "sample standard deviation"),
    _c("latency_s_min", F, "s", "fastest step"),
    _c("latency_s_max", F, "s", "slowest step"),
    _c("latency_s_iqr", F, "s", "p75 - p25"),
    _c("latency_s_p90", F, "s", "90th percentile"),
    _c("latency_s_p99", F, "s", "99th percentile"),
    _c("p99_reliable", B, "", "false when p99 comes from fewer than 100 samples"),
    _c("latency_s_samples", pa.list_(F), "s", "every measured step, in order"),
    _c("throughput_per_s", F, "samples/s", "batch_size / latency_s_median"),
    # memory
    _c("peak_memory_bytes", I, "bytes", "peak memory during one measured step"),
    _c("memory_baseline_bytes", I, "bytes", "weights and input resident before the step"),
    _c("memory_source", S, "", "cuda_allocator, cpu_tensor_tracker, or why unmeasured"),
    # power (filled by harness.measure.power; docs/POWER.md says what each reading is)
    _c("power_w_mean", F, "W", "mean power over the timed window (energy / window if counted)"),
    _c("power_w_max", F, "W", "highest power sample"),
    _c("power_w_idle", F, "W", "mean power of an idle baseline taken before the case"),
    _c("energy_j_total", F, "J", "energy of the whole window, from the energy counter"),
    _c("energy_j_per_sample", F, "J", "energy of the window / samples processed"),
    _c("samples_per_j", F, "samples/J", "samples processed / energy of the window"),
    _c("energy_window_s", F, "s", "length of the measured window"),
    _c("power_samples", I, "count", "distinct power readings in the window's trace"),
    _c("power_sample_hz", F, "Hz", "rate the power sampler was asked to poll at"),
    _c("power_polls", I, "count", "power reads made (power_polls / energy_window_s: rate reached)"),
    _c("power_source", S, "", "where power came from, or why it was not measured"),
    _c("power_reason", S, "", "why a power column is null (window too short, counter still)"),
    _c("sm_clock_mhz_start", I, "MHz", "GPU SM clock when the window started"),
    _c("sm_clock_mhz_end", I, "MHz", "GPU SM clock when the window ended"),
    _c("mem_clock_mhz_start", I, "MHz", "GPU memory clock when the window started"),
    _c("mem_clock_mhz_end", I, "MHz", "GPU memory clock when the window ended"),
    _c("temperature_c_start", I, "C", "GPU temperature when the window started"),
    _c("temperature_c_end", I, "C", "GPU temperature when the window ended"),
    _c("power_limit_w", F, "W", "enforced GPU power limit"),
    _c("throttle_reasons_start", S, "", "clock-event (throttle) reasons at start, comma-separated"),
    _c("throttle_reasons_end", S, "", "clock-event (throttle) reasons at end, comma-separated"),
    # outcome
    _c("status", S, "", "ok, oom, error or skipped"),
    _c("error", S, "", "the reason when status is not ok"),
)

LAYERS: tuple[Column, ...] = (
    _c("schema_version", I, "", "version of this schema"),
    _c("run_id", S, "", "run the profile belongs to"),
    _c("case_id", S, "", "case the profile was taken for"),
    _c("model", S, "", "registered model name"),
    _c("input_shape", S, "", "input without batch"),
    _c("batch_size", I, "samples", "batch of the profile"),
    _c("dtype", S, "", "dtype of the profile"),
    _c("layer_index", I, "", "execution order of the leaf layer"),
    _c("layer_name", S, "", "qualified module name"),
    _c("layer_type", S, "", "module class name"),
    _c("output_shape", S, "", "output shape with batch, NxCxHxW"),
    _c("params", I, "count", "parameters of this layer"),
    _c("macs", I, "MACs", "multiply-accumulates of this layer"),
    _c("connections", I, "count", "LeNet-style connections: MACs plus bias additions"),
    _c("activation_bytes", I, "bytes", "bytes of this layer's output"),
)

POWER: tuple[Column, ...] = (
    _c("schema_version", I, "", "version of this schema"),
    _c("run_id", S, "", "run the trace belongs to"),
    _c("case_id", S, "", "case whose timed window was traced"),
    _c("t_s", F, "s", "time of the reading since the window started"),
    _c("power_w", F, "W", "power reading (instant, averaged or from a counter: power_source)"),
)

TABLES: dict[str, tuple[Column, ...]] = {"cases": CASES, "layers": LAYERS, "power": POWER}
FILE_SUFFIX: dict[str, str] = {
    "cases": ".parquet",
    "layers": ".layers.parquet",
    "power": ".power.parquet",
}


def arrow_schema(table: str) -> pa.Schema:
    """The pyarrow schema of ``table``, with the cnnbench metadata attached."""
    cols = TABLES[table]
    return pa.schema(
        [pa.field(c.name, c.type) for c in cols],
        metadata={META_TABLE: table.encode(), META_VERSION: str(SCHEMA_VERSION).encode()},
    )


def column_names(table: str) -> list[str]:
    return [c.name for c in TABLES[table]]
