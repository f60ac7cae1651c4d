"""harness.measure.env: the environment record's columns, facts read from the system (not
invented), git state of a real temporary repository, and GPU facts matched to NVML by UUID."""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import harness
from harness.core.errors import InvalidInputError
from harness.core.schema import column_names
from harness.measure import env as env_mod
from harness.measure.env import (
    ENV_COLUMNS,
    RUN_FACTS,
    collect_environment,
    cpu_model,
    git_state,
    machine_info,
    ram_bytes,
)

GPU_COLUMNS = ("gpu_uuid", "gpu_pci_bus_id", "gpu_memory_bytes", "driver_version")


def test_cpu_record_has_exactly_the_schema_columns() -> None:
    env = collect_environment("cpu", threads=1)
    assert tuple(env) == ENV_COLUMNS
    assert set(ENV_COLUMNS) <= set(column_names("cases"))
    for col in GPU_COLUMNS:
        assert env[col] is None
    assert env["cudnn_benchmark"] is None
    assert env["device_name"] == env["cpu_model"] == cpu_model()
    assert env["cpu_cores"] == os.cpu_count()
    assert env["cpu_threads"] == 1
    assert env["torch_version"] == torch.__version__
    assert env["cuda_version"] == torch.version.cuda
    assert env["python_version"] == platform.python_version()
    assert env["harness_version"] == harness.__version__
    assert env["host"] == platform.node()
    assert env["command_line"] == shlex.join(sys.argv)


def test_threads_default_to_torch_current_count() -> None:
    assert collect_environment("cpu")["cpu_threads"] == torch.get_num_threads()


def test_cpu_model_from_proc_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    )
    assert cpu_model(info) == "Intel(R) Xeon(R) Platinum 8480+"


def test_cpu_model_without_a_model_line_is_not_invented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nCPU part\t: 0xd0c\n")
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_model(info) is None
    assert cpu_model(tmp_path / "missing") is None


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="needs /proc/meminfo")
def test_ram_matches_proc_meminfo() -> None:
    kib = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    assert ram_bytes() == kib * 1024


def test_ram_falls_back_to_meminfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sysconf(name: str) -> int:
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", no_sysconf)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384 kB\nMemFree:         1000 kB\n")
    assert ram_bytes(meminfo) == 16384 * 1024
    assert ram_bytes(tmp_path / "missing") is None


# --- git -------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "proj"
    r.mkdir()
    _git(r, "init", "-q", "-b", "main")
    (r / "suite.py").write_text("x = 1\n")
    _git(r, "add", "suite.py")
    _git(r, "commit", "-q", "-m", "first")
    return r


def test_git_state_of_a_clean_then_dirty_checkout(repo: Path) -> None:
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert git_state(repo) == (head, False)
    (repo / "suite.py").write_text("x = 2\n")
    assert git_state(repo) == (head, True)
    _git(repo, "checkout", "-q", "--", "suite.py")
    (repo / "new_suite.py").write_text("")  # untracked: may be what ran
    assert git_state(repo) == (head, True)


def test_git_state_reads_the_cwd_by_default(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / ".")
    commit = collect_environment("cpu")["git_commit"]
    assert commit == (repo / ".git" / "refs" / "heads" / "main").read_text().strip()


def test_git_state_outside_a_repo_or_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_state(lone) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert git_state(repo) == (None, None)


# --- GPU -------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_cuda_without_cuda_is_a_typed_error() -> None:
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        collect_environment("cuda")


def test_bad_device() -> None:
    with pytest.raises(InvalidInputError):
        collect_environment("gpu0")


class FakeNvml:
    """Stands in for pynvml: knows one GPU by UUID; looking one up by index is an error."""

    class NVMLError(Exception):
        pass

    def __init__(self, uuid: str, bus_id: bytes, driver: str, init_fails: bool = False) -> None:
        self.uuid, self.bus_id, self.driver, self.init_fails = uuid, bus_id, driver, init_fails
        self.looked_up: list[str] = []
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_fails:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.looked_up.append(uuid)
        if uuid != self.uuid:
            raise self.NVMLError("Not Found")
        return "handle"

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        raise AssertionError("GPUs must be matched by UUID, never by index")

    def nvmlDeviceGetPciInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(busId=self.bus_id)


