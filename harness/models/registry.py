"""The model registry: named factories, each knowing its default and smallest input.

A leaf of the models layer: it imports only harness.core (the errors and the shape reader) and
no torch, so the zoo, suite files and ``harness.models.resolve`` all import it and nothing
imports back. Turning a name a user types into an entry (the zoo, ``torchvision:NAME``,
``timm:NAME``, ``package.module:factory``, suite files) is ``harness.models.resolve``' job.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import (
    DuplicateModelError,
    HarnessError,
    InvalidInputError,
    UnknownModelError,
)
from harness.core.spec import parse_shape

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its factory and what input it takes.

    ``input_shape`` is the default (C, H, W) (or (C, L) for 1D models), without the batch;
    ``min_input_shape`` the smallest the network accepts (None: not known; validation then
    relies on the shape propagation of harness.profile.shapes alone).
    """

    name: str
    factory: Callable[..., Any]
    input_shape: Shape
    min_input_shape: Shape | None = None
    family: str = ""
    description: str = ""
    reference: str = ""
    source: str = "zoo"
    defaults: dict[str, Any] = field(default_factory=dict)

    def build(self, **kwargs: Any) -> Any:
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
        from torch import nn  # a factory just ran: torch is imported already

        if not isinstance(model, nn.Module):
            raise UnknownModelError(
                f"model {self.name!r}: {what} returned a {type(model).__name__}, not a "
                "torch.nn.Module; name a function that builds and returns the model"
            )
        return model


_ENTRIES: dict[str, ModelEntry] = {}


def _read_shape(name: str, what: str, value: Any) -> Shape:
    try:
        return parse_shape(value)
    except (HarnessError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"register_model({name!r}): {what} {value!r}: {exc}") from None


def _definition(factory: Any) -> tuple[str, str] | None:
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    return (module, qualname) if module and qualname else None


def register_model(
    name: str,
    *,
    input_shape: Shape | str,
    min_input_shape: Shape | str | None = None,
    family: str = "",
    description: str = "",
    reference: str = "",
    **defaults: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``factory`` under ``name``; a name taken twice raises.

    ``input_shape`` (and ``min_input_shape``) are read as ``cnnbench profile --input`` reads
    them, (3, 64, 64) or "3x64x64", and a bad one raises here, where the model is declared.
    Extra keyword arguments are default factory arguments, so one factory can serve several
    configurations (``vgg16`` and ``vgg16_bn``). The same definition registered again (its
    module imported again, after a failed import or a reload) replaces the entry.
    """
    shape = _read_shape(name, "input_shape", input_shape)
    smallest = (
        _read_shape(name, "min_input_shape", min_input_shape)
        if min_input_shape is not None
        else None
    )

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        taken = _ENTRIES.get(name)
        if taken is not None and (
            taken.factory is not factory
            and (_definition(factory) is None or _definition(taken.factory) != _definition(factory))
        ):
            raise DuplicateModelError(
                f"a model named {name!r} is already registered "
                f"(by {taken.factory.__module__}); choose another name"
            )
        module = getattr(factory, "__module__", "") or ""
        _ENTRIES[name] = ModelEntry(
            name=name,
            factory=factory,
            input_shape=shape,
            min_input_shape=smallest,
            family=family,
            description=description or (factory.__doc__ or "").strip().split("\n")[0],
            reference=reference,
            source="zoo" if module.startswith("harness.models.zoo") else "registered",
            defaults=dict(defaults),
        )
        return factory

    return decorator


def unregister_model(name: str) -> None:
    """Remove a registration (for tests and interactive sessions)."""
    _ENTRIES.pop(name, None)


def registered(name: str) -> ModelEntry | None:
    """The entry registered as ``name``, or None."""
    return _ENTRIES.get(name)


def registered_names() -> list[str]:
    """Every registered name, in the order of registration."""
    return list(_ENTRIES)


def entries_of(factory: object) -> list[ModelEntry]:
    """The entries whose factory is ``factory`` (one function may serve several names)."""
    return [e for e in _ENTRIES.values() if e.factory is factory]
