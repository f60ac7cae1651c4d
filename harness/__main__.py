"""``python -m harness``: the ``cnnbench`` command. Python puts the current directory first on
``sys.path`` for ``-m``; it is taken off again before anything else is imported, so that a
file there named like an optional dependency (``pytz.py``) never runs; a user's
``mymodule:factory`` is still found there (harness.models.resolve), as with the script."""

import os
import sys

if (
    not sys.flags.safe_path
    and sys.path
    and os.path.abspath(sys.path[0] or os.curdir) == (os.getcwd())
):
    del sys.path[0]

from harness.cli.main import main  # after the path is fixed

raise SystemExit(main())
