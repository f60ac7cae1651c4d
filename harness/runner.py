"""Deprecated: the runner of one case is ``harness.run.runner``."""

from harness._moved import warn_moved

warn_moved(__name__, "harness.run.runner")

from harness.run.runner import *  # noqa: E402,F403
from harness.run.runner import CaseInterrupted, CaseResult, RunOptions, run_case  # noqa: E402,F401
