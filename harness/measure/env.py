"""What machine and software a row was measured on: one flat dict keyed by result-schema columns.

Every fact is read from the system, torch, NVML or git; a fact that cannot be read is None, never
guessed. GPU facts come from torch for the device index the case runs on, and NVML facts (driver,
UUID, NVML's index, PCI bus id) are matched to it by UUID or PCI bus id
(harness.measure.power.nvml_match), never by index: NVML and CUDA may number GPUs differently
(CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER; an xdist worker sees its GPU as cuda:0).

This module knows nothing of pytest; ``machine_info`` gives what the plugin merges into
pytest-benchmark's ``machine_info``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import torch

from harness.core.errors import InvalidInputError
from harness.measure.power.nvml_match import torch_cuda_identity
from harness.measure.timing import cudnn_benchmark_state

GIT_TIMEOUT_S = 5.0

ENV_COLUMNS: tuple[str, ...] = (
    "device_name",
    "host",
    "os",
    "cpu_model",
    "cpu_cores",
    "cpu_threads",
    "ram_bytes",
    "gpu_uuid",
    "gpu_index",
    "gpu_pci_bus_id",
    "gpu_memory_bytes",
    "driver_version",
    "cuda_version",
    "cudnn_version",
    "cudnn_benchmark",
    "torch_version",
    "python_version",
    "harness_version",
    "git_commit",
    "git_dirty",
    "command_line",
)

# Facts of one run rather than of the machine: kept out of pytest-benchmark's machine_info, which
# --benchmark-compare checks for equality between runs (pytest-benchmark has commit_info for git).
RUN_FACTS = frozenset({"git_commit", "git_dirty", "command_line", "cpu_threads", "cudnn_benchmark"})


# --- CPU and host ----------------------------------------------------------------------------


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name: /proc/cpuinfo's ``model name`` on Linux, else platform.processor()."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    m = re.search(r"^model name\s*:\s*(.+?)\s*$", text, flags=re.MULTILINE)
    if m:
        return m.group(1)
    return platform.processor() or None


def ram_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Total physical memory in bytes (os.sysconf, else /proc/meminfo's MemTotal in KiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if total > 0:
            return int(total)
    except (AttributeError, ValueError, OSError):
        pass
    try:
        m = re.search(r"^MemTotal:\s*(\d+)\s*kB", meminfo.read_text(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


# --- git -------------------------------------------------------------------------------------


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(cwd: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty) of the git checkout holding ``cwd`` (default: the current directory);
    (None, None) outside a repository or without git. Untracked, not ignored files count as
    dirty: they may be suites or models that ran."""
    where = Path(cwd) if cwd is not None else Path.cwd()
    head = _git(["rev-parse", "--verify", "HEAD"], where)
    if head is None:
        return None, None
    status = _git(["status", "--porcelain"], where)
    return head.strip(), (None if status is None else bool(status.strip()))


# --- GPU -------------------------------------------------------------------------------------


