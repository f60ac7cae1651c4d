"""What static and structural claims measure with: profiles and models on the meta device.

``Models`` builds each profile and meta model once per ``check_claims`` call; torch is imported
only when one is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness import units

if TYPE_CHECKING:
    from torch import nn

    from harness.profile import ModelProfile


class Models:
    """Profiles (batch 1, float32) and meta models of registered models, cached."""

    def __init__(self) -> None:
        self._profiles: dict[tuple[str, Any], ModelProfile] = {}
        self._models: dict[str, nn.Module] = {}

    def profile(self, name: str, input_shape: tuple[int, ...] | None = None) -> ModelProfile:
        from harness.profile import profile

        if (name, input_shape) not in self._profiles:
            self._profiles[name, input_shape] = profile(name, input_shape)
        return self._profiles[name, input_shape]

    def model(self, name: str) -> nn.Module:
        """The model built on the meta device in eval mode (shared: do not modify)."""
        if name not in self._models:
            import torch

            from harness.models import get_model

            with torch.device("meta"):
                self._models[name] = get_model(name).eval()
        return self._models[name]

    def params_by_type(self, name: str) -> dict[str, int]:
        """Parameters per layer type (Conv2d, Linear, ...) of the profile of ``name``."""
        frame = self.profile(name).by_type()
        return {t: int(p) for t, p in zip(frame["layer_type"], frame["params"], strict=True)}


def shape(dims: Any) -> str:
    return units.shape(dims)


def joined(values: Any) -> str:
    """[96, 256, 384] -> '96/256/384'."""
    return "/".join(str(v) for v in values)


def n_params(module: nn.Module) -> int:
    """Parameters of a module, each shared tensor once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
