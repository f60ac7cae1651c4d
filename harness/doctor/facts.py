"""The machine as the harness sees it: software, CUDA, GPUs (NVML), power readings, RAPL, CPU.

Every fact is a value or, where it cannot be read, None beside a ``*_reason`` saying why; nothing
here raises because the machine lacks something. ``machine_facts(device)`` gathers them all.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.measure.devices import cuda_unavailable_reason
from harness.measure.env import cpu_model, ram_bytes

CPU_SYSFS = Path("/sys/devices/system/cpu")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def software() -> dict[str, Any]:
    """Python, torch and what torch was built with, the harness, nvidia-ml-py."""
    from harness import __version__

    cudnn = None
    with contextlib.suppress(RuntimeError):
        cudnn = torch.backends.cudnn.version()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": None if cudnn is None else str(cudnn),
        "harness": __version__,
        "nvidia_ml_py": _version("nvidia-ml-py"),
    }


def cuda_facts() -> dict[str, Any]:
    reason = cuda_unavailable_reason()
    if reason is not None:
        return {"available": False, "reason": reason}
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        devices.append(
            {
                "index": i,
                "name": props.name,
                "uuid": str(getattr(props, "uuid", "")) or None,
                "capability": f"{props.major}.{props.minor}",
                "memory_bytes": int(props.total_memory),
            }
        )
    return {
        "available": True,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "devices": devices,
    }


def _probe(read: Callable[[], Any]) -> tuple[Any, str | None]:
    """(value, None) or (None, the reason NVML gives for not reading it)."""
    from harness.measure.power.nvml import NvmlUnavailable

    try:
        return read(), None
    except NvmlUnavailable as err:
        return None, err.reason


def _mig_mode(handle: object) -> str:
    import pynvml

    try:
        current, pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError as err:
        if getattr(err, "value", None) == pynvml.NVML_ERROR_NOT_SUPPORTED:
            return "not supported"
        return f"unknown ({err})"
    on = current == pynvml.NVML_DEVICE_MIG_ENABLE
    state = "enabled" if on else "disabled"
    return state if current == pending else f"{state} (pending change)"


def _memory_bytes(handle: object) -> int | None:
    import pynvml

    with contextlib.suppress(pynvml.NVMLError):
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
    return None


def gpu_power_readings(device: Any) -> dict[str, Any]:
    """What one NVML device answers for each reading the power monitor uses (value, or why not)."""
    from harness.measure.power.nvml import NvmlDevice

    assert isinstance(device, NvmlDevice)
    out: dict[str, Any] = {}
    instant, out["instant_power_reason"] = _probe(device.instant_power_mw)
    out["instant_power_w"] = None if instant is None else instant[0] / 1000.0
    usage, out["power_usage_reason"] = _probe(device.power_usage_mw)
    out["power_usage_w"] = None if usage is None else usage / 1000.0
    out["gpu_energy_field_mj"], out["gpu_energy_field_reason"] = _probe(device.gpu_energy_mj)
    out["total_energy_mj"], out["total_energy_reason"] = _probe(device.total_energy_mj)
    c2c, reason = _probe(device.is_c2c_module)
    out["c2c_module"] = c2c
    if reason:
        out["c2c_module_reason"] = reason
    state, reason = _probe(device.state)
    if state is None:
        out["state_reason"] = reason
    else:
        out.update(
            sm_clock_mhz=state["sm_clock_mhz"],
            mem_clock_mhz=state["mem_clock_mhz"],
            temperature_c=state["temperature_c"],
            power_limit_w=None
            if state["power_limit_mw"] is None
            else state["power_limit_mw"] / 1000.0,
        )
    return out


def nvml_facts(cuda_index: int | None) -> dict[str, Any]:
    """Driver, every GPU NVML sees, and for the CUDA device ``cuda_index`` (when given and
    CUDA works) its NVML match and power readings."""
    import pynvml

    from harness.measure.power import nvml, nvml_match

    try:
        nvml.init_nvml()
        with nvml.nvml_errors("the driver version"):
            driver = pynvml.nvmlSystemGetDriverVersion()
        devices = nvml_match.list_devices()
    except nvml.NvmlUnavailable as err:
        return {"available": False, "reason": err.reason}
    out: dict[str, Any] = {
        "available": True,
        "library": nvml.library_path() or "the driver's libnvidia-ml.so.1",
        "driver": driver.decode() if isinstance(driver, bytes) else str(driver),
        "gpus": [
            {
                "nvml_index": d.index,
                "name": d.name,
                "uuid": d.uuid,
                "pci_bus_id": d.pci_bus_id,
                "mig_mode": _mig_mode(d.handle),
                "memory_bytes": _memory_bytes(d.handle),
            }
            for d in devices
        ],
    }
    if cuda_index is not None:
        try:
            found = nvml_match.match_device(cuda_index, nvml_match.torch_cuda_identity(cuda_index))
        except nvml.NvmlUnavailable as err:
            out["device_reason"] = err.reason
        else:
            out["device"] = {
                "cuda": f"cuda:{cuda_index}",
                "nvml_index": found.index,
                "matched_by": found.matched_by,
                **gpu_power_readings(found),
            }
    return out


def power_monitor_facts(device: torch.device) -> dict[str, Any]:
    """The monitor the harness would measure ``device`` with: its source, what its energy
    covers, the counter's measured step and the window it asks for."""
    from harness.measure.power.meters import make_power_monitor

    monitor = make_power_monitor(device)
    try:
        facts: dict[str, Any] = {"source": monitor.source}
        for name in ("energy_scope", "counter_step_s", "counter_step_source", "sampler"):
            if hasattr(monitor, name):
                facts[name] = getattr(monitor, name)
        facts["min_window_s"] = monitor.min_window_s
        note = getattr(monitor, "sampler_note", None)
        if note:
            facts["sampler_note"] = note
        return facts
    finally:
        close = getattr(monitor, "close", None)
        if close is not None:
            close()


