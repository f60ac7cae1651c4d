"""The GPUs before CUDA: what NVML says about the driver and the GPUs a process may use, why
CUDA does not work where it does not, and which GPU (by UUID) and CPUs each pytest-xdist worker
gets.

Nothing here imports torch or initialises CUDA: a worker must set ``CUDA_VISIBLE_DEVICES``
before CUDA reads it (at the first CUDA call of the process; a child process reads its own
environment), so the GPUs are named through NVML, by UUID. NVML numbers every GPU of the
machine in PCI order; ``CUDA_VISIBLE_DEVICES`` (the outer one, set by a scheduler such as
Slurm) may hold indices in CUDA's order (fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``),
UUIDs, unique UUID prefixes or MIG instances. An entry whose NVML device is certain is given to
its worker as the GPU's UUID; an index that cannot be placed for certain is passed on as it was
written (CUDA resolves it in the worker exactly as it would have here), and that worker's CPUs
are then not pinned, saying why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.measure.power import nvml, nvml_match


@dataclass(frozen=True)
class DriverState:
    """The NVIDIA driver as NVML sees it: ``reason`` (why NVML cannot answer, else None), the
    driver version, the highest CUDA version it supports (``1000 * major + 10 * minor``) and
    every GPU of the machine."""

    reason: str | None = None
    driver_version: str | None = None
    cuda_driver_version: int | None = None
    gpus: tuple[nvml.NvmlDevice, ...] = ()


def driver_state() -> DriverState:
    """NVML's view of the driver (never raises: a missing driver is a ``reason``)."""
    import pynvml

    try:
        nvml.init_nvml()
        gpus = tuple(nvml_match.list_devices())
    except nvml.NvmlUnavailable as err:
        return DriverState(reason=err.reason)
    version = cuda_version = None
    try:
        with nvml.nvml_errors("the driver version"):
            version = _text(pynvml.nvmlSystemGetDriverVersion())
        with nvml.nvml_errors("the driver's CUDA version"):
            cuda_version = int(pynvml.nvmlSystemGetCudaDriverVersion_v2())
    except nvml.NvmlUnavailable:
        pass  # the versions only sharpen the reason; the GPU list stands
    return DriverState(None, version, cuda_version, gpus)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cuda_text(version: int) -> str:
    """``12020`` -> ``12.2`` (NVML's and the CUDA runtime's encoding)."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def _parse_cuda(text: str | None) -> int | None:
    try:
        major, minor = (int(p) for p in str(text).split(".")[:2])
    except ValueError:
        return None
    return 1000 * major + 10 * minor


def explain_no_cuda(
    torch_cuda: str | None,
    torch_said: str | None,
    state: DriverState,
    visible: str | None,
) -> str:
    """Why CUDA does not work in this process, from what torch was built with
    (``torch.version.cuda``), what torch said when it failed (its warning or error, if any),
    NVML's view of the driver and ``CUDA_VISIBLE_DEVICES``: no driver, a driver too old for
    the wheel, no GPU, every GPU hidden, or torch's own words."""
    said = f" (torch: {torch_said})" if torch_said else ""
    if torch_cuda is None:
        return "torch is a build without CUDA: install a CUDA build of torch"
    if state.reason is not None:
        return f"no working NVIDIA driver: {state.reason}{said}"
    if not state.gpus:
        return f"the NVIDIA driver {state.driver_version or ''} sees no GPU{said}".replace(
            "  ", " "
        )
    wanted = _parse_cuda(torch_cuda)
    have = state.cuda_driver_version
    if wanted is not None and have is not None and have < wanted:
        return (
            f"torch is built for CUDA {torch_cuda}, but the NVIDIA driver "
            f"{state.driver_version or ''} supports CUDA up to {cuda_text(have)} (a wheel/driver "
            f"mismatch): update the driver, or install a torch built for CUDA {cuda_text(have)} "
            f"or older{said}"
        ).replace("driver  supports", "driver supports")
    if visible is not None and not [e for e in visible.split(",") if e.strip()]:
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU{said}"
    gpus = ", ".join(f"{g.index}: {g.name}" for g in state.gpus)
    return (
        f"torch cannot use the GPU(s) NVML sees ({gpus}; CUDA_VISIBLE_DEVICES="
        f"{visible!r}){said or ': check that the GPU is not in exclusive use and nvidia-smi works'}"
    )


