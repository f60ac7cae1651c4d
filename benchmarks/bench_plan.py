"""What the default GPU sweep costs by the harness's own plan (a benchmark, not a test).

    python benchmarks/bench_plan.py

Builds the full GPU grid of suites/ (every test function at ``--cnn-scale=full`` on ``cuda``,
as ``pytest suites/ --benchmark-only --cnn-device=cuda`` collects it) and prints the estimate
``--cnn-plan`` prints (harness.run.plan: the fixed cost per case, the timed windows the ``full``
preset plans, the energy window a case adds for the NVML counter's update period), on one GPU
and on eight, for a counter moving every 20 ms and every 100 ms, and with power off.

No GPU ran this: the fixed cost per GPU case (``plan.FIXED_S['cuda']``) is the stated
assumption of harness.run.plan; the timed part follows from the settings alone. What only a
GPU can confirm: the fixed cost (build, cuDNN's autotuning of each shape, the first call) and
whether the rows reach their precision within the planned windows.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gpu_grid() -> list:
    from harness.run.grid import GridSettings, build_cases

    spec = importlib.util.spec_from_file_location("classic", ROOT / "suites/test_classic_cnns.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    cases = []
    for name in dir(suite):
        fn = getattr(suite, name)
        marks = getattr(fn, "pytestmark", [])
        if name.startswith("test_") and marks:
            cases += build_cases(marks[0].kwargs, GridSettings(scale="full"), "cuda")
    return sorted(set(cases), key=lambda c: c.case_id)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from harness.run.options import preset
    from harness.run.plan import describe, make_plan

    cases = gpu_grid()
    training = sum(c.mode == "training" for c in cases)
    print(f"the full GPU grid of suites/: {len(cases)} cases ({training} training)")
    options = preset("full")
    for power, step in (("auto", 0.02), ("auto", 0.1), ("off", None)):
        opts = replace(options, power=power)
        for workers in (1, 8):
            plan = make_plan(len(cases), opts, "cuda", workers=workers, counter_step_s=step)
            print(f"  power {power}, counter step {step}, {workers} GPU(s): "
                  f"{plan.total_s(1) / 3600:.2f} h typical "
                  f"({plan.total_s(0) / 3600:.2f}-{plan.total_s(2) / 3600:.2f} h)")  # fmt: skip
    print("  " + describe(make_plan(len(cases), options, "cuda", counter_step_s=0.02)))


if __name__ == "__main__":
    main()
