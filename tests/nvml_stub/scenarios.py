"""What the power tests run in a fresh worker process with the stub NVML library loaded.

The worker is a spawned process: loading the stub as libnvidia-ml.so.1 is process-wide (pynvml
keeps the library, the dynamic loader keeps the SONAME), so the pytest process never loads it
and other tests still see this machine as it is. Functions here take and return plain data.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pynvml

from harness.measure.power import nvml, nvml_match
from harness.measure.power.meters import NvmlPowerMonitor, make_power_monitor


@contextmanager
def _environment(config: str, env: Mapping[str, str | None], origin_ns: int) -> Iterator[None]:
    # one timeline for this process and the power sampler's child process
    origin = str(origin_ns)
    changes = {"NVML_STUB_CONFIG": config, "NVML_STUB_ORIGIN_NS": origin, **env}
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        nvml.shutdown_nvml()  # the next init starts NVML afresh: the stub re-reads its config
        yield
    finally:
        nvml.shutdown_nvml()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stub(lib: str) -> ctypes.CDLL:
    stub = ctypes.CDLL(lib)
    stub.nvml_stub_time_us.restype = ctypes.c_longlong
    stub.nvml_stub_set_time_us.argtypes = [ctypes.c_longlong]
    return stub


def run_monitor(
    lib: str,
    config: str,
    env: Mapping[str, str | None] | None = None,
    *,
    device: str = "cuda:0",
    identity: tuple[str | None, str | None] | None = None,
    steps_us: list[int] | None = None,
    real_window_s: float | str | None = None,
    idle_s: float | None = None,
    sample_hz: float = 100.0,
    min_window_s: float = 1.0,
    counter_step_s: float | None = 0.02,
    sampler: str | None = None,
    timeline_delay_s: float = 0.0,
    samples: int = 320,
) -> dict[str, Any]:
    """Build a monitor for ``device`` on the stub and measure one window.

    ``steps_us``: manual stub clock; start at the first time, sample at the middle ones, stop at
    the last. ``real_window_s``: real clock; sleep that long between start and stop (the
    string ``"min_window"``: the monitor's ``min_window_s``).
    ``counter_step_s``: the energy counter's update period as given to the monitor (0.02 s keeps
    the minimum window at ``min_window_s``); None has the monitor measure it (real clock only).
    ``sampler``: where the monitor polls (default: ``thread`` with the manual clock, which a
    child process cannot share, else the monitor's default, ``process``).
    ``timeline_delay_s``: the real clock's time 0 (of the power step functions) lies that far
    after the call; a real window starts once it has passed, so that building the monitor
    (spawning the sampler's child) does not eat into the timeline.
    """
    stub = _stub(lib)
    clock = (lambda: stub.nvml_stub_time_us() / 1e6) if steps_us else time.perf_counter
    ident = None if identity is None else nvml_match.CudaIdentity(*identity)
    origin_ns = time.monotonic_ns() + int(timeline_delay_s * 1e9)
    with _environment(config, env or {}, origin_ns):
        monitor = make_power_monitor(
            device,
            sample_hz=sample_hz,
            min_window_s=min_window_s,
            nvml_library=lib,
            cuda_identity=lambda _index: ident,
            clock=clock,
            counter_step_s=counter_step_s,
            sampler=sampler or ("thread" if steps_us else "process"),
        )
        try:
            if real_window_s is not None:  # wait for the timeline's time 0
                time.sleep(max(0.0, (origin_ns - time.monotonic_ns()) / 1e9))
            return _measure(monitor, stub, steps_us, real_window_s, idle_s, samples)
        finally:
            if hasattr(monitor, "close"):
                monitor.close()  # the sampler's child process, if any


def _measure(
    monitor: Any,
    stub: ctypes.CDLL,
    steps_us: list[int] | None,
    real_window_s: float | str | None,
    idle_s: float | None,
    samples: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {"monitor": type(monitor).__name__, "source": monitor.source}
    out["min_window_s"] = monitor.min_window_s
    out["counter_step_s"] = getattr(monitor, "counter_step_s", None)
    out["counter_step_source"] = getattr(monitor, "counter_step_source", None)
    out["sampler"] = getattr(monitor, "sampler", None)
    out["sampler_note"] = getattr(monitor, "sampler_note", None)
    if isinstance(monitor, NvmlPowerMonitor):
        dev = monitor.device
        out["device"] = dataclasses.asdict(dataclasses.replace(dev, handle=None))
        out["driver_version"] = pynvml.nvmlSystemGetDriverVersion()
        out["same_library"] = pynvml.nvmlLib._handle == stub._handle
    if idle_s is not None:
        out["idle_w"] = monitor.measure_idle(idle_s)
    if steps_us:
        stub.nvml_stub_set_time_us(steps_us[0])
        monitor.start()
        for t_us in steps_us[1:-1]:
            stub.nvml_stub_set_time_us(t_us)
            monitor.sample()
        stub.nvml_stub_set_time_us(steps_us[-1])
        reading = monitor.stop()
    elif real_window_s is not None:
        out["stub_time_at_start_s"] = stub.nvml_stub_time_us() / 1e6
        seconds = monitor.min_window_s if real_window_s == "min_window" else real_window_s
        with monitor:
            time.sleep(float(seconds))
        reading = monitor.reading
    else:
        return out
    out["reading"] = reading
    out["columns"] = reading.to_columns(samples)
    out["dropped"] = getattr(monitor, "dropped", None)
    out["sampler_cpu_s"] = getattr(monitor, "sampler_cpu_s", None)
    return out


def doctor_facts(
    lib: str, config: str, env: Mapping[str, str | None] | None = None
) -> dict[str, Any]:
    """What ``cnnbench doctor`` says about the stub's GPUs: NVML facts (every GPU, and the
    readings of the one the CUDA device maps to) and the power monitor it would use."""
    import torch

    from harness.doctor import facts

    env = {"CNNBENCH_NVML_LIBRARY": lib, **(env or {})}
    with _environment(config, env, time.monotonic_ns()):
        nvml.init_nvml(lib)
        out = {"nvml": facts.nvml_facts(None)}
        device = nvml_match.match_device(0, None)
        out["readings"] = facts.gpu_power_readings(device)
        # torch has no CUDA here: the device is matched as the only GPU NVML sees
        out["power_monitor"] = facts.power_monitor_facts(torch.device("cuda:0"))
        return out


def gpu_plan(
    lib: str,
    config: str,
    env: Mapping[str, str | None],
    cpus: list[int],
    workers: int,
) -> dict[str, Any]:
    """The GPUs a controller would place its ``workers`` on (harness.measure.gpus), with
    ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` from ``env``."""
    from harness.measure import gpus

    with _environment(config, env, time.monotonic_ns()):
        nvml.init_nvml(lib)
        outer = {k: v for k, v in env.items() if v is not None}
        plan = gpus.plan_gpus(outer, cpus)
        return {
            "plan": [dataclasses.asdict(p) for p in plan.placements],
            "note": plan.note,
            "assigned": [dataclasses.asdict(p) for p in gpus.assign(plan, workers)],
        }


def explain(lib: str, config: str, torch_cuda: str | None, visible: str | None) -> str:
    """Why CUDA would not work, as harness.measure.gpus explains it from the stub's driver."""
    from harness.measure import gpus

    with _environment(config, {}, time.monotonic_ns()):
        with contextlib.suppress(nvml.NvmlUnavailable):  # driver_state reports it
            nvml.init_nvml(lib)
        return gpus.explain_no_cuda(torch_cuda, None, gpus.driver_state(), visible)


def env_facts(
    lib: str,
    config: str,
    env: Mapping[str, str | None],
    props: Mapping[str, Any],
    device: str = "cuda:1",
) -> dict[str, Any]:
    """``collect_environment(device)``'s GPU columns with torch's CUDA replaced by two devices
    of ``props`` (current device 1) and NVML from the stub (or none, with
    ``CNNBENCH_NVML_LIBRARY`` unset and the library not loadable)."""
    from types import SimpleNamespace

    import torch

    from harness.measure import env as env_mod

    fake = {
        "is_available": lambda: True,
        "device_count": lambda: 2,
        "current_device": lambda: 1,
        "get_device_properties": lambda _i: SimpleNamespace(**props),
    }
    saved = {k: getattr(torch.cuda, k) for k in fake}
    proc = env_mod._proc_driver_version
    try:
        for k, v in fake.items():
            setattr(torch.cuda, k, v)
        env_mod._proc_driver_version = lambda *a: None
        with _environment(config, {"CNNBENCH_NVML_LIBRARY": lib, **env}, time.monotonic_ns()):
            out = env_mod.collect_environment(device)
    finally:
        for k, v in saved.items():
            setattr(torch.cuda, k, v)
        env_mod._proc_driver_version = proc
    keys = ("device_name", "gpu_uuid", "gpu_index", "gpu_pci_bus_id", "gpu_memory_bytes")
    return {k: out[k] for k in (*keys, "driver_version")}


def gpu_watch(
    lib: str,
    config: str,
    start_us: int,
    end_us: int,
    holds_context: bool = True,
) -> dict[str, Any]:
    """One timed window of harness.measure.gpu_watch on the stub's GPU 0 with the manual clock:
    a look at the processes and the counters at ``start_us``, again at ``end_us``."""
    from harness.measure.gpu_watch import GpuWatch

    stub = _stub(lib)
    with _environment(config, {}, time.monotonic_ns()):
        nvml.init_nvml(lib)
        device = nvml_match.list_devices()[0]
        watch = GpuWatch(device, holds_context=lambda: holds_context)
        stub.nvml_stub_set_time_us(start_us)
        watch.look()
        with watch.window():
            stub.nvml_stub_set_time_us(end_us)
        watch.look()
        return {**watch.window_columns(), **watch.process_columns()}


def doctor_processes(lib: str, config: str) -> dict[str, Any]:
    """The doctor's gpu_processes check of cuda:0 (the stub's only GPU)."""
    import torch

    from harness.doctor.processes import check_gpu_processes

    with _environment(config, {"CNNBENCH_NVML_LIBRARY": lib}, time.monotonic_ns()):
        nvml.init_nvml(lib)
        return check_gpu_processes(torch.device("cuda:0")).to_dict()
