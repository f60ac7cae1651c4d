"""What `cnnbench models` and `cnnbench profile` print, kept so that asking again costs no torch.

Both commands print static facts (parameter counts, smallest inputs, the meta-device profile):
the same for the same code and the same torch. Computing them imports torch, and torch's meta
kernels import torch._dynamo; on the project's 2-core VM that alone is 2-4 s of CPU, so a list
of models took 5 s. The output is therefore kept, on first use, in a small JSON file keyed by
everything that decides it (``fingerprint``): the command and its arguments, the installed
torch and cnnbench versions (package metadata, read without importing either) and the bytes of
every source file under ``harness/core``, ``harness/models``, ``harness/profile`` and
``harness/cli`` (how the commands print: a CSV made formula-safe is new output). A change to
any of them is a new key, so nothing stale is printed; ``--no-cache`` recomputes. Output that
depends on anything else is never kept: models from a ``--suite`` file, ``torchvision:``,
``timm:`` or ``package.module:factory`` names, measured profiles.

The cache serves a fresh process only (``usable``: torch not imported yet). A process that has
torch already (a Python session, a test calling ``main``) gains nothing from it and may have
registered models of its own, so it computes and keeps nothing.

The files live in ``$CNNBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnnbench``, else
``~/.cache/cnnbench``; one that cannot be read or written is simply not used (a cache, never a
reason to fail). Torch-free.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from pathlib import Path

import harness

SOURCES = ("core", "models", "profile", "cli")  # what computes the output, and what prints it
_FINGERPRINT: str | None = None


def usable() -> bool:
    """Whether this process may read and write the cache: torch is not imported yet."""
    return "torch" not in sys.modules


def cache_dir() -> Path:
    given = os.environ.get("CNNBENCH_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnbench"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def fingerprint() -> str:
    """The versions and the source bytes the static output depends on, hashed (once per
    process: reading ~60 files takes milliseconds)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        digest = hashlib.sha256()
        digest.update(f"torch {_version('torch')}; cnnbench {_version('cnnbench')}".encode())
        root = Path(harness.__file__).parent
        for package in SOURCES:
            for path in sorted((root / package).rglob("*.py")):
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
        _FINGERPRINT = digest.hexdigest()
    return _FINGERPRINT


def _path(command: str, key: list[str]) -> Path:
    digest = hashlib.sha256(json.dumps([fingerprint(), command, key]).encode()).hexdigest()
    return cache_dir() / f"{command}-{digest[:32]}.json"


def get(command: str, key: list[str]) -> str | None:
    """The text kept for ``command`` and ``key``, or None."""
    try:
        data = json.loads(_path(command, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("text") if isinstance(data, dict) else None


def put(command: str, key: list[str], text: str) -> None:
    """Keep ``text`` (written to a temporary file, then renamed; any OSError is ignored)."""
    path = _path(command, key)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"command": command, "key": key, "text": text}, fh)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
