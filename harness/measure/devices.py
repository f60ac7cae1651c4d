"""The devices a case may ask for: a name a user types resolved to a ``torch.device``, and why a
device cannot be used here. The one place for it: the runner, the plugin's settings, ``cnnbench
profile --measure`` and the doctor all ask here.
"""

from __future__ import annotations

import os
import warnings

import torch

from harness.core.errors import InvalidInputError
from harness.core.spec import DEVICE_FORMS

_NO_CUDA: list[str] = []  # why not, worked out once: CUDA's state does not change in a process


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used in this process, or None when it can: no NVIDIA driver, a driver
    too old for this torch (a wheel/driver mismatch), no GPU, every GPU hidden by
    ``CUDA_VISIBLE_DEVICES``, or a build of torch without CUDA (harness.measure.gpus)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        works = torch.cuda.is_available()
    if works:
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a build without CUDA (install a CUDA build of torch)"
    if not _NO_CUDA:
        _NO_CUDA.append(_explain([str(w.message) for w in caught]))
    return _NO_CUDA[0]


def _explain(warned: list[str]) -> str:
    """Why ``torch.cuda.is_available()`` was False: torch's own words (its warning, else the
    error of initialising CUDA) with NVML's view of the driver."""
    from harness.core.errors import first_line
    from harness.measure.gpus import driver_state, explain_no_cuda

    said = next((w for w in warned if "CUDA" in w or "driver" in w), None)
    if said is None:
        try:
            torch.cuda.init()  # fails here (CUDA is not available): its error says why
        except Exception as exc:
            said = first_line(exc, limit=300)
    said = None if said is None else said.strip().splitlines()[0][:300]
    return explain_no_cuda(
        torch.version.cuda, said, driver_state(), os.environ.get("CUDA_VISIBLE_DEVICES")
    )


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; ``cuda`` -> the current CUDA
    device's index (0 without CUDA). A name that is not a device is an InvalidInputError; a
    device that exists by name but not here is not (``unavailable_reason`` says why)."""
    if isinstance(name, torch.device):
        device = name
    elif str(name).strip().lower() == "auto":
        device = torch.device("cuda" if cuda_unavailable_reason() is None else "cpu")
    else:
        try:
            device = torch.device(str(name).strip().lower())
        except (RuntimeError, TypeError, ValueError):
            raise InvalidInputError(f"{name!r} is not a device: use {DEVICE_FORMS}") from None
    if device.type == "cuda" and device.index is None:
        index = torch.cuda.current_device() if cuda_unavailable_reason() is None else 0
        device = torch.device("cuda", index)
    return device


def unavailable_reason(device: torch.device) -> str | None:
    """Why ``device`` cannot run a case here (None when it can)."""
    if device.type == "cuda":
        reason = cuda_unavailable_reason()
        if reason is not None:
            return f"CUDA is not available here: {reason}"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return (
                f"{device} does not exist: {count} CUDA device(s) visible "
                "(check CUDA_VISIBLE_DEVICES)"
            )
        return None
    if device.type != "cpu":
        return f"device type {device.type!r} is not supported by the harness: use {DEVICE_FORMS}"
    return None


def usable_device(name: str | torch.device, option: str = "--device") -> torch.device:
    """``resolve_device`` that also refuses a device this machine cannot use, in one line that
    names the front end's ``option``."""
    device = resolve_device(name)
    reason = unavailable_reason(device)
    if reason is not None:
        raise InvalidInputError(f"{option} {name}: {reason}; use {option} cpu")
    return device
