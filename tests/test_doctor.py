"""`cnnbench doctor`: the verdict rules from numbers (the GPU ones included, since they are pure
functions), the command on this CPU machine (a real self-test; GPU checks unavailable with the
reason), the JSON shape and exit codes, and the GPU facts through the real pynvml on the stand-in
NVML library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.cli.main import main
from harness.core.errors import InvalidInputError
from harness.doctor import checks, report, selftest
from harness.doctor import compile as compile_check
from harness.doctor.checks import FAIL, PASS, UNAVAILABLE, WARN
from tests.nvml_stub import scenarios
from tests.nvml_stub.fixtures import spawn_pool, stub_dir, stub_lib

__all__ = ["stub_dir", "stub_lib"]  # fixtures used below

CHECK_NAMES = ["timing", "energy", "memory", "compile", "failure_recovery"]


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "ratio", "status"),
    [
        ("cuda", 1.00, PASS),
        ("cuda", 1.049, PASS),
        ("cuda", 0.979, WARN),  # a hair faster than the GPU ran: suspicious, not yet wrong
        ("cuda", 0.90, FAIL),  # less than the GPU ran: unsynchronised
        ("cuda", 1.20, WARN),
        ("cuda", 1.30, FAIL),
        ("cpu", 0.96, PASS),
        ("cpu", 1.10, WARN),
        ("cpu", 1.20, FAIL),
    ],
)
def test_timing_bands(kind: str, ratio: float, status: str) -> None:
    check = checks.judge_timing(kind, ratio * 0.010, 0.010)
    assert check.status == status
    assert check.numbers["ratio"] == pytest.approx(ratio)
    assert "PASS in" in check.rule and "WARN in" in check.rule


def test_an_unsynchronised_gpu_timing_says_so() -> None:
    check = checks.judge_timing("cuda", 0.0004, 0.010)  # launches timed, not the work
    assert check.status == FAIL and "not synchronised" in check.reason


def test_timing_within_the_repeats_own_spread_is_undecided_not_failed() -> None:
    check = checks.judge_timing("cpu", 0.012, 0.010, spread=0.35)  # 20% off, 35% noise
    assert check.status == WARN and check.reason.startswith("undecided")
    assert checks.judge_timing("cpu", 0.012, 0.010, spread=0.05).status == FAIL


@pytest.mark.parametrize(
    ("counter", "trace", "scope", "kind", "status"),
    [
        (300.0, 297.0, "gpu", "instant_field", PASS),
        (300.0, 270.0, "gpu", "instant_field", WARN),
        (300.0, 200.0, "gpu", "instant_field", FAIL),
        (300.0, 299.0, "module", "instant_field", WARN),  # scopes differ: never a clean PASS
    ],
)
def test_energy_bands(counter: float, trace: float, scope: str, kind: str, status: str) -> None:
    check = checks.judge_energy(counter, trace, energy_scope=scope, trace_kind=kind)
    assert check.status == status
    assert check.numbers["ratio"] == pytest.approx(counter / trace)
    if scope == "module":
        assert "whole module" in check.reason


def test_memory_bounds() -> None:
    mib = 1 << 20
    assert checks.judge_memory("cpu", 30 * mib, 20 * mib, 100 * mib).status == PASS
    low = checks.judge_memory("cpu", 10 * mib, 20 * mib, 100 * mib)
    assert low.status == FAIL and "below the largest" in low.reason
    assert checks.judge_memory("cpu", 101 * mib, 20 * mib, 100 * mib).status == WARN
    # CUDA allows 64 MiB of library workspaces on top
    assert checks.judge_memory("cuda", 150 * mib, 20 * mib, 100 * mib).status == PASS
    assert checks.judge_memory("cuda", 170 * mib, 20 * mib, 100 * mib).status == WARN


def test_compile_verdicts() -> None:
    assert compile_check.judge_compile(1, 0, True).status == PASS
    assert compile_check.judge_compile(3, 2, True).status == WARN
    eager = compile_check.judge_compile(0, 0, True)
    assert eager.status == FAIL and "ran eager" in eager.reason
    assert compile_check.judge_compile(1, 0, False).status == FAIL


def test_recovery_verdicts() -> None:
    assert checks.judge_recovery("oom", 100, 100 + 4096, True).status == PASS
    assert checks.judge_recovery(None, 100, 100, True).status == FAIL
    inflated = checks.judge_recovery("oom", 100, 100 + (8 << 20), True)
    assert inflated.status == FAIL and "more allocated" in inflated.reason
    assert checks.judge_recovery("oom", None, None, False).status == FAIL


def test_report_exit_code_is_1_only_when_a_check_fails() -> None:
    ok = report.DoctorReport(
        "cpu", {}, [report.Check("a", WARN, ""), report.Check("b", UNAVAILABLE, "")], 1.0
    )
    assert ok.exit_code == 0
    bad = report.DoctorReport(
        "cpu", {}, [report.Check("a", PASS, ""), report.Check("b", FAIL, "")], 1.0
    )
    assert bad.exit_code == 1
    assert bad.to_dict()["summary"] == {PASS: 1, WARN: 0, FAIL: 1, UNAVAILABLE: 0}


# -- devices and bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu0", "mps", "cuda:x"])
def test_bad_devices_are_typed_errors(device: str) -> None:
    with pytest.raises(InvalidInputError):
        selftest.resolve(device)


def test_bad_device_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--device", "gpu0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnbench doctor: error: 'gpu0' is not a device")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_gpu_asked_for_without_cuda_fails_naming_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # issue 22 item 1: the user asked for a CUDA device and CUDA does not work: FAIL, exit 1
    assert selftest.resolve("auto") == torch.device("cpu")
    assert main(["doctor", "--device", "cuda:0", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["device"] == "cuda:0"
    reason = report["machine"]["cuda"]["reason"]
    assert "build without CUDA" in reason  # this machine's torch is a CPU build
    first, *rest = report["checks"]
    assert (first["name"], first["status"]) == ("cuda", FAIL)
    assert first["reason"] == f"CUDA does not work here: {reason}"
    assert [c["name"] for c in rest] == CHECK_NAMES
    for c in rest:
        assert c["status"] == UNAVAILABLE
        assert c["reason"] == f"cuda:0 cannot run: {reason}"
    assert report["exit_code"] == 1 and report["summary"][FAIL] == 1


# -- the real self-test on this CPU ------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_report() -> dict:
    return selftest.run_doctor("cpu").to_dict()


@pytest.mark.slow
def test_the_cpu_self_test_runs_its_checks(cpu_report: dict) -> None:
    by_name = {c["name"]: c for c in cpu_report["checks"]}
    assert list(by_name) == [*CHECK_NAMES, "gpu"]
    for c in cpu_report["checks"]:
        assert c["status"] in (PASS, WARN, FAIL, UNAVAILABLE) and c["reason"]
    # numbers decide: each verdict is what its rule gives for the numbers it shows
    t = by_name["timing"]["numbers"]
    assert t["harness_median_s"] > 0 and t["reference_median_s"] > 0
    again = checks.judge_timing(
        "cpu", t["harness_median_s"], t["reference_median_s"], t["repeat_spread"]
    )
    assert again.status == by_name["timing"]["status"]
    mem = by_name["memory"]
    assert mem["status"] == PASS, mem  # exact tensor bytes between two analytic bounds
    assert mem["numbers"]["source"] == "cpu_tensor_tracker"
    comp = by_name["compile"]
    assert comp["status"] == PASS, comp
    assert comp["numbers"]["dynamo_graphs"] == 1 and comp["numbers"]["dynamo_graph_breaks"] == 0
    rec = by_name["failure_recovery"]
    assert rec["status"] == PASS and rec["numbers"]["classified_as"] == "oom"
    if not cpu_report["machine"]["rapl"]["available"]:
        assert by_name["energy"]["status"] == UNAVAILABLE
        assert by_name["energy"]["reason"] == cpu_report["machine"]["rapl"]["reason"]
    if not torch.cuda.is_available():
        assert by_name["gpu"]["status"] == UNAVAILABLE
        assert "--device cuda:N" in by_name["gpu"]["reason"]
    fails = sum(c["status"] == FAIL for c in cpu_report["checks"])
    assert cpu_report["exit_code"] == (1 if fails else 0)


@pytest.mark.slow
def test_the_report_is_json_and_a_table(cpu_report: dict) -> None:
    from harness.cli.commands.doctor import render_table

    text = json.dumps(cpu_report)
    assert json.loads(text)["device"] == "cpu"
    machine = cpu_report["machine"]
    for key in ("software", "cpu", "cuda", "nvml", "rapl"):
        assert key in machine
    assert machine["software"]["torch"] == torch.__version__
    assert machine["cpu"]["smt"] is not None or machine["cpu"]["smt_reason"]
    table = render_table(cpu_report)
    for c in cpu_report["checks"]:
        assert c["name"] in table and c["status"] in table
    assert table.rstrip().endswith(f"exit status {cpu_report['exit_code']}")
    assert "rules:" in table and "PASS in [0.95, 1.05]" in table


# -- GPU facts through the real pynvml, on the stand-in NVML -----------------------------------


def test_gpu_facts_from_nvml(stub_lib: str, tmp_path: Path) -> None:
    conf = tmp_path / "stub.conf"
    conf.write_text(
        "devices=2\ndev0.uuid=GPU-aaaa\ndev0.name=Stub H200\ndev0.power=250000\n"
        "dev1.uuid=GPU-bbbb\ndev1.mig=1\nenergy_field=1\n"
    )
    env = {"CUDA_VISIBLE_DEVICES": "GPU-aaaa", "CUDA_DEVICE_ORDER": None}
    with spawn_pool() as pool:
        out = pool.submit(scenarios.doctor_facts, stub_lib, str(conf), env).result(timeout=120)
    nvml = out["nvml"]
    assert nvml["available"] and nvml["driver"] == "stub-1.0"
    assert [g["uuid"] for g in nvml["gpus"]] == ["GPU-aaaa", "GPU-bbbb"]
    assert [g["mig_mode"] for g in nvml["gpus"]] == ["disabled", "enabled"]
    readings = out["readings"]
    assert readings["instant_power_w"] == 250.0 and readings["instant_power_reason"] is None
    assert readings["gpu_energy_field_mj"] is not None and readings["c2c_module"] is False
    assert readings["sm_clock_mhz"] == 1410 and readings["power_limit_w"] == 300.0
    monitor = out["power_monitor"]
    assert monitor["source"] == "nvml:gpu_energy_field+instant_field"
    assert monitor["energy_scope"] == "gpu" and monitor["sampler"] == "process"
    assert monitor["counter_step_source"] == "measured"  # the stub's default 100 ms step
    assert monitor["min_window_s"] == pytest.approx(monitor["counter_step_s"] / 0.02)


def test_gpu_facts_without_permission_say_so(stub_lib: str, tmp_path: Path) -> None:
    conf = tmp_path / "stub.conf"
    conf.write_text("ret.field_instant=4\nret.energy=4\n")  # NVML_ERROR_NO_PERMISSION
    with spawn_pool() as pool:
        out = pool.submit(scenarios.doctor_facts, stub_lib, str(conf), {}).result(timeout=120)
    readings = out["readings"]
    assert readings["instant_power_w"] is None
    assert "no permission to read the instant power field" in readings["instant_power_reason"]
    assert "no permission to read the total energy counter" in readings["total_energy_reason"]


def test_other_processes_on_the_gpu_are_a_warning_with_their_count_and_memory() -> None:
    from harness.doctor.processes import judge_processes

    assert judge_processes(0, 0, "NVML").status == PASS
    busy = judge_processes(2, 3 << 30, "NVML")
    assert busy.status == WARN and "2 other process(es) on the GPU, holding 3.0 GiB" in busy.reason
    assert busy.numbers == {"other_processes": 2, "their_memory_bytes": 3 << 30}
    unknown = judge_processes(None, None, "not read: NVML library not found")
    assert unknown.status == UNAVAILABLE and "NVML library not found" in unknown.reason


def test_the_doctor_reports_another_process_on_the_gpu(stub_lib: str, tmp_path: Path) -> None:
    conf = tmp_path / "stub.conf"
    conf.write_text(f"devices=1\ndev0.procs=4242:{3 << 30}\n")
    with spawn_pool() as pool:
        out = pool.submit(scenarios.doctor_processes, stub_lib, str(conf)).result(timeout=120)
    assert out["status"] == WARN, out
    assert out["numbers"] == {"other_processes": 1, "their_memory_bytes": 3 << 30}
