"""Compile the stand-in NVML library (nvml_stub.c) with the system C compiler.

Used by the power tests (a session-scoped fixture) and by benchmarks/bench_power_overhead.py.
Run as a script to build by hand: ``python tests/nvml_stub/build.py OUT_DIR``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("nvml_stub.c")
SONAME = "libnvidia-ml.so.1"


def c_compiler() -> str | None:
    """The C compiler to use (gcc, else cc), or None when the machine has none."""
    return shutil.which("gcc") or shutil.which("cc")


def under_ci() -> bool:
    """True where the environment variable CI says so (CI=true, as GitHub Actions and .ci/run
    set it; empty, 0, false and no say otherwise)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def compiler_or_skip() -> str:
    """The C compiler for a test; without one the test is skipped, except under CI, where it
    fails: CI must run the NVML tests, not report them skipped (.ci/run installs gcc)."""
    import pytest

    cc = c_compiler()
    if cc is None:
        message = "no C compiler (gcc or cc) to build the stand-in NVML library"
        if under_ci():
            pytest.fail(f"{message}; under CI these tests must run: install gcc", pytrace=False)
        pytest.skip(message)
    return cc


def build_stub(out_dir: Path, *, old_driver: bool = False) -> Path:
    """Build the stub into ``out_dir`` and return the path of the shared library.

    ``old_driver`` leaves out nvmlDeviceGetCurrentClocksEventReasons, as drivers before R535
    do, so pynvml raises NVMLError_FunctionNotFound for it.
    """
    cc = c_compiler()
    if cc is None:
        raise FileNotFoundError("no C compiler (gcc or cc) on PATH to build the NVML stub")
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "nvml_stub_old_driver.so" if old_driver else "nvml_stub.so"
    out = out_dir / name
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]
    cmd += [f"-Wl,-soname,{SONAME}", "-o", str(out), str(SOURCE)]
    if old_driver:
        cmd.insert(1, "-DSTUB_OLD_DRIVER")
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


if __name__ == "__main__":
    print(build_stub(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
