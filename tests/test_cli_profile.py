"""`cnnbench models` and `cnnbench profile`, in-process through harness.cli.main.main and once as a
user runs them (a subprocess)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.cli.main import main
from harness.profile.layers import FRAME_COLUMNS

VGG16_PARAMS = 138_357_544  # torchvision's documented count
VGG16_MACS = 15_470_264_320  # conv 3x3 layers + FC layers, from the formulas


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_table(capsys):
    code, out, err = run(capsys, "models")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["model", "input", "min", "input", "params", "family"]
    vgg16 = next(line for line in lines if line.startswith("vgg16 "))
    assert vgg16.split() == ["vgg16", "3x224x224", "3x32x32", "138.4", "M", "vgg"]
    alexnet = next(line for line in lines if line.startswith("alexnet "))
    assert "3x63x63" in alexnet


def test_models_pattern_and_json(capsys):
    code, out, _ = run(capsys, "models", "resnet*", "--format", "json")
    rows = json.loads(out)
    names = [r["name"] for r in rows]
    # by family, then numbers by value (resnet18 before resnet101), not character by character
    assert code == 0 and names == [
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnet1d18", "resnet1d_multiscale",
    ]  # fmt: skip
    r18 = next(r for r in rows if r["name"] == "resnet18")
    assert r18["params"] == 11_689_512  # torchvision's documented count
    assert r18["input_shape"] == "3x224x224"


def test_models_no_match_is_a_clear_error(capsys):
    code, out, err = run(capsys, "models", "nothing*")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no registered model matches 'nothing*'" in err


def test_profile_table_is_humanised_and_aligned(capsys):
    code, out, err = run(capsys, "profile", "vgg16")
    assert code == 0 and err == ""
    assert "138.4 M (138,357,544" in out
    assert "15.47 GMACs (15,470,264,320; 30.94 GFLOPs)" in out
    assert "57.6 MiB" in out  # 60,448,672 bytes of leaf-layer outputs
    table = out.split("\n\n", 1)[1].splitlines()
    assert table[0].split()[:4] == ["#", "layer", "type", "output"]
    assert len({len(line) for line in table}) == 1  # every row as wide as the header
    conv1 = table[2].split()
    assert conv1[:4] == ["0", "features.0", "Conv2d", "1x64x224x224"]


def test_profile_by_type(capsys):
    code, out, _ = run(capsys, "profile", "vgg16", "--by-type")
    assert code == 0
    linear = next(line for line in out.splitlines() if line.startswith("Linear"))
    # 123,642,856 of 138,357,544 parameters sit in the three FC layers: 89.4%
    assert linear.split()[1:5] == ["3", "123.6", "M", "89.4%"]


def test_profile_json_keys(capsys):
    code, out, _ = run(capsys, "profile", "lenet5", "--format", "json", "--batch", "2")
    data = json.loads(out)
    assert code == 0
    for key in (
        "params",
        "trainable_params",
        "param_bytes",
        "macs",
        "flops",
        "activation_bytes",
        "connections",
        "by_type",
        "layers",
        "unhandled_ops",
    ):
        assert key in data, key
    assert data["flops"] == 2 * data["macs"] and data["batch_size"] == 2
    assert data["params"] == 60_000
    layer = data["layers"][0]
    assert list(layer) == list(FRAME_COLUMNS[:8])
    assert (layer["layer_name"], layer["layer_type"], layer["output_shape"]) == (
        "c1",
        "Conv2d",
        "2x6x28x28",
    )
    assert layer["connections"] == 2 * 122_304  # the paper's C1, twice
    assert {"layer_type", "count", "params", "macs", "activation_bytes"} <= set(data["by_type"][0])


def test_profile_csv(capsys):
    code, out, _ = run(capsys, "profile", "vgg16", "--format", "csv", "--input", "3x64x64",
                       "--dtype", "float16")  # fmt: skip
    frame = pd.read_csv(io.StringIO(out))
    assert code == 0 and tuple(frame.columns) == FRAME_COLUMNS
    assert frame.loc[0, "output_shape"] == "1x64x64x64"
    assert frame.loc[0, "activation_bytes"] == 64 * 64 * 64 * 2  # float16
    assert frame["params"].sum() == VGG16_PARAMS


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["alexnet", "--input", "3x32x32"], "is too small for alexnet"),
        (["resnet18", "--input", "1x224x224"], "expects 3 input channels"),
        (["resnet18", "--input", "224x224"], "takes CxHxW inputs"),
        (["resnet18", "--batch", "0"], "batch size must be at least 1"),
        (["resnet18", "--dtype", "int8"], "unknown dtype 'int8'"),
        (["resnt18"], "unknown model 'resnt18'; closest: resnet18"),
        (["vgg16", "--input", "3xabc"], "cannot read input shape"),
    ],
)
def test_profile_errors_print_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, "profile", *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnbench profile: error: ") and err.count("\n") == 1
    assert needle in err and "Traceback" not in err


def test_as_a_user_runs_it(capsys):
    ok = subprocess.run(
        [sys.executable, "-m", "harness", "profile", "vgg16", "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert (data["params"], data["macs"]) == (VGG16_PARAMS, VGG16_MACS)
    # a bad input through main() (the process's own one line and exit 2 are checked with the
    # installed script in tests/test_cli_hardening.py)
    code, out, err = run(capsys, "profile", "lenet5", "--input", "1x16x16")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "layer c5 (Conv2d) gets 1x16x1x1" in err


# --- profile --measure (measured time per layer) ----------------------------------------------


def _percent(cell: str) -> float:
    return float(cell.rstrip("%"))


def test_profile_measure_table_has_time_beside_macs_and_params(capsys):
    code, out, err = run(capsys, "profile", "lenet5", "--measure", "--steps", "2")
    assert code == 0 and err == ""
    head, table = out.split("\n\n", 1)
    assert "measured     cpu: step median" in head and "median of 2 profiled steps" in head
    assert "coverage" in head and "torch.profiler CPU activity" in head
    lines = table.splitlines()
    assert lines[0].split()[:9] == ["#", "layer", "type", "output", "params", "MACs", "time",
                                    "time", "%"]  # fmt: skip
    assert len({len(line) for line in lines}) == 1  # aligned
    rows = [line.split() for line in lines[2:]]
    assert [r[1] for r in rows][:3] == ["c1", "c1_act", "s2"]
    f6 = next(r for r in rows if r[1] == "f6")
    assert f6[4:8] == ["10.2", "K", "10.08", "KMACs"]  # 120*84+84 params, 120*84 MACs
    shares = [_percent(next(c for c in r if c.endswith("%"))) for r in rows]
    assert sum(shares) == pytest.approx(100, abs=0.1 * len(rows))  # rounded to 0.1% each


def test_profile_measure_by_type_splits_time_macs_params_activations(capsys):
    code, out, _ = run(capsys, "profile", "resnet18", "--input", "3x32x32", "--measure",
                       "--by-type", "--steps", "2")  # fmt: skip
    assert code == 0
    lines = out.split("\n\n", 1)[1].splitlines()
    assert lines[0].split() == ["type", "layers", "time", "time", "%", "MACs", "%", "params",
                                "%", "act", "%"]  # fmt: skip
    by_type = {line.split("  ")[0].strip(): line for line in lines[2:]}
    assert "BasicBlock (own ops)" in by_type  # the residual adds, apart from the layers
    from harness.profile import profile

    total = profile("resnet18", "3x32x32").macs
    conv, linear = by_type["Conv2d"].split(), by_type["Linear"].split()
    assert conv[1] == "20" and linear[1] == "1"
    # the FC layer's 512 x 1000 MACs; the convolutions all the others
    assert _percent(linear[5]) == pytest.approx(100 * 512_000 / total, abs=0.05)
    assert _percent(conv[5]) == pytest.approx(100 * (total - 512_000) / total, abs=0.05)


def test_profile_measure_json_and_csv_carry_time_s(capsys):
    code, out, _ = run(capsys, "profile", "lenet5", "--measure", "--steps", "2", "--batch",
                       "2", "--format", "json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["batch_size"] == 2
    assert all(r["time_s"] is not None and r["time_s"] >= 0 for r in data["layers"])
    assert {r["layer_kind"] for r in data["layers"]} == {"leaf"}
    assert all(r["time_s_backward"] is None for r in data["layers"])  # inference: null
    measured = data["measured"]
    assert measured["layer_time_steps"] == 2 and measured["step_median_s"] > 0
    total = sum(r["time_s"] for r in data["layers"])
    assert measured["layer_time_coverage"] == pytest.approx(total / measured["step_median_s"])
    assert {"time_share", "macs_share", "params_share"} <= set(data["by_type"][0])

    code, out, _ = run(capsys, "profile", "lenet5", "--measure", "--steps", "2",
                       "--format", "csv")  # fmt: skip
    frame = pd.read_csv(io.StringIO(out))
    assert code == 0 and {"time_s", "time_share", "bytes_moved", "layer_kind"} <= set(frame)
    assert frame["time_s"].notna().all() and len(frame) == 14


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["lenet5", "--steps", "2"], "--device and --steps go with --measure"),
        (["lenet5", "--device", "cpu"], "--device and --steps go with --measure"),
        (["lenet5", "--measure", "--steps", "0"], "--steps must be at least 1"),
        (["lenet5", "--measure", "--device", "tpu"], "'tpu' is not a device: use auto, cpu"),
    ],
)
def test_profile_measure_errors_print_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, "profile", *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnbench profile: error: ") and err.count("\n") == 1
    assert needle in err


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the message of a machine without CUDA"
)
def test_profile_measure_on_cuda_without_a_gpu_says_so(capsys):
    code, out, err = run(capsys, "profile", "lenet5", "--measure", "--device", "cuda")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "CUDA is not available here" in err and "--device cpu" in err
