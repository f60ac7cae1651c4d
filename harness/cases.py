"""Deprecated: ``Case`` is ``harness.core.spec.Case`` (also ``harness.Case``); the grid function
``sweep`` is ``harness.run.grid.sweep`` (also ``harness.sweep``)."""

from harness._moved import warn_moved

warn_moved(__name__, "harness.core.spec")

from harness.core.spec import *  # noqa: E402,F403
from harness.core.spec import Case, parse_shape  # noqa: E402,F401
from harness.run.grid import sweep  # noqa: E402,F401
