"""`cnnbench compare` across a setting (issue 25): a 1-thread and a 2-thread run give a verdict
per model without extra flags; --across splits one input by a setting; two settings at once are
refused with their names; throughput prints in samples/s; --changed leaves noise out.

Latency samples are seeded log-normal draws around known medians (as in test_compare.py): the
expected verdicts follow from the medians chosen here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.cli.compare_text import human
from harness.cli.main import main
from harness.compare import compare_runs
from harness.core.errors import InvalidInputError
from harness.results import ResultWriter
from tests.test_compare import row, samples


def write(directory: Path, rows: list[dict[str, Any]]) -> Path:
    with ResultWriter(directory) as w:
        for r in rows:
            w.add_case(r)
    return directory


def cpu_row(model: str, median: float, seed: int, threads: int | None, ran: int,
            **over: Any) -> dict[str, Any]:  # fmt: skip
    r = row(model, 1, samples(median, seed), "Test CPU", threads=threads, cpu_threads=ran,
            **over)  # fmt: skip
    return {**r, "device": "cpu"}


def thread_runs(tmp_path: Path) -> tuple[Path, Path]:
    """resnet18 twice as fast on 2 threads, lenet5 the same, resnet50 noisy on 2 threads."""
    t1 = write(tmp_path / "res_t1", [
        cpu_row("resnet18", 0.060, 1, 1, 1), cpu_row("lenet5", 0.002, 2, 1, 1),
        cpu_row("resnet50", 0.200, 3, 1, 1)])  # fmt: skip
    t2 = write(tmp_path / "res_t2", [
        cpu_row("resnet18", 0.030, 4, 2, 2), cpu_row("lenet5", 0.002, 5, 2, 2),
        cpu_row("resnet50", 0.090, 6, 2, 2, validity="noisy",
                validity_reason="CPU pressure 0.41 > 0.1")])  # fmt: skip
    return t1, t2


def test_a_1_and_a_2_thread_run_give_a_verdict_per_model(tmp_path: Path, capsys: Any) -> None:
    t1, t2 = thread_runs(tmp_path)
    with pytest.raises(InvalidInputError, match="no common cases"):  # the whole key: none
        compare_runs(t1, t2, across=None)
    assert main(["compare", str(t1), str(t2), "--metric", "latency"]) == 0
    out = capsys.readouterr().out
    assert "compared across threads: baseline 1, candidate 2" in out
    verdicts = dict(
        line.split()[0:5:4] for line in out.split("per model (latency)")[1].splitlines()[3:6]
    )
    assert verdicts == {"resnet18": "faster", "lenet5": "same", "resnet50": "noisy"}
    comp = compare_runs(t1, t2, metrics=["latency"])
    model = comp.models.set_index("model")
    assert model.loc["resnet18", "geomean_ratio"] == pytest.approx(0.5, rel=0.05)
    assert list(comp.across["setting"]) == ["threads"]


def test_torch_default_threads_read_as_what_ran(tmp_path: Path) -> None:
    base = write(tmp_path / "default", [cpu_row("resnet18", 0.030, 7, None, 2)])
    one = write(tmp_path / "one", [cpu_row("resnet18", 0.060, 8, 1, 1)])
    comp = compare_runs(base, one, metrics=["latency"])
    across = comp.across.iloc[0]
    assert (across["baseline_value"], across["candidate_value"]) == ("2 (default)", "1")
    assert comp.models.iloc[0]["verdict"] == "slower"


def test_one_input_is_split_across_a_setting(tmp_path: Path, capsys: Any) -> None:
    both = write(tmp_path / "sweep", [
        cpu_row("resnet18", 0.030, 9, None, 2), cpu_row("vgg16", 0.300, 10, None, 2),
        cpu_row("resnet18", 0.015, 11, None, 2, dtype="bfloat16", dtype_method="cast"),
        cpu_row("vgg16", 0.300, 12, None, 2, dtype="bfloat16", dtype_method="cast")])  # fmt: skip
    assert main(["compare", str(both), "--across", "dtype", "--metric", "latency"]) == 0
    out = capsys.readouterr().out
    assert f"{both} [bfloat16] vs {both} [float32]" in out
    assert "compared across dtype: baseline float32, candidate bfloat16" in out
    assert main(["compare", str(both)]) == 2
    assert "--across SETTING" in capsys.readouterr().err


def test_two_settings_at_once_are_named(tmp_path: Path, capsys: Any) -> None:
    a = write(tmp_path / "a", [cpu_row("resnet18", 0.030, 13, 1, 1)])
    b = write(tmp_path / "b", [cpu_row("resnet18", 0.030, 14, 2, 2, dtype="bfloat16")])
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "differ in threads, dtype" in err and "--across" in err
    assert main(["compare", str(a), str(b), "--across", "threads"]) == 2  # dtype still differs
    assert main(["compare", str(a), str(b), "--across", "speed"]) == 2


def test_throughput_prints_in_samples_per_second() -> None:
    """Issue 25: 0.865 samples/s printed as 865m/s."""
    assert human(0.865, "samples/s") == "0.865 samples/s"
    assert human(1234.5, "samples/s") == "1.23 K samples/s"
    assert human(0.0421, "J") == "0.0421 J"


def test_changed_leaves_the_noise_out(tmp_path: Path, capsys: Any) -> None:
    t1, t2 = thread_runs(tmp_path)
    assert main(["compare", str(t1), str(t2), "--metric", "latency", "--changed"]) == 0
    out = capsys.readouterr().out
    table = out.split("per model")[0]
    assert "resnet18" in table and "lenet5" not in table and "resnet50" not in table
    assert "1 case(s) measured noisy or invalid on a side are not listed" in out
    assert main(["compare", str(t1), str(t2), "--metric", "latency", "--changed",
                 "--include-noisy"]) == 0  # fmt: skip
    assert "resnet50" in capsys.readouterr().out.split("per model")[0]
    assert main(["compare", str(t1), str(t2), "--metric", "latency", "--valid-only"]) == 0
    table = capsys.readouterr().out.split("per model")[0]
    assert "lenet5" in table and "resnet50" not in table.split("not valid")[0]
