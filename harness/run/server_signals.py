"""Imported by the fork server alone (the last of harness.run.isolation.PRELOAD): the server
ignores SIGTERM and SIGHUP, so a signal sent to the whole process group (Slurm's scancel, a
terminal that closes) does not end it before the case child it forked has sent its row (a child
dies with its server: PR_SET_PDEATHSIG). The server still ends with the process that started
it. Nothing else imports this module: it changes the importing process's signal handling."""

from __future__ import annotations

import signal

for _name in ("SIGTERM", "SIGHUP"):
    if hasattr(signal, _name):
        signal.signal(getattr(signal, _name), signal.SIG_IGN)
