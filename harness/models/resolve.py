"""Model names as users type them, resolved to registry entries (harness.models.registry).

``get_entry(name)`` is the one resolver, for the command line and the pytest plugin alike.
Names resolve in this order:
  * a registered name (``resnet18``; the zoo registers on first use, a suite file when
    imported, see ``load_suites``),
  * ``torchvision:NAME`` and ``timm:NAME`` when those packages are installed,
  * ``package.module:factory`` for any importable callable that returns an ``nn.Module``; a
    factory that a module registered is its registered entry, with its input.
Every failure is a HarnessError of one line: UnknownModelError (a name nothing resolves, a
module that fails to import), MissingDependencyError (torchvision or timm missing, or built
for another torch).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import sys
from typing import Any

import torch
from torch import nn

from harness.core.errors import (
    HarnessError,
    InvalidInputError,
    MissingDependencyError,
    UnknownModelError,
    first_line,
)
from harness.models.registry import ModelEntry, Shape, entries_of, registered, registered_names

__all__ = ["get_entry", "get_model", "list_models", "load_zoo"]

NAME_FORMS = (
    "package.module:factory (e.g. mypkg.nets:build), torchvision:NAME, timm:NAME or a "
    "registered name (`cnnbench models`)"
)


def load_zoo() -> None:
    """Import the zoo, which registers its models. A successful import is cached by Python; a
    failed one is not, so every call after a failure raises that import error again."""
    importlib.import_module("harness.models.zoo")


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern (``"resnet*"``), sorted."""
    load_zoo()
    return sorted(n for n in registered_names() if fnmatch.fnmatchcase(n, pattern))


# ------------------------------------------------------------------ torchvision: and timm:

# How a compiled extension built for another torch fails on import: torchvision's registration
# of its C++ operators (``operator torchvision::nms does not exist``), or the loader.
_BUILT_FOR_ANOTHER_TORCH = re.compile(
    r"operator \w+::\w+ does not exist|undefined symbol|DLL load failed|_C\.so"
)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\+([\w.]+))?$")


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision release built for a torch release (``2.13.0+cpu`` -> ``0.28.0``), None
    for a build no release matches (a nightly, a source build). torchvision's minor version
    follows torch's: 0.(minor + 15) for torch 2.x, 0.(minor + 1) for torch 1.x; the patch
    release is the same."""
    m = _RELEASE.match(torch_version)
    if m is None:
        return None
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3))
    offset = {1: 1, 2: 15}.get(major)
    return None if offset is None else f"0.{minor + offset}.{patch}"


def install_hint(package: str, torch_version: str) -> str:
    """The install command that keeps the installed torch: torchvision pinned to the release
    built for it, from the index of its build (``+cpu``, ``+cu128``); timm after it (timm needs
    torchvision, and an unpinned one would bring another torch). A build no release matches
    says so instead of a command that would replace it."""
    vision = matching_torchvision(torch_version)
    if vision is None:
        return (
            f"no released torchvision matches torch {torch_version} (a nightly or source "
            "build): build torchvision from source against it, or install a released torch "
            f"with its torchvision (a bare `pip install {package}` would replace this torch)"
        )
    local = torch_version.partition("+")[2]
    index = f" --index-url https://download.pytorch.org/whl/{local}" if local else ""
    command = f"pip install 'torchvision=={vision}'{index}"
    if package != "torchvision":
        command += f" && pip install {package}"
    return f"{command} (the release built for torch {torch_version}, which it keeps)"


def _import_optional(module: str, name: str) -> Any:
    """Import torchvision's or timm's ``module`` for the model ``name``; a MissingDependencyError
    of one line when the package is not installed, or installed but failing to import."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == package:
            raise MissingDependencyError(
                f"model {name!r} needs the package {package!r}, which is not installed: "
                f"{install_hint(package, torch.__version__)}"
            ) from exc
        failure: BaseException = exc
    except Exception as exc:  # a torchvision built for another torch raises RuntimeError
        failure = exc
    version = _version(package)
    what = f"{package} {version}" if version else package
    reason = first_line(failure)
    if _BUILT_FOR_ANOTHER_TORCH.search(reason):
        culprit = "torchvision" if "torchvision" in reason or package == "torchvision" else package
        raise MissingDependencyError(
            f"model {name!r} needs {what}, which fails to import ({reason}): torch "
            f"{torch.__version__} and {culprit} {_version(culprit) or '(version unknown)'} do "
            f"not match; install the {culprit} built for this torch: "
            f"{install_hint(culprit, torch.__version__)}"
        ) from failure
    raise MissingDependencyError(
        f"model {name!r} needs {what}, which is installed but fails to import ({reason}): "
        f"reinstall it with what it needs: pip install --force-reinstall {package}"
    ) from failure


def _torchvision_entry(name: str) -> ModelEntry:
    tv_models = _import_optional("torchvision.models", name)
    arch = name.split(":", 1)[1]
    try:
        builder = tv_models.get_model_builder(arch)
    except ValueError as exc:
        close = difflib.get_close_matches(arch, tv_models.list_models(), n=5)
        raise UnknownModelError(
            f"torchvision has no model {arch!r}; closest: {', '.join(close) or 'none'}"
        ) from exc
    shape: Shape = (3, 299, 299) if arch.startswith("inception") else (3, 224, 224)
    return ModelEntry(name=name, factory=builder, input_shape=shape, source="torchvision")


