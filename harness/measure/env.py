"""What machine and software a row was measured on: one flat dict keyed by result-schema columns.

Every fact is read from the system, torch, NVML or git; a fact that cannot be read is None, never
guessed. GPU facts come from torch for the device index the case runs on, and NVML facts (driver,
PCI bus id) are matched to it by UUID, never by index: NVML and CUDA may number GPUs differently
(CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER).

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
from typing import Any

import torch

from harness.core.errors import InvalidInputError
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


def _nvml_facts(uuids: list[str]) -> tuple[str | None, str | None, str | None]:
    """(driver version, PCI bus id, UUID) from NVML for the first of ``uuids`` it knows (a GPU
    or a MIG instance); None where NVML is missing or fails (no driver, no library, no UUID it
    knows, a reading a MIG handle does not support)."""
    try:
        import pynvml
    except ImportError:
        return None, None, None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None, None, None
    driver = bus_id = matched = None
    try:
        with contextlib.suppress(pynvml.NVMLError):
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
        for uuid in uuids:
            try:
                handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
            except pynvml.NVMLError:
                continue
            matched = uuid
            with contextlib.suppress(pynvml.NVMLError):
                bus_id = _text(pynvml.nvmlDeviceGetPciInfo(handle).busId)
            break
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    return driver, bus_id, matched


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _proc_driver_version(path: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA kernel module version from /proc (Linux), when NVML cannot say."""
    try:
        m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", path.read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def _uuid_candidates(props: Any) -> list[str]:
    """NVML's names for torch's device UUID, most likely first. torch prints the bare 8-4-4-4-12
    hex; NVML writes ``GPU-`` before a GPU's and ``MIG-`` before a MIG instance's (CUDA reports
    the instance's UUID in MIG mode), and only NVML can tell which one this is."""
    raw = getattr(props, "uuid", None)
    if raw is None:
        return []
    text = str(raw)
    return [text] if text.startswith(("GPU-", "MIG-")) else [f"GPU-{text}", f"MIG-{text}"]


def _torch_pci_bus_id(props: Any) -> str | None:
    """NVML-style bus id (``00000000:65:00.0``) from torch's device properties, if it has them."""
    parts = [getattr(props, f"pci_{k}_id", None) for k in ("domain", "bus", "device")]
    if any(p is None for p in parts):
        return None
    domain, bus, dev = (int(p) for p in parts)
    return f"{domain:08X}:{bus:02X}:{dev:02X}.0"


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
    candidates = _uuid_candidates(props)
    driver, bus_id, matched = _nvml_facts(candidates) if candidates else (None, None, None)
    # Without NVML to say otherwise, torch's UUID is written as a GPU's (MIG needs NVML anyway).
    uuid = matched or (candidates[0] if candidates else None)
    return {
        "device_name": props.name,
        "gpu_uuid": uuid,
        "gpu_pci_bus_id": bus_id or _torch_pci_bus_id(props),
        "gpu_memory_bytes": int(props.total_memory),
        "driver_version": driver or _proc_driver_version(),
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
