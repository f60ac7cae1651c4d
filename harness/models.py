"""The model registry: one dict of named factories, each knowing its default and minimum input.

Names resolve in this order:
  * a registered zoo name (``resnet18``),
  * ``torchvision:NAME`` and ``timm:NAME`` when those packages are installed,
  * ``package.module:factory`` for any importable callable that returns an ``nn.Module``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from harness.errors import DuplicateModelError, MissingDependencyError, UnknownModelError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its factory and what input it takes.

    ``input_shape`` is the default (C, H, W) (or (C, L) for 1D models), without the batch;
    ``min_input_shape`` the smallest the network accepts (None: not known; validation then
    relies on the shape propagation of harness.profile.shapes alone).
    """

    name: str
    factory: Callable[..., nn.Module]
    input_shape: Shape
    min_input_shape: Shape | None = None
    family: str = ""
    description: str = ""
    reference: str = ""
    source: str = "zoo"
    defaults: dict[str, Any] = field(default_factory=dict)

    def build(self, **kwargs: Any) -> nn.Module:
        """Call the factory with the entry's defaults and ``kwargs``; an UnknownModelError when
        it cannot be called so or returns something that is not an ``nn.Module``."""
        args = {**self.defaults, **kwargs}
        what = getattr(self.factory, "__qualname__", repr(self.factory))
        try:
            inspect.signature(self.factory).bind(**args)
        except TypeError as exc:
            given = ", ".join(f"{k}={v!r}" for k, v in args.items()) or "no arguments"
            raise UnknownModelError(
                f"model {self.name!r}: {what} cannot be called with {given} ({exc}); name a "
                "function that builds the model from its default arguments"
            ) from None
        except ValueError:  # no signature to check (a builtin): let the call say
            pass
        model = self.factory(**args)
        if not isinstance(model, nn.Module):
            raise UnknownModelError(
                f"model {self.name!r}: {what} returned a {type(model).__name__}, not a "
                "torch.nn.Module; name a function that builds and returns the model"
            )
        return model


_REGISTRY: dict[str, ModelEntry] = {}
_ZOO_LOADED = False


def register_model(
    name: str,
    *,
    input_shape: Shape,
    min_input_shape: Shape | None = None,
    family: str = "",
    description: str = "",
    reference: str = "",
    **defaults: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``factory`` under ``name``; a name taken twice raises.

    Extra keyword arguments are default factory arguments, so one factory can serve several
    configurations (``vgg16`` and ``vgg16_bn``).
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise DuplicateModelError(
                f"a model named {name!r} is already registered "
                f"(by {_REGISTRY[name].factory.__module__}); choose another name"
            )
        _REGISTRY[name] = ModelEntry(
            name=name,
            factory=factory,
            input_shape=tuple(input_shape),
            min_input_shape=tuple(min_input_shape) if min_input_shape else None,
            family=family,
            description=description or (factory.__doc__ or "").strip().split("\n")[0],
            reference=reference,
            defaults=dict(defaults),
        )
        return factory

    return decorator


def unregister_model(name: str) -> None:
    """Remove a registration (for tests and interactive sessions)."""
    _REGISTRY.pop(name, None)


def _load_zoo() -> None:
    global _ZOO_LOADED
    if not _ZOO_LOADED:
        _ZOO_LOADED = True
        importlib.import_module("harness.zoo")


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern (``"resnet*"``), sorted."""
    _load_zoo()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def _import_optional(module: str, name: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise MissingDependencyError(
            f"model {name!r} needs the package {package!r}, which is not installed: "
            f"pip install {package}"
        ) from exc


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


def _import_entry(name: str) -> ModelEntry:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownModelError(
            f"cannot import module {module_name!r} for model {name!r} ({exc}): check the "
            "spelling, install its package, or run from the directory that holds it"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UnknownModelError(
            f"module {module_name!r} has no callable {attr!r}: write package.module:factory "
            "with the name of a function that returns the model"
        )
    shape = getattr(factory, "input_shape", (3, 224, 224))
    min_shape = getattr(factory, "min_input_shape", None)
    return ModelEntry(
        name=name,
        factory=factory,
        input_shape=tuple(shape),
        min_input_shape=tuple(min_shape) if min_shape else None,
        source="import",
    )


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``, resolving the ``torchvision:``/``timm:``/import forms."""
    _load_zoo()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith("torchvision:"):
        return _torchvision_entry(name)
    if name.startswith("timm:"):
        return _timm_entry(name)
    if ":" in name:
        return _import_entry(name)
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "run `cnnbench models` for the list"
    raise UnknownModelError(
        f"unknown model {name!r}; {hint} (also accepted: torchvision:NAME, timm:NAME, "
        f"package.module:factory)"
    )


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered (or resolvable) as ``name``, passing ``kwargs`` to its factory.

    Wrap the call in ``with torch.device("meta"):`` to build without allocating memory.
    """
    return get_entry(name).build(**kwargs)
