"""Which NVML device is the CUDA device in use: matching by UUID, PCI bus id, or
``CUDA_VISIBLE_DEVICES``, and refusing MIG instances.

NVML numbers every GPU of the machine in PCI order; CUDA numbers only the GPUs in
``CUDA_VISIBLE_DEVICES`` (indices, UUIDs or unique UUID prefixes), by default fastest first. So
``cuda:0`` is often not NVML device 0. ``match_device`` finds the NVML device of a CUDA ordinal by
UUID (torch's device properties), else by PCI bus id, else through ``CUDA_VISIBLE_DEVICES``; an
index is trusted only where it cannot be ambiguous. Anything uncertain is ``NvmlUnavailable``
with the reason, never a guess.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

import pynvml

from harness.measure.power.nvml import NvmlDevice, NvmlUnavailable, describe, nvml_errors


@dataclass(frozen=True)
class CudaIdentity:
    """How CUDA names one of its devices: UUID and PCI bus id, as far as torch tells."""

    uuid: str | None = None
    pci_bus_id: str | None = None


def torch_cuda_identity(index: int) -> CudaIdentity | None:
    """UUID and PCI bus id of CUDA device ``index`` from torch, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    bus, dev, dom = (getattr(props, f"pci_{k}_id", None) for k in ("bus", "device", "domain"))
    pci = None
    if isinstance(bus, int) and isinstance(dev, int) and isinstance(dom, int):
        pci = f"{dom:08X}:{bus:02X}:{dev:02X}.0"
    return CudaIdentity(uuid=str(uuid) if uuid is not None else None, pci_bus_id=pci)


def _bare_uuid(uuid: str) -> str:
    u = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if u.startswith(prefix):
            return u[len(prefix) :]
    return u


def _pci_key(bus_id: str) -> tuple[int, int, int] | None:
    try:
        dom, bus, rest = bus_id.strip().split(":")
        return int(dom, 16), int(bus, 16), int(rest.split(".")[0], 16)
    except ValueError:
        return None


def list_devices() -> list[NvmlDevice]:
    """Every GPU NVML sees, in NVML's (PCI) order."""
    with nvml_errors("the NVML device list"):
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    return [describe(i, h, "index") for i, h in enumerate(handles)]


class MigInstance(NvmlUnavailable):
    """The CUDA device is a MIG instance (or a GPU in MIG mode): not measured for power, but
    its UUID as NVML writes it is known (``uuid``), and the GPU it is part of where NVML says
    (``gpu``)."""

    def __init__(self, reason: str, uuid: str | None, gpu: NvmlDevice | None = None) -> None:
        super().__init__(reason)
        self.uuid = uuid
        self.gpu = gpu


def _mig_enabled(device: NvmlDevice) -> bool:
    try:
        with nvml_errors("the MIG mode"):
            current, _pending = pynvml.nvmlDeviceGetMigMode(device.handle)
    except NvmlUnavailable as err:
        if err.unsupported:  # GPUs before Ampere have no MIG
            return False
        raise
    return current == pynvml.NVML_DEVICE_MIG_ENABLE


def _mig_reason(what: str) -> str:
    return (
        f"{what} is a MIG instance; NVML reports power and energy only for the whole GPU, "
        "which other instances share; measure on a GPU with MIG disabled"
    )


def match_device(
    cuda_index: int, identity: CudaIdentity | None, env: Mapping[str, str] | None = None
) -> NvmlDevice:
    """The NVML device behind CUDA ordinal ``cuda_index`` of this process.

    By UUID, else PCI bus id (both from ``identity``), else through ``CUDA_VISIBLE_DEVICES``
    in ``env`` (default: os.environ). Raises ``NvmlUnavailable`` when the match is not certain
    or the GPU is in MIG mode.
    """
    env = os.environ if env is None else env
    cuda = f"cuda:{cuda_index}"
    devices = list_devices()
    found: NvmlDevice | None = None
    if identity is not None and identity.uuid:
        want = _bare_uuid(identity.uuid)
        found = next((d for d in devices if _bare_uuid(d.uuid) == want), None)
        if found is None:
            if any(_mig_enabled(d) for d in devices):
                raise MigInstance(_mig_reason(f"{cuda} (UUID {identity.uuid})"), f"MIG-{want}")
            raise NvmlUnavailable(f"no NVML device has the UUID of {cuda} ({identity.uuid})")
        found = _with_match(found, "uuid")
    elif identity is not None and identity.pci_bus_id:
        key = _pci_key(identity.pci_bus_id)
        found = next((d for d in devices if _pci_key(d.pci_bus_id) == key), None)
        if found is None:
            raise NvmlUnavailable(f"no NVML device has the PCI bus id of {cuda}")
        found = _with_match(found, "pci_bus_id")
    else:
        found = _match_visible(cuda_index, devices, env)
    if _mig_enabled(found):
        reason = _mig_reason(f"{cuda} on {found.name} ({found.uuid}, MIG mode on)")
        raise MigInstance(reason, found.uuid, found)
    return found


def _with_match(device: NvmlDevice, matched_by: str) -> NvmlDevice:
    return dataclasses.replace(device, matched_by=matched_by)


def _match_visible(
    cuda_index: int, devices: list[NvmlDevice], env: Mapping[str, str]
) -> NvmlDevice:
    cuda = f"cuda:{cuda_index}"
    visible = env.get("CUDA_VISIBLE_DEVICES")
    entries = None if visible is None else [e.strip() for e in visible.split(",") if e.strip()]
    if entries is not None and cuda_index >= len(entries):
        raise NvmlUnavailable(
            f"{cuda} is not among the {len(entries)} device(s) of CUDA_VISIBLE_DEVICES={visible!r}"
        )
    entry = str(cuda_index) if entries is None else entries[cuda_index]
    if entry.upper().startswith("MIG-"):
        raise MigInstance(_mig_reason(f"{cuda} ({entry} in CUDA_VISIBLE_DEVICES)"), entry)
    if not entry.isdigit():  # a UUID, or a unique prefix of one, as CUDA accepts
        want = _bare_uuid(entry)
        hits = [d for d in devices if _bare_uuid(d.uuid).startswith(want)]
        if len(hits) != 1:
            what = "no" if not hits else "more than one"
            raise NvmlUnavailable(f"{what} NVML device matches {entry!r} of CUDA_VISIBLE_DEVICES")
        return _with_match(hits[0], "uuid (CUDA_VISIBLE_DEVICES)")
    ordinal = int(entry)
    pci_order = env.get("CUDA_DEVICE_ORDER", "").upper() == "PCI_BUS_ID"
    if not pci_order and len(devices) > 1:
        raise NvmlUnavailable(
            f"cannot tell which NVML device is {cuda}: without torch's device UUID, a CUDA index "
            "follows CUDA's fastest-first order, not NVML's PCI order; set "
            "CUDA_DEVICE_ORDER=PCI_BUS_ID or list GPU UUIDs in CUDA_VISIBLE_DEVICES"
        )
    if ordinal >= len(devices):
        raise NvmlUnavailable(f"{cuda} maps to GPU {ordinal}, but NVML sees {len(devices)} GPU(s)")
    how = "index (CUDA_DEVICE_ORDER=PCI_BUS_ID)" if pci_order else "index (the only GPU)"
    return _with_match(devices[ordinal], how)