# -- which GPU and CPUs each worker gets -------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """One worker's GPU and CPUs: ``visible`` is the ``CUDA_VISIBLE_DEVICES`` it gets (a UUID,
    or an entry passed on as written), ``nvml_index``/``uuid`` the GPU when known, ``cpus`` the
    CPUs to pin it to (empty: not pinned, ``note`` says why)."""

    visible: str
    nvml_index: int | None = None
    uuid: str | None = None
    name: str | None = None
    cpus: tuple[int, ...] = ()
    note: str | None = None


@dataclass
class GpuPlan:
    """The GPUs this process may use, in the order of ``CUDA_VISIBLE_DEVICES`` (else NVML's),
    one ``Placement`` each; ``note``: what could not be placed for certain."""

    placements: list[Placement] = field(default_factory=list)
    note: str | None = None


def _entries(visible: str | None) -> list[str] | None:
    if visible is None:
        return None
    return [e.strip() for e in visible.split(",") if e.strip()]


def _nearest_cpus(device: nvml.NvmlDevice, allowed: Sequence[int]) -> tuple[tuple[int, ...], str]:
    """The CPUs of ``allowed`` in the GPU's NUMA affinity, or () with the reason."""
    try:
        near = set(device.cpu_affinity(max(allowed) + 1 if allowed else 1))
    except nvml.NvmlUnavailable as err:
        return (), f"CPUs not pinned: {err.reason}"
    mine = tuple(c for c in allowed if c in near)
    if not mine:
        return (), "CPUs not pinned: none of this process's CPUs is in the GPU's NUMA affinity"
    return mine, ""


def plan_gpus(env: Mapping[str, str] | None = None, cpus: Sequence[int] = ()) -> GpuPlan:
    """The GPUs this process may use (``CUDA_VISIBLE_DEVICES`` of ``env``, default
    os.environ), each with its UUID when certain and the CPUs of ``cpus`` nearest it.

    Raises ``NvmlUnavailable`` when NVML cannot list the GPUs at all."""
    env = os.environ if env is None else env
    nvml.init_nvml()
    devices = nvml_match.list_devices()
    entries = _entries(env.get("CUDA_VISIBLE_DEVICES"))
    pci_order = env.get("CUDA_DEVICE_ORDER", "").upper() == "PCI_BUS_ID"
    same_model = len({d.name for d in devices}) <= 1
    plan = GpuPlan()
    if entries is None:
        chosen: list[tuple[str, nvml.NvmlDevice | None]] = [(d.uuid, d) for d in devices]
    else:
        chosen = [(e, _resolve_entry(e, devices, pci_order)) for e in entries]
    for entry, device in chosen:
        if device is None:
            why = (
                f"CUDA_VISIBLE_DEVICES entry {entry!r} passed on as written: NVML cannot say "
                "which GPU it is (an index in CUDA's fastest-first order; set "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID or list UUIDs)"
            )
            if entry.upper().startswith("MIG-"):
                why = (
                    f"CUDA_VISIBLE_DEVICES entry {entry!r} is a MIG instance, passed on as written"
                )
            plan.placements.append(Placement(entry, note=why))
            plan.note = why
            continue
        mine, why = _nearest_cpus(device, cpus) if cpus else ((), "")
        plan.placements.append(
            Placement(device.uuid, device.index, device.uuid, device.name, mine, why or None)
        )
    if entries is not None and not pci_order and same_model and plan.note:
        plan.note += " (all GPUs here are one model, so which one it is does not change a row)"
    return plan


def _resolve_entry(
    entry: str, devices: list[nvml.NvmlDevice], pci_order: bool
) -> nvml.NvmlDevice | None:
    """The NVML device an outer ``CUDA_VISIBLE_DEVICES`` entry names, when certain."""
    if entry.upper().startswith("MIG-"):
        return None
    if entry.isdigit():
        index = int(entry)
        if (pci_order or len(devices) == 1) and index < len(devices):
            return devices[index]
        return None
    want = entry.lower().removeprefix("gpu-")
    hits = [d for d in devices if d.uuid.lower().removeprefix("gpu-").startswith(want)]
    return hits[0] if len(hits) == 1 else None


def split_cpus(allowed: Sequence[int], parts: int, index: int) -> tuple[int, ...]:
    """The ``index``-th of ``parts`` equal shares of ``allowed`` (the rest unused), or ()
    when there are fewer CPUs than parts."""
    share = len(allowed) // parts if parts > 0 else 0
    if share == 0 or not 0 <= index < parts:
        return ()
    return tuple(allowed[index * share : (index + 1) * share])


def assign(plan: GpuPlan, workers: int) -> list[Placement]:
    """The first ``workers`` GPUs of ``plan``; workers whose GPUs share one NUMA node's CPUs
    split those CPUs evenly, so that no two workers' CPUs overlap."""
    chosen = plan.placements[:workers]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(chosen):
        if p.cpus:
            groups.setdefault(p.cpus, []).append(i)
    out = list(chosen)
    for cpus, members in groups.items():
        for k, i in enumerate(members):
            share = split_cpus(cpus, len(members), k)
            note = None if share else "CPUs not pinned: fewer CPUs near the GPU than its workers"
            out[i] = Placement(**{**out[i].__dict__, "cpus": share, "note": note or out[i].note})
    return out
