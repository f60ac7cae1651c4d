"""`cnnbench models` and `cnnbench profile` in a fresh process (issue 25: 5.3 s and 10.4 s):
the static output is kept after the first run and printed again without importing torch; it is
the output the command computes; a change to the code or to torch's version is a new key; what
depends on anything else (a suite, an external model, a measurement, a process that has torch
already) is never kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.cli import static_cache
from harness.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import sys\n"
    "from harness.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def fresh(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CNNBENCH_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)  # fmt: skip


def test_a_second_run_prints_the_same_without_torch(tmp_path: Path, capsys: Any) -> None:
    cache = tmp_path / "cache"
    for args in (["models", "resnet*"], ["profile", "lenet5", "--by-type"]):
        first = fresh(cache, *args)
        assert first.returncode == 0 and "torch imported: True" in first.stderr
        second = fresh(cache, *args)
        assert second.returncode == 0 and "torch imported: False" in second.stderr
        assert second.stdout == first.stdout
        assert main([*args, "--no-cache"]) == 0  # computed here, where torch is imported
        assert capsys.readouterr().out == first.stdout
    assert len(list(cache.glob("*.json"))) == 2


def test_a_new_fingerprint_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNBENCH_CACHE_DIR", str(tmp_path))
    static_cache.put("models", ["*", "table"], "kept\n")
    assert static_cache.get("models", ["*", "table"]) == "kept\n"
    monkeypatch.setattr(static_cache, "_FINGERPRINT", "another torch or another zoo")
    assert static_cache.get("models", ["*", "table"]) is None


def test_the_fingerprint_reads_the_sources_and_versions() -> None:
    monkeypatch = pytest.MonkeyPatch()
    try:
        monkeypatch.setattr(static_cache, "_FINGERPRINT", None)
        before = static_cache.fingerprint()
        monkeypatch.setattr(static_cache, "_FINGERPRINT", None)
        monkeypatch.setattr(static_cache, "_version", lambda package: "0.0-other")
        assert static_cache.fingerprint() != before
    finally:
        monkeypatch.undo()


def test_what_depends_on_more_is_never_kept(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    suite = tmp_path / "suite.py"
    suite.write_text("")
    assert fresh(cache, "models", "lenet*", "--suite", str(suite)).returncode == 0
    out = fresh(cache, "profile", "tests.models_for_tests:tiny_cnn", "--input", "3x8x8")
    assert out.returncode == 0, out.stderr
    assert not cache.exists() or not list(cache.glob("*.json"))
