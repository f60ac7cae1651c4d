"""Deprecated: the sweep of a run is ``harness.run.sweep`` (``Sweep``).

``harness.sweep`` is also the public grid function (``harness.run.grid.sweep``): importing this
old module would shadow it on the package, so the module itself can be called as that function.
"""

import sys
import types

from harness._moved import warn_moved

warn_moved(__name__, "harness.run.sweep")

from harness.run.grid import sweep as _grid_sweep  # noqa: E402
from harness.run.sweep import *  # noqa: E402,F403
from harness.run.sweep import ResultsNotWritable, Sweep  # noqa: E402,F401


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return _grid_sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
