"""Old module paths kept for one release after the renovation (docs/ARCHITECTURE.md, "Moved
modules"): importing one warns once with the new path."""

from __future__ import annotations

import warnings


def warn_moved(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; import from there ({old} goes away in a later release)",
        DeprecationWarning,
        stacklevel=3,
    )
