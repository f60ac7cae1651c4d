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
     and clock-event reasons at the start and end of the window), the ``power`` table, and
     ``connections``, ``cudnn_allow_tf32``, ``float32_matmul_precision``, ``load_avg_1m`` and
     ``unhandled_ops`` in the cases table.
  3: trust and scale-out. Cases: ``threads`` (requested intra-op threads, part of the case
     key), ``test_name``, the median's confidence interval and why the rounds stopped, the noise
     signals and the validity verdict (``validity``, ``validity_reason``, ``remeasured``), the
     worker and isolation a case ran in, where its static profile came from, measured
     layer-time coverage, the run's measured CPU roofs, Dynamo statistics of compiled cases,
     the energy counter's scope, released cuBLAS workspaces; status ``crashed``. Layers:
     measured time per layer and what follows from it (share, achieved FLOP/s, bytes moved,
     arithmetic intensity) and ``layer_kind``.
  4: the GPU box and windows. Cases: ``gpu_index`` (NVML's number of the GPU: an xdist worker
     sees its own as cuda:0), whether float32 convolutions and matmuls ran in TF32
     (``tf32_conv``, ``tf32_matmul``) and the precision of the measured roof
     (``peak_flops_tf32``), other processes on the GPU around the case
     (``gpu_foreign_processes``, ``gpu_foreign_memory_bytes``), the share of the timed rounds
     the clocks were held down by each reason (NVML's clock-event time counters) and the SM
     clock over them from the driver's samples, and where these came from
     (``gpu_watch_source``). Windows (harness.core.windows): every sample's window
     (``latency_s_window_ids``), the number of windows and of those that agree with the
     fastest, their spread (slowest / fastest window median), their starts and span in time,
     each window's speed probe; the energy window's rounds and the energy's worst-case
     quantisation error. ``latency_s_median`` is now the median of the agreeing windows'
     medians and its interval the hierarchical bootstrap's; ``stop_reason`` and ``remeasured``
     speak of windows. Files of versions 1-3 read as before (one window per row).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 4
META_TABLE = b"cnnbench.table"
META_VERSION = b"cnnbench.schema_version"
STATUSES = ("ok", "oom", "error", "skipped", "crashed")
# The columns that identify a case across runs and machines (compare joins on these).
CASE_KEY = (
    "model",
    "input_shape",
    "batch_size",
    "dtype",
    "memory_format",
    "mode",
    "compiled",
    "threads",
)


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    unit: str
    doc: str


def _c(name: str, type_: pa.DataType, unit: str, doc: str) -> Column:
    return Column(name, type_, unit, doc)


STR, INT, FLT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()

CASES: tuple[Column, ...] = (
    # identity and provenance
    _c("schema_version", INT, "", "version of this schema the row was written with"),
    _c("run_id", STR, "", "one id per pytest session or CLI run"),
    _c("run_complete", BOOL, "", "false while the run is going on or after it was interrupted"),
    _c("timestamp_utc", STR, "ISO 8601", "when the case finished"),
    _c("case_id", STR, "", "readable id of the case (also its pytest id)"),
    _c("test_name", STR, "", "the suite test that measured the case (file::function)"),
    # the case key
    _c("model", STR, "", "registered model name"),
    _c("input_shape", STR, "", "input without batch, CxHxW or CxL"),
    _c("batch_size", INT, "samples", "samples per forward pass"),
    _c("dtype", STR, "", "float32, float16, bfloat16"),
    _c("dtype_method", STR, "", "autocast or cast (how a reduced precision was applied)"),
    _c("memory_format", STR, "", "contiguous or channels_last"),
    _c("mode", STR, "", "inference (forward) or training (forward+backward+optimizer step)"),
    _c("compiled", BOOL, "", "run through torch.compile"),
    _c(
        "threads",
        INT,
        "threads",
        "intra-op threads the case asked for (null: torch's default; cpu_threads says what ran)",
    ),
    _c("device", STR, "", "torch device string the case ran on (cpu, cuda:0)"),
    # environment
    _c("device_name", STR, "", "GPU name, or the CPU model on CPU"),
    _c("host", STR, "", "host name"),
    _c("os", STR, "", "operating system and kernel"),
    _c("cpu_model", STR, "", "CPU model name"),
    _c("cpu_cores", INT, "cores", "logical CPU cores of the machine"),
    _c("cpu_threads", INT, "threads", "torch intra-op threads used for the case"),
    _c(
        "load_avg_1m",
        FLT,
        "",
        "1-minute load average as the case started: above cpu_cores, "
        "other work competed for the CPU and latencies are suspect",
    ),
    _c(
        "load_avg_1m_end",
        FLT,
        "",
        "1-minute load average when the timed rounds ended",
    ),
    _c(
        "cpu_pressure",
        FLT,
        "",
        "share of the timed rounds during which some task waited for a CPU "
        "(/proc/pressure/cpu 'some'); null where the kernel has no PSI",
    ),
    _c(
        "involuntary_switches_per_s",
        FLT,
        "1/s",
        "involuntary context switches of this process per second of timed rounds (getrusage)",
    ),
    _c(
        "speed_probe_ratio",
        FLT,
        "",
        "a fixed Python loop's time around the rounds / its typical time on this host (median "
        "of the host's recent probes; of the two probes the one farther from 1; above 1 slower; "
        "a VM's speed states show here and nowhere else); since version 4 the median over the "
        "windows that give the value",
    ),
    _c("cpu_affinity", STR, "", "the CPUs the process was allowed to run on (0-3,8)"),
    _c("worker", STR, "", "pytest-xdist worker id (gw0, ...) or 'main'"),
    _c("isolation", STR, "", "how the case ran: in the test process (none) or a child process"),
    _c("ram_bytes", INT, "bytes", "total system memory"),
    _c("gpu_uuid", STR, "", "GPU UUID (NVML/CUDA)"),
    _c(
        "gpu_index",
        INT,
        "",
        "NVML's index of the GPU (nvidia-smi's numbering; an xdist worker sees its GPU as cuda:0)",
    ),
    _c("gpu_pci_bus_id", STR, "", "GPU PCI bus id"),
    _c("gpu_memory_bytes", INT, "bytes", "total GPU memory"),
    _c("driver_version", STR, "", "NVIDIA driver version"),
    _c("cuda_version", STR, "", "CUDA version torch was built with"),
    _c("cudnn_version", STR, "", "cuDNN version"),
    _c("cudnn_benchmark", BOOL, "", "torch.backends.cudnn.benchmark during the case"),
    _c("cudnn_allow_tf32", BOOL, "", "cuDNN may run float32 convolutions in TF32 (CUDA only)"),
    _c("float32_matmul_precision", STR, "", "torch.get_float32_matmul_precision(): highest/high"),
    _c(
        "tf32_conv",
        BOOL,
        "",
        "a float32 case's convolutions ran in TF32 (cuDNN allowed it on a GPU with TF32 tensor "
        "cores, compute capability 8.0+); false where they ran in IEEE float32; null for other "
        "dtypes",
    ),
    _c("tf32_matmul", BOOL, "", "the same for a float32 case's matmuls (cuBLAS)"),
    _c("torch_version", STR, "", "torch.__version__"),
    _c("python_version", STR, "", "Python version"),
    _c("harness_version", STR, "", "version of this harness"),
    _c("git_commit", STR, "", "commit of the project the run came from"),
    _c("git_dirty", BOOL, "", "uncommitted changes in that checkout"),
    _c("command_line", STR, "", "the command that started the run"),
    # static profile
    _c("params", INT, "count", "parameters"),
    _c("trainable_params", INT, "count", "parameters with requires_grad"),
    _c(
        "param_bytes",
        INT,
        "bytes",
        "parameter bytes as held on the device (float32 under "
        "autocast); the profile's, at the case dtype, if the model was never built",
    ),
    _c("macs", INT, "MACs", "multiply-accumulates of one forward pass at the case's batch"),
    _c("flops", INT, "FLOPs", "2 * macs"),
    _c("activation_bytes", INT, "bytes", "sum of leaf-layer output bytes, one forward pass"),
    _c("connections", INT, "count", "LeNet-style connections: MACs plus bias additions"),
    _c("unhandled_ops", STR, "", "ops no MAC counter handles ('op x calls', comma-separated)"),
    _c(
        "profile_source",
        STR,
        "",
        "where the static columns come from (the meta device), or why they are null",
    ),
    # timing
    _c("timing_method", STR, "", "how rounds were timed (perf_counter + synchronize, ...)"),
    _c("percentile_method", STR, "", "numpy percentile method used for iqr, p90, p99"),
    _c("warmup_rounds", INT, "rounds", "uncounted rounds before measuring"),
    _c("rounds", INT, "rounds", "measured rounds (one step each)"),
    _c("latency_s_first", FLT, "s", "the very first call (cold), kept apart"),
    _c(
        "latency_s_median",
        FLT,
        "s",
        "the row's step latency: the median of the medians of the windows within 5% of the "
        "fastest window (harness.core.windows; files before version 4: the samples' median)",
    ),
    _c("latency_s_mean", FLT, "s", "mean step latency"),
    _c("latency_s_stddev", FLT, "s", "sample standard deviation"),
    _c("latency_s_min", FLT, "s", "fastest step"),
    _c("latency_s_max", FLT, "s", "slowest step"),
    _c("latency_s_iqr", FLT, "s", "p75 - p25"),
    _c("latency_s_p90", FLT, "s", "90th percentile"),
    _c("latency_s_p99", FLT, "s", "99th percentile"),
    _c("p99_reliable", BOOL, "", "false when p99 comes from fewer than 100 samples"),
    _c(
        "latency_s_median_ci_low",
        FLT,
        "s",
        "lower end of latency_s_median's 95% interval (a bootstrap that resamples windows, "
        "then samples within them; before version 4 the median's order-statistics interval); "
        "null below 6 samples",
    ),
    _c("latency_s_median_ci_high", FLT, "s", "upper end of that interval"),
    _c(
        "ci_target",
        FLT,
        "",
        "half-width of the median's interval the rounds aimed at, as a share of the median",
    ),
    _c(
        "stop_reason",
        STR,
        "",
        "why the windows stopped: planned (enough), target (extra windows reached ci_target), "
        "time_cap, structural (no number of windows would agree); before version 4: target, "
        "time_cap or min_rounds",
    ),
    _c("latency_s_samples", pa.list_(FLT), "s", "every measured step, window by window"),
    _c(
        "latency_s_window_ids",
        pa.list_(pa.int32()),
        "",
        "the window of each sample in latency_s_samples (0, 1, ... in the order measured)",
    ),
    _c("windows", INT, "windows", "timed windows of the case, interleaved with other cases"),
    _c(
        "windows_agreeing",
        INT,
        "windows",
        "windows whose median is within 5% of the fastest window's (they give the value)",
    ),
    _c("window_spread", FLT, "", "slowest window median / fastest window median"),
    _c(
        "window_starts_s",
        pa.list_(FLT),
        "s",
        "each window's start since the first window started",
    ),
    _c("windows_span_s", FLT, "s", "from the first window's start to the last one's end"),
    _c(
        "window_speed_probe",
        pa.list_(FLT),
        "",
        "each window's speed-probe ratio (see speed_probe_ratio): the machine's state per window",
    ),
    _c("throughput_per_s", FLT, "samples/s", "batch_size / latency_s_median"),
    # validity: is the measurement trustworthy (harness.measure.noise)
    _c("validity", STR, "", "valid or noisy; null for a case that did not run"),
    _c("validity_reason", STR, "", "the noise signal(s) that crossed a threshold, with values"),
    _c(
        "remeasured",
        INT,
        "windows",
        "extra windows measured after the planned ones (the row was short of valid or of "
        "its interval target; before version 4: times measured again)",
    ),
    # measured layer times (harness.measure.layer_times)
    _c(
        "layer_time_coverage",
        FLT,
        "",
        "sum of the measured per-layer times / latency_s_median",
    ),
    _c("layer_time_steps", INT, "steps", "profiled steps the layer times are the median of"),
    _c("layer_time_source", STR, "", "how layer times were measured, or why they were not"),
    # the run's measured roofs (a short GEMM and memory-bandwidth micro-benchmark)
    _c("peak_flops_measured", FLT, "FLOP/s", "measured dense matmul rate at the case's dtype"),
    _c("peak_bytes_per_s_measured", FLT, "bytes/s", "measured memory copy bandwidth"),
    _c(
        "peak_flops_tf32",
        BOOL,
        "",
        "the measured float32 roof ran in TF32, as the case's convolutions did (null: not float32)",
    ),
    # torch.compile
    _c("dynamo_graphs", INT, "count", "unique graphs Dynamo compiled for the case"),
    _c("dynamo_graph_breaks", INT, "count", "graph breaks (where eager Python ran instead)"),
    # memory
    _c("peak_memory_bytes", INT, "bytes", "peak memory during one measured step"),
    _c("memory_baseline_bytes", INT, "bytes", "weights and input resident before the step"),
    _c("memory_source", STR, "", "cuda_allocator, cpu_tensor_tracker, or why unmeasured"),
    _c(
        "cublas_workspace_bytes",
        INT,
        "bytes",
        "cuBLAS workspace memory released before the case (left by earlier cases)",
    ),
    # power (filled by harness.measure.power.meters; docs/POWER.md says what each reading is)
    _c("power_w_mean", FLT, "W", "mean power over the timed window (energy / window if counted)"),
    _c("power_w_max", FLT, "W", "highest power sample"),
    _c("power_w_idle", FLT, "W", "mean power of an idle baseline taken before the case"),
    _c("energy_j_total", FLT, "J", "energy of the whole window, from the energy counter"),
    _c("energy_j_per_sample", FLT, "J", "energy of the window / samples processed"),
    _c("samples_per_j", FLT, "samples/J", "samples processed / energy of the window"),
    _c("energy_window_s", FLT, "s", "length of the energy window (its own, after the timing)"),
    _c("energy_rounds", INT, "rounds", "steps run in the energy window"),
    _c(
        "energy_quantisation_rel",
        FLT,
        "",
        "worst-case relative error of energy_j_total from the counter's step (one update "
        "period's energy at the window's mean power / the window's energy)",
    ),
    _c(
        "energy_scope",
        STR,
        "",
        "what the energy reading covers: gpu, module (GPU + CPU + memory on GH200), package...",
    ),
    _c("power_samples", INT, "count", "distinct power readings in the window's trace"),
    _c("power_sample_hz", FLT, "Hz", "rate the power sampler was asked to poll at"),
    _c("power_polls", INT, "count", "power reads made (polls / window: the rate reached)"),
    _c("power_source", STR, "", "where power came from, or why it was not measured"),
    _c("power_reason", STR, "", "why a power column is null (window too short, counter still)"),
    _c("sm_clock_mhz_start", INT, "MHz", "GPU SM clock when the window started"),
    _c("sm_clock_mhz_end", INT, "MHz", "GPU SM clock when the window ended"),
    _c("mem_clock_mhz_start", INT, "MHz", "GPU memory clock when the window started"),
    _c("mem_clock_mhz_end", INT, "MHz", "GPU memory clock when the window ended"),
    _c("temperature_c_start", INT, "C", "GPU temperature when the window started"),
    _c("temperature_c_end", INT, "C", "GPU temperature when the window ended"),
    _c("power_limit_w", FLT, "W", "enforced GPU power limit"),
    _c("throttle_reasons_start", STR, "", "clock-event (throttle) reasons at start, comma-sep."),
    _c("throttle_reasons_end", STR, "", "clock-event (throttle) reasons at end, comma-separated"),
    # the GPU around the case (harness.measure.gpu_watch): NVML, over the timed window
    _c(
        "gpu_foreign_processes",
        INT,
        "count",
        "other processes holding a context on the GPU before or after the rounds (the most seen)",
    ),
    _c("gpu_foreign_memory_bytes", INT, "bytes", "the GPU memory those processes held"),
    _c(
        "gpu_power_capped_share",
        FLT,
        "",
        "share of the timed window the clocks were held at the power cap (NVML counter)",
    ),
    _c(
        "gpu_thermal_share",
        FLT,
        "",
        "share of the timed window in thermal slowdown, software or hardware (NVML counters)",
    ),
    _c("gpu_power_brake_share", FLT, "", "share of the timed window in hardware power brake"),
    _c("sm_clock_mhz_min", INT, "MHz", "lowest SM clock of the driver's samples in the window"),
    _c("sm_clock_mhz_median", INT, "MHz", "median SM clock of those samples"),
    _c(
        "sm_clock_low_share",
        FLT,
        "",
        "share of those samples below 75% of the GPU's maximum SM clock (NVBench's rule)",
    ),
    _c("gpu_watch_source", STR, "", "what NVML gave for these columns, or why not"),
    # outcome
    _c("status", STR, "", "ok, oom, error, skipped or crashed (the case killed its process)"),
    _c("error", STR, "", "the reason when status is not ok"),
)

LAYERS: tuple[Column, ...] = (
    _c("schema_version", INT, "", "version of this schema"),
    _c("run_id", STR, "", "run the profile belongs to"),
    _c("case_id", STR, "", "case the profile was taken for"),
    _c("model", STR, "", "registered model name"),
    _c("input_shape", STR, "", "input without batch"),
    _c("batch_size", INT, "samples", "batch of the profile"),
    _c("dtype", STR, "", "dtype of the profile"),
    _c("layer_index", INT, "", "execution order of the leaf layer"),
    _c("layer_name", STR, "", "qualified module name"),
    _c("layer_type", STR, "", "module class name"),
    _c("output_shape", STR, "", "output shape with batch, NxCxHxW"),
    _c("params", INT, "count", "parameters of this layer"),
    _c("macs", INT, "MACs", "multiply-accumulates of this layer"),
    _c("connections", INT, "count", "LeNet-style connections: MACs plus bias additions"),
    _c("activation_bytes", INT, "bytes", "bytes of this layer's output"),
    _c(
        "layer_kind",
        STR,
        "",
        "leaf (a leaf module) or parent_ops (ops a parent module's forward ran itself: "
        "the residual add, torch.cat, flatten)",
    ),
    _c("time_s", FLT, "s", "measured time of the layer in one step (median over the steps)"),
    _c("time_s_backward", FLT, "s", "measured backward time of the layer (training cases)"),
    _c("time_share", FLT, "", "time_s / the sum of time_s over the case's layers"),
    _c("achieved_flops_per_s", FLT, "FLOP/s", "2 * macs / time_s"),
    _c("bytes_moved", INT, "bytes", "weights + inputs + outputs of the layer at the case dtype"),
    _c("arithmetic_intensity", FLT, "FLOP/byte", "2 * macs / bytes_moved"),
)

POWER: tuple[Column, ...] = (
    _c("schema_version", INT, "", "version of this schema"),
    _c("run_id", STR, "", "run the trace belongs to"),
    _c("case_id", STR, "", "case whose timed window was traced"),
    _c("t_s", FLT, "s", "time of the reading since the window started"),
    _c("power_w", FLT, "W", "power reading (instant, averaged or from a counter: power_source)"),
)

TABLES: dict[str, tuple[Column, ...]] = {"cases": CASES, "layers": LAYERS, "power": POWER}
FILE_SUFFIX: dict[str, str] = {
    "cases": ".parquet",
    "layers": ".layers.parquet",
    "power": ".power.parquet",
}


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """The pyarrow schema of ``table``, with the cnnbench metadata attached."""
    cols = TABLES[table]
    return pa.schema(
        [pa.field(c.name, c.type) for c in cols],
        metadata={META_TABLE: table.encode(), META_VERSION: str(SCHEMA_VERSION).encode()},
    )


def column_names(table: str) -> list[str]:
    return [c.name for c in TABLES[table]]