def fake_cuda(monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml, **props: object) -> list[int]:
    """torch.cuda with two GPUs, current device 1; returns the indices asked for."""
    base = {"name": "NVIDIA H100 80GB HBM3", "total_memory": 85_045_231_616, "uuid": "1a2b-3c"}
    p = SimpleNamespace(**{**base, **props})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    seen: list[int] = []

    def get_props(i: int) -> SimpleNamespace:
        seen.append(i)
        return p

    monkeypatch.setattr(torch.cuda, "get_device_properties", get_props)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(env_mod, "_proc_driver_version", lambda: None)
    return seen


def test_gpu_facts_matched_to_nvml_by_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml("GPU-1a2b-3c", b"00000000:65:00.0", "550.54.15")
    asked = fake_cuda(monkeypatch, nvml)
    env = collect_environment("cuda:1", threads=4)
    assert asked == [1]
    assert nvml.looked_up == ["GPU-1a2b-3c"]  # torch's UUID, with NVML's GPU- prefix
    assert nvml.shutdowns == 1
    assert env["device_name"] == "NVIDIA H100 80GB HBM3"
    assert env["cpu_model"] == cpu_model()
    assert env["gpu_uuid"] == "GPU-1a2b-3c"
    assert env["gpu_pci_bus_id"] == "00000000:65:00.0"
    assert env["gpu_memory_bytes"] == 85_045_231_616
    assert env["driver_version"] == "550.54.15"
    assert env["cudnn_benchmark"] == (
        bool(torch.backends.cudnn.benchmark) if torch.backends.cudnn.is_available() else None
    )


def test_mig_uuid_is_matched_with_nvmls_mig_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    # In MIG mode CUDA (so torch) reports the instance's UUID; NVML names it MIG-<uuid>
    nvml = FakeNvml("MIG-1a2b-3c", b"00000000:65:00.0", "550.54.15")
    fake_cuda(monkeypatch, nvml)
    env = collect_environment("cuda:1")
    assert nvml.looked_up == ["GPU-1a2b-3c", "MIG-1a2b-3c"]
    assert env["gpu_uuid"] == "MIG-1a2b-3c"
    assert env["gpu_pci_bus_id"] == "00000000:65:00.0"
    assert nvml.shutdowns == 1


def test_gpu_facts_without_nvml_are_null_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml("GPU-1a2b-3c", b"", "", init_fails=True)
    asked = fake_cuda(monkeypatch, nvml)
    env = collect_environment("cuda")
    assert asked == [1]  # no index: the current device
    assert env["gpu_uuid"] == "GPU-1a2b-3c"
    assert env["driver_version"] is None
    assert env["gpu_pci_bus_id"] is None


def test_pci_bus_id_from_torch_when_nvml_cannot_say(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml("GPU-other", b"", "", init_fails=True)
    fake_cuda(monkeypatch, nvml, pci_domain_id=0, pci_bus_id=0x65, pci_device_id=0)
    assert collect_environment("cuda:0")["gpu_pci_bus_id"] == "00000000:65:00.0"


def test_real_nvml_absent_here_gives_nulls() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        uuid = "GPU-00000000-0000-0000-0000-000000000000"
        assert env_mod._nvml_facts([uuid]) == (None, None, None)
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML is present on this machine")


def test_proc_driver_version_parse(tmp_path: Path) -> None:
    f = tmp_path / "version"
    f.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )
    assert env_mod._proc_driver_version(f) == "535.104.05"
    f.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release\n")
    assert env_mod._proc_driver_version(f) == "570.86.15"
    assert env_mod._proc_driver_version(tmp_path / "missing") is None


# --- pytest-benchmark's machine_info ---------------------------------------------------------


def test_machine_info_holds_the_machine_facts_only() -> None:
    env = collect_environment("cpu", threads=1)
    info = machine_info(env)
    assert set(info) == set(ENV_COLUMNS) - RUN_FACTS
    assert {"git_commit", "command_line", "cpu_threads"} <= RUN_FACTS
    for k, v in info.items():
        assert v == env[k]
        assert v is None or isinstance(v, (str, int))
