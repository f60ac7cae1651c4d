"""The `cnnbench` command as a careless or hostile user meets it (issues 16 and 17): every bad
input is one line and exit 2, Ctrl-C is one line and exit 130, the script imports a user's
module from the current directory as `python -m harness` does, models registered in a suite
file are seen, and a torchvision built for another torch is named in one line.

What is a property of the process runs the real script in a child: the exit code and the one
line of a real process, the import path of the installed script and of `python -m harness`,
Ctrl-C, a fresh interpreter whose zoo import fails. What `harness.cli.main.main` decides (the
message, the code it returns, what it imports) runs in this process, each call as a fresh
process would start it: the current directory and PYTHONPATH given, the user's modules and the
models they registered gone before and after (``cli``).
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.results.store import ResultWriter

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "cnnbench"

MY_CNN_SUITE = """
import pytest
from torch import nn
from harness import register_model

@register_model("hardening_cnn", input_shape=(3, 64, 64), min_input_shape=(3, 8, 8))
def hardening_cnn():
    return nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10))

@pytest.mark.cnnbench(models=["hardening_cnn"], batch_sizes=[1])
def test_mine(cnn_case, cnn_bench):
    cnn_bench(cnn_case)
"""


def cnnbench(
    *argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed script as a user does (no PYTHONPATH of ours unless given)."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(SCRIPT), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd or ROOT,
        env={**base, **(env or {})},
    )


@dataclass
class Finished:
    """What a command left: as subprocess.CompletedProcess has it."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """cli(*argv, cwd=None, pythonpath=None): `cnnbench ARGV` through harness.cli.main.main in
    this process, started as a fresh process would be: in ``cwd`` (the repository by default),
    with ``pythonpath`` first on sys.path, and none of the modules or registrations an earlier
    call imported (each call starts from the state before the first; so does the next test)."""
    from harness.cli.main import main
    from harness.models import registry
    from harness.models.resolve import load_zoo

    load_zoo()  # as any process has it once it needs a model: part of the state kept
    base_path, base_modules = list(sys.path), set(sys.modules)
    base_entries = dict(registry._ENTRIES)

    def forget() -> None:
        sys.path[:] = base_path
        kept = (str(ROOT), sys.prefix, sys.base_prefix)  # the project, its libraries, Python's
        for name in set(sys.modules) - base_modules:
            module = sys.modules[name]
            where = getattr(module, "__file__", None) or next(
                iter(getattr(module, "__path__", [])), ""
            )
            if where and not str(where).startswith(kept):  # the user's modules (and fakes)
                del sys.modules[name]
        registry._ENTRIES.clear()
        registry._ENTRIES.update(base_entries)
        importlib.invalidate_caches()

    def run(*argv: str | Path, cwd: Path | None = None, pythonpath: Path | None = None) -> Finished:
        forget()
        monkeypatch.chdir(cwd or ROOT)
        if pythonpath is not None:
            sys.path.insert(0, str(pythonpath))
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's exit, as the script would exit
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Finished(code, out, err)

    yield run
    forget()


def assert_one_line_error(proc: subprocess.CompletedProcess[str] | Finished, command: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr that starts with the command's name."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"cnnbench {command}: error: "), proc.stderr
    return proc.stderr


# ------------------------------------------------------------- item 10: one line, exit 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([":foo"], "':foo' is not a model name: write package.module:factory"),
        (["..:x"], "'..:x' is not a model name: write package.module:factory"),
        (["lenet5", "--batch", "10000000000000000"], "more than one tensor can hold"),
        (["lenet5", "--input", "3x99999999999999999999x2"], "is too large"),
        (["lenet5", "--batch", "abc"], "argument --batch: invalid int value: 'abc'"),
    ],
)
def test_bad_profile_inputs_are_one_line(cli, argv: list[str], message: str) -> None:
    err = assert_one_line_error(cli("profile", *argv), "profile")
    assert message in err


def test_a_users_broken_model_module_is_one_line(cli, tmp_path: Path) -> None:
    (tmp_path / "raises_on_import.py").write_text("raise ValueError('no weights here')\n")
    (tmp_path / "bad_syntax.py").write_text("def net(:\n    pass\n")
    (tmp_path / "bad_factory.py").write_text(
        "def net():\n    raise RuntimeError('factory is broken')\n"
    )
    (tmp_path / "bad_registry.py").write_text(
        "from torch import nn\nfrom harness import register_model\n\n"
        "@register_model('bad_shape_net', input_shape='abc')\n"
        "def net():\n    return nn.Conv2d(3, 3, 3)\n"
    )
    expected = {
        "raises_on_import:net": "importing module 'raises_on_import' raised ValueError: no weights",
        "bad_syntax:net": "importing module 'bad_syntax' raised SyntaxError: invalid syntax",
        "bad_factory:net": "building it raised RuntimeError: factory is broken",
        "bad_registry:net": "input_shape 'abc'",
    }
    for name, message in expected.items():
        err = assert_one_line_error(cli("profile", name, cwd=tmp_path), "profile")
        assert message in err, err


def test_argparse_errors_are_one_line_too(cli) -> None:
    err = assert_one_line_error(cli("models", "--format", "yaml"), "models")
    assert "argument --format: invalid choice: 'yaml'" in err and "cnnbench models --help" in err


# --------------------------------------------------- item 17: the current directory imports


def test_the_script_imports_a_model_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "cwd_net.py").write_text(
        "from torch import nn\n\n"
        "def net():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten())\n"
    )
    proc = cnnbench("profile", "cwd_net:net", "--input", "3x8x8", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"params": 224' in proc.stdout  # 8 * 3 * 3 * 3 weights + 8 biases
    # the same through `python -m harness`: the two entry points agree
    module = subprocess.run(
        [sys.executable, "-m", "harness", "profile", "cwd_net:net", "--input", "3x8x8"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert module.returncode == 0, module.stderr
    # a module that is nowhere: the hint says where it is looked for
    err = assert_one_line_error(cnnbench("profile", "nowhere_net:net", cwd=tmp_path), "profile")
    assert "No module named 'nowhere_net'" in err and "the current directory" in err


# ------------------------------------------------ issue 16: models registered in a suite file


def test_a_suite_files_models_are_seen_with_their_input(cli, tmp_path: Path) -> None:
    suite = tmp_path / "suites" / "test_hardening_mine.py"
    suite.parent.mkdir()
    suite.write_text(MY_CNN_SUITE)
    # without the suite the name is unknown, and the message says how to make it known
    err = assert_one_line_error(cli("profile", "hardening_cnn"), "profile")
    assert "unknown model 'hardening_cnn'" in err and "--suite" in err
    # with it: the registered input, not 3x224x224
    proc = cli("profile", "hardening_cnn", "--suite", suite)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("hardening_cnn: input 3x64x64, batch 1, float32\n")
    # a directory of suites imports its test files, as pytest collects them
    proc = cli("models", "hardening*", "--suite", suite.parent, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("hardening_cnn,3x64x64,3x8x8,")
    # module:factory naming the registered factory uses its registration (a fresh import)
    proc = cli("profile", "test_hardening_mine:hardening_cnn", pythonpath=suite.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("test_hardening_mine:hardening_cnn: input 3x64x64, batch 1")
    # a suite path that is not there
    err = assert_one_line_error(cli("models", "--suite", tmp_path / "nope.py"), "models")
    assert "nope.py" in err and "does not exist" in err


# ------------------------------------------ issue 16: torchvision built for another torch


def fake_package(root: Path, name: str, version: str, body: str) -> None:
    """A package ``name`` (with dist-info metadata, so its version is known) whose import runs
    ``body``: what a torchvision wheel built for another torch does on import."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(body)
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