def rapl_facts() -> dict[str, Any]:
    from harness.measure.power import rapl

    root = Path(os.environ.get(rapl.ROOT_ENV) or rapl.POWERCAP_ROOT)
    try:
        zones = rapl.find_package_zones(root)
    except rapl.RaplUnavailable as err:
        return {"available": False, "reason": err.reason}
    return {"available": True, "zones": [z.name for z in zones]}


def governors(root: Path = CPU_SYSFS) -> tuple[dict[str, int] | None, str | None]:
    """How many CPUs run each cpufreq governor ({"performance": 64}), or why unknown."""
    files = sorted(root.glob("cpu[0-9]*/cpufreq/scaling_governor"))
    if not files:
        return None, f"no cpufreq in {root} (a virtual machine or a kernel without cpufreq)"
    counts: Counter[str] = Counter()
    for f in files:
        try:
            counts[f.read_text().strip()] += 1
        except OSError as err:
            return None, f"{f} unreadable: {err}"
    return dict(counts), None


def smt(root: Path = CPU_SYSFS) -> tuple[str | None, str | None]:
    """Simultaneous multithreading: ``on``/``off`` (/sys/.../smt/active) and the control
    setting, or why unknown."""
    try:
        active = (root / "smt" / "active").read_text().strip()
    except OSError as err:
        return None, f"{root / 'smt' / 'active'} unreadable: {err.strerror or err}"
    state = {"1": "on", "0": "off"}.get(active, active)
    with contextlib.suppress(OSError):
        control = (root / "smt" / "control").read_text().strip()
        if control not in ("on", "off") or control != state:
            state = f"{state} (control: {control})"
    return state, None


def cpu_facts() -> dict[str, Any]:
    govs, gov_reason = governors()
    smt_state, smt_reason = smt()
    out: dict[str, Any] = {
        "model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "ram_bytes": ram_bytes(),
        "torch_threads": torch.get_num_threads(),
        "governors": govs,
        "smt": smt_state,
    }
    if gov_reason:
        out["governors_reason"] = gov_reason
    if smt_reason:
        out["smt_reason"] = smt_reason
    with contextlib.suppress(AttributeError, OSError):
        out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


def machine_facts(device: torch.device) -> dict[str, Any]:
    """Everything above, for a self-test on ``device``."""
    cuda_index = None
    if device.type == "cuda" and cuda_unavailable_reason() is None:
        cuda_index = device.index if device.index is not None else torch.cuda.current_device()
    facts: dict[str, Any] = {
        "os": platform.platform(),
        "software": software(),
        "cpu": cpu_facts(),
        "cuda": cuda_facts(),
        "nvml": nvml_facts(cuda_index),
        "rapl": rapl_facts(),
    }
    if device.type == "cpu" or cuda_index is not None:
        facts["power_monitor"] = power_monitor_facts(device)
    return facts