def _nvml_facts(index: int) -> dict[str, object]:
    """What NVML knows of CUDA device ``index``, matched by UUID or PCI bus id
    (harness.measure.power.nvml_match, never by index): its UUID as NVML writes it, NVML's
    index (nvidia-smi's numbering), PCI bus id and the driver version. A fact NVML cannot give
    (no driver, no library, a MIG instance's bus) is absent; the caller falls back to torch's."""
    import pynvml

    from harness.measure.power import nvml, nvml_match

    try:
        nvml.init_nvml()
    except nvml.NvmlUnavailable:
        return {}
    out: dict[str, object] = {}
    with contextlib.suppress(pynvml.NVMLError):
        out["driver_version"] = _text(pynvml.nvmlSystemGetDriverVersion())
    identity = torch_cuda_identity(index)
    try:
        found = nvml_match.match_device(index, identity)
    except nvml_match.MigInstance as mig:
        out["gpu_uuid"] = mig.uuid
        if mig.gpu is not None:
            out["gpu_index"] = mig.gpu.index
    except nvml.NvmlUnavailable:
        pass  # no certain match: torch's facts stand
    else:
        out.update(gpu_uuid=found.uuid, gpu_index=found.index, gpu_pci_bus_id=found.pci_bus_id)
    return out


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _proc_driver_version(path: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA kernel module version from /proc (Linux), when NVML cannot say."""
    try:
        m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", path.read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def cuda_facts(device: torch.device) -> dict[str, object]:
    """Name, memory, UUID, PCI bus id and driver of the CUDA ``device`` (NVML matched by UUID)."""
    if not torch.cuda.is_available():
        raise InvalidInputError(
            f"device {str(device)!r} asked for, but CUDA is not available here: "
            "run on device 'cpu', or install a CUDA build of torch and the NVIDIA driver"
        )
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise InvalidInputError(
            f"device {str(device)!r} asked for, but only {torch.cuda.device_count()} CUDA "
            "device(s) are visible: check the index or CUDA_VISIBLE_DEVICES"
        )
    props = torch.cuda.get_device_properties(index)
    identity = torch_cuda_identity(index)
    nvml_facts = _nvml_facts(index)
    # Without NVML to say otherwise, torch's UUID is written as a GPU's (MIG needs NVML anyway).
    uuid = None
    if identity is not None and identity.uuid:
        uuid = (
            identity.uuid if identity.uuid.startswith(("GPU-", "MIG-")) else f"GPU-{identity.uuid}"
        )
    return {
        "device_name": props.name,
        "gpu_uuid": nvml_facts.get("gpu_uuid", uuid),
        "gpu_index": nvml_facts.get("gpu_index"),
        "gpu_pci_bus_id": nvml_facts.get(
            "gpu_pci_bus_id", identity.pci_bus_id if identity is not None else None
        ),
        "gpu_memory_bytes": int(props.total_memory),
        "driver_version": nvml_facts.get("driver_version") or _proc_driver_version(),
    }


# --- the whole record ------------------------------------------------------------------------


def _cudnn_version() -> str | None:
    try:
        version = torch.backends.cudnn.version()
    except RuntimeError:
        return None
    return None if version is None else str(version)


def collect_environment(
    device: torch.device | str,
    threads: int | None = None,
    cwd: str | Path | None = None,
) -> dict[str, object]:
    """The environment columns (``ENV_COLUMNS``, exactly) for a case on ``device``.

    ``threads``: the intra-op thread count in force for the case (default: torch's current one).
    ``cwd``: where to look for the project's git checkout (default: the current directory).
    GPU columns are None on CPU; ``device_name`` is the GPU name on CUDA, the CPU model on CPU.
    Takes a few milliseconds (two git calls): collect once per run and reuse what does not change.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidInputError(f"{device!r} is not a torch device: use 'cpu' or 'cuda:N'") from e
    from harness import __version__ as harness_version

    model = cpu_model()
    commit, dirty = git_state(cwd)
    env: dict[str, object] = {
        "device_name": model,
        "host": socket.gethostname() or None,
        "os": platform.platform() or None,
        "cpu_model": model,
        "cpu_cores": os.cpu_count(),
        "cpu_threads": int(threads) if threads is not None else torch.get_num_threads(),
        "ram_bytes": ram_bytes(),
        "gpu_uuid": None,
        "gpu_index": None,
        "gpu_pci_bus_id": None,
        "gpu_memory_bytes": None,
        "driver_version": None,
        "cuda_version": torch.version.cuda,
        "cudnn_version": _cudnn_version(),
        "cudnn_benchmark": None,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "harness_version": harness_version,
        "git_commit": commit,
        "git_dirty": dirty,
        "command_line": shlex.join(sys.argv) if sys.argv else None,
    }
    if dev.type == "cuda":
        env.update(cuda_facts(dev))
        env["cudnn_benchmark"] = cudnn_benchmark_state()
    elif dev.type != "cpu":
        env["device_name"] = None  # no reader for this device type's name: unknown, not the CPU
    return env


def machine_info(env: dict[str, object]) -> dict[str, object]:
    """The machine facts of ``env``, under the same names, to merge into pytest-benchmark's
    ``machine_info`` (values str, int, bool or None; the only key pytest-benchmark also has,
    ``python_version``, holds the same value).

    Per-run facts (``RUN_FACTS``: git commit and dirtiness, command line, threads,
    cudnn.benchmark) are left out: ``--benchmark-compare`` warns whenever machine_info differs
    from the saved run's, and pytest-benchmark keeps git facts in its own ``commit_info``.
    """
    return {k: env.get(k) for k in ENV_COLUMNS if k not in RUN_FACTS}