MISMATCH = "raise RuntimeError('operator torchvision::nms does not exist')\n"


@pytest.mark.parametrize("name", ["torchvision:resnet50", "timm:resnet50"])
def test_a_torchvision_for_another_torch_is_one_line(cli, tmp_path: Path, name: str) -> None:
    import torch

    fake_package(tmp_path, "torchvision", "0.19.0", MISMATCH)
    fake_package(tmp_path, "timm", "1.0.9", "import torchvision\n")
    err = assert_one_line_error(cli("profile", name, pythonpath=tmp_path), "profile")
    assert f"torch {torch.__version__} and torchvision 0.19.0 do not match" in err
    assert "operator torchvision::nms does not exist" in err
    assert "pip install" in err and "torchvision" in err.split("pip install", 1)[1]


# --------------------------------------------------------------- item 14: Ctrl-C, exit 130


@pytest.fixture(scope="module")
def many_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs of 1,500 cases each: enough work that a compare or report is still running
    seconds after the signal could come. One row is written by ResultWriter (schema and
    metadata as the runner writes them), then repeated under 1,500 model names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    n = 1500
    for name, scale in (("A", 1.0), ("B", 1.1)):
        lat = scale * 0.01 * np.exp(0.05 * rng.standard_normal(51))
        med = float(np.median(lat))
        with ResultWriter(root / name, run_id=f"run-{name}") as w:
            w.add_case(
                {
                    "case_id": "m0",
                    "model": "m0",
                    "input_shape": "3x224x224",
                    "batch_size": 1,
                    "dtype": "float32",
                    "dtype_method": "autocast",
                    "memory_format": "contiguous",
                    "mode": "inference",
                    "compiled": False,
                    "device": "cpu",
                    "device_name": "cpu",
                    "host": "box",
                    "cpu_threads": 2,
                    "torch_version": "2.13.0",
                    "status": "ok",
                    "latency_s_samples": lat,
                    "latency_s_median": med,
                    "throughput_per_s": 1 / med,
                }
            )
        path = root / name / f"run-{name}.parquet"
        one = pq.read_table(path)
        many = pa.concat_tables([one] * n)
        names = pa.array([f"m{i}" for i in range(n)])
        for column in ("model", "case_id"):
            i = many.schema.get_field_index(column)
            many = many.set_column(i, many.schema.field(i), names)
        pq.write_table(many, path)
    return {"A": root / "A", "B": root / "B", "root": root}


