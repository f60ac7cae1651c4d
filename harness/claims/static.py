"""What static and structural claims measure with: profiles (batch 1, float32) and models on the
meta device, built once per ``check_claims`` call; torch is imported only when one is asked for.
"""

from __future__ import annotations

from typing import Any

from harness.core import units


class Models:
    def __init__(self) -> None:
        self._profiles: dict[str, Any] = {}
        self._models: dict[str, Any] = {}

    def profile(self, name: str) -> Any:
        """The ModelProfile of a registered model (batch 1, float32, its default input)."""
        from harness.profile import profile

        if name not in self._profiles:
            self._profiles[name] = profile(name)
        return self._profiles[name]

    def model(self, name: str) -> Any:
        """The model built on the meta device in eval mode (shared: do not modify)."""
        if name not in self._models:
            import torch

            from harness.models.resolve import get_model

            with torch.device("meta"):
                self._models[name] = get_model(name).eval()
        return self._models[name]

    def layers(self, name: str, kind: type) -> list[Any]:
        """The modules of ``name`` of one class (nn.Conv2d, ...), in order."""
        return [x for x in self.model(name).modules() if isinstance(x, kind)]

    def params_by_type(self, name: str) -> dict[str, int]:
        """Parameters per layer type (Conv2d, Linear, ...) of the profile of ``name``."""
        frame = self.profile(name).by_type()
        return {t: int(p) for t, p in zip(frame["layer_type"], frame["params"], strict=True)}


def shape(dims: Any) -> str:
    return units.shape(dims)


def joined(values: Any) -> str:
    """[96, 256, 384] -> '96/256/384'."""
    return "/".join(str(v) for v in values)


def n_params(module: Any) -> int:
    """Parameters of a module, each shared tensor once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
