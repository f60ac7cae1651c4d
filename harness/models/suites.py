"""Suite files: importing them as pytest does, so that the models they register are known to
``cnnbench models --suite`` and ``cnnbench profile --suite`` (and the same names the plugin
sees)."""

from __future__ import annotations

import fnmatch
import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from harness.core.errors import HarnessError, InvalidInputError, first_line
from harness.models.registry import registered_names
from harness.models.resolve import load_zoo

# pytest's defaults: the files it collects (python_files) and the directories it does not
# enter (norecursedirs).
SUITE_FILES = ("test_*.py", "*_test.py")
_SKIPPED_DIRS = ("*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv",
                 "{arch}", "__pycache__")  # fmt: skip


def _suite_files(path: Path) -> list[Path]:
    if not path.exists():
        raise InvalidInputError(
            f"suite {path} does not exist: pass a suite file (suites/test_mine.py) or a "
            "directory of them"
        )
    if path.is_file():
        if path.suffix != ".py":
            raise InvalidInputError(f"suite {path} is not a Python file: pass a suite's .py file")
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in _SKIPPED_DIRS))
        found += [
            Path(root, f) for f in sorted(files) if any(fnmatch.fnmatch(f, p) for p in SUITE_FILES)
        ]
    return found


def _import_suite(path: Path) -> None:
    """Import one suite file as pytest's default import mode (prepend) does: the first
    directory above it without ``__init__.py`` goes first on sys.path, and the module is named
    by its packages from there (``suites/test_mine.py`` -> ``test_mine``)."""
    path = path.resolve()
    root, parts = path.parent, [path.stem]
    while (root / "__init__.py").exists():
        parts.insert(0, root.name)
        root = root.parent
    module_name = ".".join(parts)
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        where = getattr(loaded, "__file__", None)
        if where is not None and Path(where).resolve() == path:
            return  # imported once, as pytest does
        raise InvalidInputError(
            f"suite {path}: a module named {module_name!r} is already imported from {where}: "
            "rename one of them"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        importlib.import_module(module_name)
    except HarnessError as exc:
        raise InvalidInputError(f"suite {path}: {exc}") from exc
    except (Exception, SystemExit) as exc:
        raise InvalidInputError(f"suite {path}: importing it raised {first_line(exc)}") from exc


def load_suites(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Import suite files (a directory: its test files, as pytest collects them) so that the
    models they register are known; returns the names they registered, in order.

    A file already imported is not imported again. A missing path, or a file that fails to
    import, is an InvalidInputError naming it.
    """
    load_zoo()  # the zoo's names are not the suite's
    before = set(registered_names())
    for path in paths:
        for file in _suite_files(Path(path)):
            _import_suite(file)
    return [n for n in registered_names() if n not in before]