def _inside_main(pid: int) -> bool:
    """True once the child has loaded numpy's extension: the command modules import it inside
    ``harness.cli.main.main``, so a signal from then on reaches the command."""
    try:
        return "_multiarray_umath" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _start(argv: list[str | Path]) -> tuple[subprocess.Popen[str], float]:
    """Start the command and wait until it is inside ``main``; the time it got there."""
    proc = subprocess.Popen(
        [str(SCRIPT), *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while not _inside_main(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc, time.monotonic()


def _argv(command: str, many_cases: dict[str, Path], out: Path) -> list[str | Path]:
    return {
        "compare": ["compare", many_cases["A"], many_cases["B"], "--resamples", "20000"],
        "report": ["report", many_cases["A"], many_cases["B"], "-o", out / "r.html"],
    }[command]


@pytest.fixture(scope="module")
def work_s(many_cases: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """How long each command works once inside ``main``, from one uninterrupted run here: the
    signal is then sent at a fraction of it, so it lands mid-work on a fast or a slow machine
    (a fixed delay either came after a fast machine had finished or before a slow one began)."""
    took = {}
    for command in ("compare", "report"):
        out = tmp_path_factory.mktemp(f"full-{command}")
        proc, inside = _start(_argv(command, many_cases, out))
        proc.communicate(timeout=300)
        assert proc.returncode == 0, command
        took[command] = time.monotonic() - inside
    return took


def interrupt(argv: list[str | Path], delay_s: float) -> tuple[int, str, str]:
    proc, _ = _start(argv)
    time.sleep(delay_s)
    assert proc.poll() is None, "the command ended before the signal: give it more work"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.serial  # the signal lands at a fraction of a time measured in another run
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("fraction", [0.0, 0.5])
@pytest.mark.parametrize("command", ["compare", "report"])
def test_ctrl_c_is_one_line_exit_130_and_leaves_no_file(
    many_cases: dict[str, Path], work_s: dict, tmp_path: Path, command: str, fraction: float
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert work_s[command] > 0.3, f"{command} finished too soon to be interrupted: more cases"
    code, out, err = interrupt(_argv(command, many_cases, out_dir), fraction * work_s[command])
    assert code == 130, (code, err[-3000:])
    assert err == f"cnnbench {command}: interrupted\n", err[-3000:]
    assert out == ""
    assert list(out_dir.iterdir()) == []  # no report, no temporary file


# ------------------------------------------------- item 18: a failed zoo import is retried


def test_a_failed_zoo_import_is_reported_again_on_the_next_call() -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Broken(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "harness.models.zoo.vgg":
                    raise ImportError("vgg is being edited")
                return None

        finder = Broken()
        sys.meta_path.insert(0, finder)
        from harness.models import get_entry, list_models
        for attempt in (1, 2):
            try:
                list_models()
            except ImportError as exc:
                print(attempt, exc)
        sys.meta_path.remove(finder)
        print(3, get_entry("vgg16").input_shape, len(list_models("resnet*")) > 0)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "1 vgg is being edited",
        "2 vgg is being edited",
        "3 (3, 224, 224) True",
    ]
