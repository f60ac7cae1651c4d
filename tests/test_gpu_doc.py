"""docs/GPU.md's first-run script: valid bash, and its main-path step is the 8 cases it says
(collected here on the CPU at the GPU's scale, since no GPU is at hand)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = re.search(r"```bash\n(.*?)```", (ROOT / "docs" / "GPU.md").read_text(), re.S)


def test_the_script_is_there_and_is_valid_bash(tmp_path: Path) -> None:
    assert SCRIPT is not None
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    path = tmp_path / "first.sh"
    path.write_text(SCRIPT.group(1))
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_main_path_step_is_eight_cases() -> None:
    assert SCRIPT is not None
    text = SCRIPT.group(1)
    grid = shlex.split(re.search(r"GRID=\((.*?)\)", text).group(1))
    step = re.search(r"== 3\..*?\n(.*?)\n\necho", text, re.S).group(1)
    args = [a for a in shlex.split(step.replace("\\\n", " ")) if a.startswith("--cnn-models")
            or a.startswith("--cnn-batch-sizes") or a.startswith("--cnn-dtypes")]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/", "--benchmark-only", "--co", "-q",
         "-p", "no:cacheprovider", "--cnn-device=cpu", "--cnn-scale=full", *grid, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    cases = [ln for ln in done.stdout.splitlines() if "::" in ln and "[no-cases]" not in ln]
    assert len(cases) == 8, done.stdout[-2000:] + done.stderr[-2000:]