def _timm_entry(name: str) -> ModelEntry:
    timm = _import_optional("timm", name)
    arch = name.split(":", 1)[1]
    if not timm.list_models(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        raise UnknownModelError(
            f"timm has no model {arch!r}; closest: {', '.join(close) or 'none'}"
        )
    cfg = timm.models.get_pretrained_cfg(arch)
    shape: Shape = tuple(getattr(cfg, "input_size", None) or (3, 224, 224))
    min_shape = getattr(cfg, "min_input_size", None)
    return ModelEntry(
        name=name,
        factory=lambda **kw: timm.create_model(arch, pretrained=False, **kw),
        input_shape=shape,
        min_input_shape=tuple(min_shape) if min_shape else None,
        source="timm",
    )


# ------------------------------------------------------------------ package.module:factory


def _dotted(text: str) -> bool:
    """``a.b.c`` of Python identifiers."""
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _cwd_on_path() -> bool:
    return any(os.path.abspath(p or os.curdir) == os.getcwd() for p in sys.path)


def _search_current_directory(module_name: str) -> None:
    """Put the current directory on ``sys.path`` (last: it never shadows an installed package)
    when it holds ``module_name``'s top package and nothing on the path does. Only a model
    named ``module:factory`` searches it (harness.cli.main keeps it off the path otherwise: a
    ``pytz.py`` there would run on every command)."""
    top = module_name.split(".")[0]
    if _cwd_on_path() or importlib.util.find_spec(top) is not None:
        return
    if importlib.machinery.PathFinder.find_spec(top, [os.getcwd()]) is not None:
        sys.path.append(os.getcwd())
        importlib.invalidate_caches()


def _import_module(module_name: str, name: str) -> Any:
    _search_current_directory(module_name)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise UnknownModelError(
                f"cannot import module {module_name!r} for model {name!r} ({exc}): check the "
                "spelling, install its package, run from the directory that holds it (the "
                "current directory is searched) or put that directory on PYTHONPATH"
            ) from exc
        failure: BaseException = exc
    except HarnessError as exc:  # e.g. a register_model with a bad input_shape
        raise UnknownModelError(f"model {name!r}: importing module {module_name!r}: {exc}") from exc
    except (Exception, SystemExit) as exc:  # the user's module raised, or does not parse
        failure = exc
    raise UnknownModelError(
        f"model {name!r}: importing module {module_name!r} raised {first_line(failure)}; fix "
        "the module or name another model"
    ) from failure


def _import_entry(name: str) -> ModelEntry:
    module_name, _, attr = name.partition(":")
    if not (_dotted(module_name) and _dotted(attr)):
        raise UnknownModelError(f"{name!r} is not a model name: write {NAME_FORMS}")
    factory: Any = _import_module(module_name, name)
    for part in attr.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise UnknownModelError(
            f"module {module_name!r} has no callable {attr!r}: write package.module:factory "
            "with the name of a function that returns the model"
        )
    mine = entries_of(factory)
    if mine:  # registered by its module: the registration knows its input
        last = attr.rsplit(".", 1)[-1]
        return min(mine, key=lambda e: (e.name != last, bool(e.defaults)))
    try:
        from harness.core.spec import parse_shape

        shape = parse_shape(getattr(factory, "input_shape", (3, 224, 224)))
        min_shape = getattr(factory, "min_input_shape", None)
        smallest = parse_shape(min_shape) if min_shape is not None else None
    except (HarnessError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"model {name!r}: its input_shape attributes: {exc}") from None
    return ModelEntry(
        name=name,
        factory=factory,
        input_shape=shape,
        min_input_shape=smallest,
        source="import",
    )


# ------------------------------------------------------------------------------ resolving


def get_entry(name: str) -> ModelEntry:
    """The entry for a model name as a user types it, with its default (and smallest) input.

    A registered name, ``torchvision:NAME``, ``timm:NAME`` or ``package.module:factory``; raises
    UnknownModelError or MissingDependencyError with one line saying what to do.
    """
    if not isinstance(name, str):
        raise UnknownModelError(f"a model name is text, got {type(name).__name__}: {NAME_FORMS}")
    load_zoo()
    entry = registered(name)
    if entry is not None:
        return entry
    if name.startswith("torchvision:"):
        return _torchvision_entry(name)
    if name.startswith("timm:"):
        return _timm_entry(name)
    if ":" in name:
        return _import_entry(name)
    close = difflib.get_close_matches(name, registered_names(), n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "run `cnnbench models` for the list"
    raise UnknownModelError(
        f"unknown model {name!r}; {hint} (also accepted: torchvision:NAME, timm:NAME, "
        "package.module:factory, and a model a suite file registers once that file is "
        "imported: pytest collects it, cnnbench profile/models take --suite FILE)"
    )


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered (or resolvable) as ``name``, passing ``kwargs`` to its factory.

    Wrap the call in ``with torch.device("meta"):`` to build without allocating memory.
    """
    return get_entry(name).build(**kwargs)
