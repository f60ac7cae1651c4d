"""A sweep: the policy across the cases of one run, shared by the pytest plugin, pytest-xdist
workers and the Python API.

``Sweep.run(case)`` decides whether and how a case runs, runs it (harness.run.runner.run_case, in a
child process under crash isolation: harness.run.isolation), and writes its row at once
(harness.results.store.ResultWriter):

* **one case, one row**: a case a second test of the suite selects again is not measured
  again: the second test is told which test measured it, and nothing is written twice;
* **until out of memory**: once a case runs out of memory, the same configuration at a larger
  batch is recorded ``skipped`` without running;
* **a budget** (``max_minutes``): a case that would end past the budget (estimated from the
  cases finished so far: the same model's, else all) is recorded ``skipped`` with reason
  "budget";
* **a broken process runs nothing more**: after a sticky CUDA error in the test process
  (without isolation) every later case is ``skipped`` with the reason; under isolation the
  child that hit it leaves and the next case gets a fresh one;
* **models are built once** per configuration and reused across batch sizes (a ModelCache in
  the process that runs the cases);
* every row records the test that measured it (``test_name``), the worker (``worker``) and how
  it was isolated (``isolation``).

Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, InvalidInputError
from harness.core.spec import Case
from harness.results.store import ResultWriter
from harness.run.hang import hang_limit_s
from harness.run.isolation import ISOLATIONS, CaseProcess
from harness.run.options import RunOptions
from harness.run.outcome import CaseInterrupted, CaseResult, ResultsNotWritable, base_row
from harness.run.runner import run_case
from harness.run.step import ModelCache

RUN_FACT_COLUMNS = ("command_line", "git_commit", "git_dirty", "host", "harness_version")


@dataclass
class Progress:
    """How far the sweep is: cases done and their wall time, overall and by model (the budget's
    estimate of a case; the progress line's ETA is the plugin's, over every worker)."""

    done: int = 0
    wall_s: float = 0.0
    by_model: dict[str, list[float]] = field(default_factory=dict)

    def add(self, result: CaseResult) -> None:
        self.done += 1
        self.wall_s += result.wall_s
        self.by_model.setdefault(result.case.model, []).append(result.wall_s)

    def estimate_s(self, model: str) -> float:
        """Expected wall time of one more case of ``model``."""
        mine = self.by_model.get(model)
        if mine:
            return sum(mine) / len(mine)
        return self.wall_s / self.done if self.done else 0.0


class Sweep:
    """The cases of one run. ``results_dir=None`` writes nothing (a smoke run).

    ``isolate``: ``model`` / ``case`` (a child process; see harness.run.isolation) or ``none``.
    ``run_id``, ``writer_name``, ``join``, ``merge``: how this process writes its part of the
    run (an xdist worker joins the controller's run id and leaves the merge to it).
    ``environment``: the run's facts for the rows (collected once; a callable per device).
    ``roofs``: measure the device's roofs once per dtype and add them to the rows (the plugin
    does; a few seconds).
    """

    def __init__(
        self,
        options: RunOptions | None = None,
        *,
        results_dir: str | Path | None = None,
        run_id: str | None = None,
        isolate: str = "none",
        max_minutes: float | None = None,
        started: float | None = None,
        writer_name: str = "main",
        join: bool = False,
        merge: bool = True,
        worker: str = "main",
        cuda_index: int | None = None,
        environment: Callable[[str], dict[str, Any]] | None = None,
        timeout_s: float | None = None,
        roofs: bool = False,
    ) -> None:
        if isolate not in ISOLATIONS:
            raise InvalidInputError(
                f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolate!r}"
            )
        if max_minutes is not None and not 0 < max_minutes < 1e7:
            raise InvalidInputError(f"the budget must be more than 0 minutes, got {max_minutes}")
        self.options = options or RunOptions()
        self.isolate = isolate
        self.max_minutes = max_minutes
        self.started = time.time() if started is None else started
        self.worker = worker
        self.cuda_index = cuda_index
        self.timeout_s = timeout_s
        self._environment = environment
        self._environments: dict[str, dict[str, Any]] = {}
        self._run_facts: dict[str, Any] | None = None
        self.writer = (
            ResultWriter(results_dir, run_id, name=writer_name, join=join, merge=merge)
            if results_dir is not None
            else None
        )
        self.run_id = self.writer.run_id if self.writer is not None else run_id
        self.rows: list[dict[str, Any]] = []  # the run's rows for the summary (no frames)
        self.progress = Progress()
        self.models = ModelCache()
        self.poisoned: str | None = None
        self.write_error: str | None = None
        self._measured_by: dict[Case, str] = {}
        self._oom_at: dict[Case, int] = {}
        self._hung: dict[str, str] = {}  # model -> the case that hung, and how
        self._process: CaseProcess | None = None
        self._process_model: str | None = None
        self.measure_roofs = roofs
        self._roofs: dict[tuple[str, str], dict[str, float]] = {}

    # -- the environment of a row ------------------------------------------------------------

    def environment(self, device: str) -> dict[str, Any]:
        """The environment columns of rows on ``device``, collected once per device where the
        cases run: in this process without isolation, else by a child (this process never
        touches the GPU: a CUDA context here would hold memory the child needs), so a row
        skipped before any case ran still names the device it was meant for."""
        if device not in self._environments:
            if self._environment is not None:
                env = self._environment(device)
            elif self.isolate == "none":
                from harness.measure.devices import resolve_device, unavailable_reason
                from harness.measure.env import collect_environment

                resolved = resolve_device(device)
                env = collect_environment(resolved if not unavailable_reason(resolved) else "cpu")
            else:
                env = self._any_child().environment(device)
            self._environments[device] = env
        return self._environments[device]

    def run_facts(self) -> dict[str, Any]:
        """The run's facts that only this process knows (its command line, git state, host),
        collected without touching a GPU."""
        if self._run_facts is None:
            from harness.measure.env import collect_environment

            host = collect_environment("cpu")
            self._run_facts = {k: host.get(k) for k in RUN_FACT_COLUMNS}
        return self._run_facts

    # -- one case ----------------------------------------------------------------------------

    def measured_by(self, case: Case) -> str | None:
        """The test that already measured ``case`` in this run (None if none did)."""
        return self._measured_by.get(case)

    def _skip(self, case: Case, reason: str) -> CaseResult:
        result = CaseResult(case, base_row(case, self.environment(case.device)))
        result.row.update(
            status="skipped",
            error=reason,
            timestamp_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        return result

    def _precheck(self, case: Case) -> str | None:
        """Why ``case`` is not run (None: run it)."""
        if self.poisoned:
            return f"not run: this process is unusable after a sticky CUDA error ({self.poisoned})"
        if case.model in self._hung:
            return f"not run: the model did not answer ({self._hung[case.model]})"
        smaller = self._oom_at.get(case.series)
        if smaller is not None and case.batch_size > smaller:
            return f"batch {smaller} already ran out of memory"
        if self.max_minutes is not None:
            budget_s = 60 * self.max_minutes
            used = time.time() - self.started
            need = self.progress.estimate_s(case.model)
            if used + need > budget_s:
                return (
                    f"budget: {used / 60:.1f} of {self.max_minutes:g} min used; this case "
                    f"needs about {need:.0f} s (--cnn-max-minutes)"
                )
        return None

    def _child(self, case: Case) -> CaseProcess:
        if self._process is not None and (
            self.isolate == "case" or self._process_model != case.model
        ):
            self._process.close()
            self._process = None
        if self._process is None:
            from harness.models.resolve import get_entry

            imports = []
            with contextlib.suppress(HarnessError):
                module = getattr(get_entry(case.model).factory, "__module__", None)
                if module and not module.startswith("harness.") and module != "__main__":
                    imports.append(module)
            self._process = CaseProcess(
                imports=imports,
                run_facts=self.run_facts(),
                cuda_index=self.cuda_index,
                label=self.isolate,
            )
            self._process_model = case.model
        return self._process

    def _any_child(self) -> CaseProcess:
        """The child process of the moment, or one without suite imports (for facts)."""
        if self._process is None:
            self._process = CaseProcess(
                imports=[], run_facts=self.run_facts(), cuda_index=self.cuda_index,
                label=self.isolate,
            )  # fmt: skip
            self._process_model = None
        return self._process

    def roofs(self, case: Case) -> dict[str, float]:
        """The measured roofs of the case's device at its dtype (harness.measure.roofs), taken
        once per run before the first case that needs them: a short GEMM and a copy, a few
        seconds. Under isolation a child measures them, so this process never touches a GPU."""
        threads = case.threads if case.threads is not None else self.options.threads
        key = (case.device, case.dtype, threads)  # a CPU's roof depends on its threads
        if not self.measure_roofs:
            return {}
        if key not in self._roofs:
            cols: dict[str, float] = {}
            if self.isolate == "none":
                from harness.measure.devices import resolve_device
                from harness.measure.roofs import roof_columns
                from harness.measure.timing import fixed_threads

                with contextlib.suppress(Exception), fixed_threads(threads):  # none: a null
                    cols = roof_columns(resolve_device(case.device), case.torch_dtype)
            else:
                cols = self._child(case).roofs(case.device, case.dtype, threads)
            self._roofs[key] = cols
        return self._roofs[key]

    def _execute(self, case: Case) -> CaseResult:
        if self.isolate == "none":
            return run_case(
                case, self.options, environment=self.environment(case.device), models=self.models
            )
        child = self._child(case)
        timeout, why = self.hang_limit(case)
        result = child.run(case, self.options, timeout_s=timeout, why_limit=why)
        if child.hung:  # like an OOM: the model's other cases are not run (each would hang)
            self._hung[case.model] = f"{case.case_id} gave {child.hung}"
        return result

    def hang_limit(self, case: Case) -> tuple[float, str]:
        """How long ``case`` may run in its child before it is killed as hung, and why
        (harness.run.isolation.hang_limit_s): from the model's earlier cases, bounded by the
        budget; ``timeout_s`` given to the Sweep overrides it."""
        if self.timeout_s:
            return self.timeout_s, "the sweep's timeout"
        cap = self.options.max_time_s or 0.0
        planned = 4 * cap * (1 + self.options.remeasure)  # the rounds, with room for a re-measure
        known = case.model in self.progress.by_model
        left = (
            None
            if self.max_minutes is None
            else 60 * self.max_minutes - (time.time() - self.started)
        )
        expected = self.progress.estimate_s(case.model) if known else None
        return hang_limit_s(expected, planned, compiled=case.compile, budget_left_s=left)

    def run(self, case: Case, *, test_name: str | None = None) -> CaseResult:
        """Run (or skip) ``case`` and write its row; see the module doc for the rules.

        Returns the CaseResult; a case another test measured already comes back ``skipped``
        with ``duplicate_of`` in its row's ``error`` and is not written again. Raises
        ``ResultsNotWritable`` when the row could not be written (the row is in ``rows``),
        and ``CaseInterrupted`` on Ctrl-C after writing the row.
        """
        from harness.run.outcome import CaseInterrupted

        earlier = self._measured_by.get(case)
        if earlier is not None and earlier != test_name:
            result = self._skip(case, f"measured already by {earlier} (one case, one row)")
            result.row["test_name"] = test_name
            return result
        self._measured_by[case] = test_name or "(no test)"
        reason = self._precheck(case)
        interrupted: CaseInterrupted | None = None
        if reason is not None:
            result = self._skip(case, reason)
        else:
            try:
                roofs = self.roofs(case)
                result = self._execute(case)
                if result.status == "ok":
                    result.row.update(roofs)
            except CaseInterrupted as stop:
                interrupted, result = stop, stop.result
        result.row["test_name"] = test_name
        result.row["worker"] = self.worker
        if result.status == "oom":
            known = self._oom_at.get(case.series)
            self._oom_at[case.series] = min(case.batch_size, known or case.batch_size)
        if result.poisoned and self.isolate == "none":
            self.poisoned = f"{case.case_id}: {result.poisoned}"
        self.rows.append(result.row)
        self.progress.add(result)
        self._write(result)
        if interrupted is not None:
            raise interrupted
        return result

    def _write(self, result: CaseResult) -> None:
        if self.writer is None or self.write_error is not None:
            return
        tables = {"layers": result.layers}
        if result.power is not None:
            tables["power"] = result.power
        try:
            self.writer.add_case(result.row, **tables)
        except OSError as exc:
            lost = isinstance(exc, FileNotFoundError)  # the directory went: its rows with it
            kept = "" if lost or len(self.rows) < 2 else "; the rows written before are kept"
            self.write_error = (
                f"results could not be written to {self.writer.results_dir}: "
                f"{exc.strerror or exc}{kept}"
            )
            raise ResultsNotWritable(self.write_error) from None

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None

    def finish(self, complete: bool = True) -> dict[str, Path]:
        """Stop the child process and merge the run's files (when this sweep merges); -> the
        run's files by table. A merge that fails (a full disk) leaves the parts, which
        ``load_results`` reads, and raises ResultsNotWritable saying so."""
        self.close()
        if self.writer is None:
            return {}
        try:
            self.writer.finish(complete=complete and self.write_error is None)
        except FileNotFoundError as exc:  # the parts were removed: nothing stays readable
            raise ResultsNotWritable(exc.strerror or str(exc)) from None
        except OSError as exc:
            raise ResultsNotWritable(
                f"the run's parts could not be merged in {self.writer.results_dir}: "
                f"{exc.strerror or exc}; every written case stays readable in "
                f"{self.writer.parts} (cnnbench report/compare read it)"
            ) from None
        return self.writer.paths
