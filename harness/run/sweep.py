"""A sweep: the policy across the cases of one run, shared by the pytest plugin, pytest-xdist
workers and the Python API.

``Sweep.run(case)`` decides whether and how a case runs, runs it, and writes its row at once
(harness.results.store.ResultWriter). Cases are measured in **blocks**: the case asked for and
the next planned ones (``Sweep.plan``: the run's cases in order, each with the test that owns
it), opened together and timed in windows interleaved in a random order
(harness.run.schedule), in the test process or in a child per model or case under crash
isolation (harness.run.isolation). Every row of a block is written as soon as it is final;
a later test whose case was measured in an earlier block gets its row back. Without a plan a
block is the one case. The rules:

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
  the process that runs the cases; the grid puts the batch sizes of one build together);
* **blocks** (``block_cases``, 8 by default) never mix devices nor hold a compiled case with
  others (Dynamo's caches are reset after one), stay within one model on a GPU (one child's
  caching allocator and cuDNN autotuner cache), within one group of models under xdist (the
  scheduler's unit: harness.plugin.xdist), and within the budget;
* every row records the test that measured it (``test_name``), the worker (``worker``) and how
  it was isolated (``isolation``).

Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.core.errors import InvalidInputError
from harness.core.spec import Case
from harness.results.store import ResultWriter
from harness.run.hang import hang_limit_s
from harness.run.hosts import Hosts
from harness.run.isolation import ISOLATIONS
from harness.run.options import RunOptions
from harness.run.outcome import CaseInterrupted, CaseResult, ResultsNotWritable, base_row
from harness.run.schedule import BlockInterrupted, run_block
from harness.run.step import ModelCache

BLOCK_CASES = 8  # cases interleaved in one block (their windows spread over its time)

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
        block_cases: int = BLOCK_CASES,
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
        self._oom_at: dict[Case, int] = {}
        self._hung: dict[str, str] = {}  # model -> the case that hung, and how
        self.measure_roofs = roofs
        self._roofs: dict[tuple[str, str], dict[str, float]] = {}
        if not (isinstance(block_cases, int) and block_cases >= 1):
            raise InvalidInputError(f"block_cases must be a whole number >= 1, got {block_cases!r}")
        self.block_cases = block_cases
        self._plan: list[Case] = []
        self._planned: dict[Case, int] = {}  # its place in the plan
        self._owner: dict[Case, str | None] = {}
        self._group: Callable[[Case], Hashable] = lambda case: None
        self._results: dict[Case, CaseResult] = {}
        self.hosts = Hosts(
            isolate, self.environment, self.models, self.run_facts, cuda_index,
            limit=self.hang_limit, hung=self._hung_in,
        )  # fmt: skip
        self._blocks = 0
        self._retried: set[Case] = set()

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
                env = self.hosts.facts().environment(device)
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
        """The test that measures ``case`` in this run: the first that selected it (None if
        none did yet)."""
        owner = self._owner.get(case)
        return None if case not in self._owner else (owner or "(no test)")

    def _skip(self, case: Case, reason: str) -> CaseResult:
        result = CaseResult(case, base_row(case, self.environment(case.device)))
        result.row.update(
            status="skipped",
            error=reason,
            timestamp_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        return result

    def _precheck(self, case: Case, budget: bool = True) -> str | None:
        """Why ``case`` is not run (None: run it); ``budget=False`` leaves the budget out (a
        block was formed within it)."""
        if self.poisoned:
            return f"not run: this process is unusable after a sticky CUDA error ({self.poisoned})"
        if case.model in self._hung:
            return f"not run: the model did not answer ({self._hung[case.model]})"
        smaller = self._oom_at.get(case.series)
        if smaller is not None and case.batch_size > smaller:
            return f"batch {smaller} already ran out of memory"
        if budget and self.max_minutes is not None:
            budget_s = 60 * self.max_minutes
            used = time.time() - self.started
            need = self.progress.estimate_s(case.model)
            if used + need > budget_s:
                return (
                    f"budget: {used / 60:.1f} of {self.max_minutes:g} min used; this case "
                    f"needs about {need:.0f} s (--cnn-max-minutes)"
                )
        return None

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
                cols = self.hosts.facts().roofs(case.device, case.dtype, threads)
            self._roofs[key] = cols
        return self._roofs[key]

    def hang_limit(self, case: Case) -> tuple[float, str]:
        """How long a call of ``case`` (its open, a window, its finish) may go without an answer
        from its child before the child is killed as hung, and why (harness.run.hang): from the
        model's earlier cases, bounded by the budget; ``timeout_s`` given to the Sweep
        overrides it."""
        if self.timeout_s:
            return self.timeout_s, "the sweep's timeout"
        cap = self.options.max_time_s or 0.0
        planned = 4 * cap * (1 + self.options.remeasure)  # the rounds, with room for more
        known = case.model in self.progress.by_model
        left = (
            None
            if self.max_minutes is None
            else 60 * self.max_minutes - (time.time() - self.started)
        )
        expected = self.progress.estimate_s(case.model) if known else None
        return hang_limit_s(expected, planned, compiled=case.compile, budget_left_s=left)

    def _hung_in(self, case: Case, how: str) -> None:
        """Like an OOM: the model's other cases are not run (each would hang)."""
        self._hung.setdefault(case.model, f"{case.case_id} gave {how}")

    # -- the plan and its blocks ---------------------------------------------------------------

    def plan(
        self,
        entries: Sequence[tuple[Case, str | None]],
        group: Callable[[Case], Hashable] | None = None,
    ) -> None:
        """The run's cases in the order their tests run, each with the test that owns it (the
        first to select it: one case, one row). ``group(case)``: blocks never cross it (the
        xdist scheduler's unit: a worker measures only what it was given)."""
        for case, test_name in entries:
            if case not in self._owner:
                self._owner[case] = test_name
                self._planned[case] = len(self._plan)
                self._plan.append(case)
        if group is not None:
            self._group = group

    def _block(self, case: Case) -> list[Case]:
        """``case`` and the planned cases after it that join its block (the module doc)."""
        block = [case]
        if case.compile or case not in self._planned:
            return block
        start = self._planned[case] + 1
        need = self._expected_s(case)
        for other in self._plan[start:]:
            if len(block) >= self.block_cases:
                break
            if other in self._results or other.compile or other.device != case.device:
                continue
            if self._group(other) != self._group(case):
                continue
            if case.device.startswith("cuda") and other.model != case.model:
                break
            if self.max_minutes is not None:
                need += self._expected_s(other)
                if time.time() - self.started + need > 60 * self.max_minutes:
                    break
            block.append(other)
        return block

    def _expected_s(self, case: Case) -> float:
        """A case's expected wall time: from the sweep's cases so far, or, before any case
        ended, what the timing settings imply (harness.run.plan), never 0: a block formed
        before anything is known stays within the budget too."""
        known = self.progress.estimate_s(case.model)
        if known > 0:
            return known
        from harness.run.plan import make_plan

        return make_plan(1, self.options, case.device).per_case_s(1)

    def _skip_in_block(self, case: Case) -> CaseResult | None:
        reason = self._precheck(case, budget=False)
        return None if reason is None else self._skip(case, reason)

    def _ended(self, result: CaseResult) -> None:
        """A row of the block is final: record it, write it at once."""
        case = result.case
        if result.status == "ok":
            result.row.update(self.roofs(case))
        if self.isolate != "none" and result.row.get("status") != "skipped":
            result.row["isolation"] = self.isolate
        result.row["test_name"] = self._owner.get(case)
        result.row["worker"] = self.worker
        if result.status == "oom":
            known = self._oom_at.get(case.series)
            self._oom_at[case.series] = min(case.batch_size, known or case.batch_size)
        if result.poisoned and self.isolate == "none":
            self.poisoned = f"{case.case_id}: {result.poisoned}"
        if self.isolate == "case":
            self.hosts.close()
        self._results[case] = result
        self.rows.append(result.row)
        self.progress.add(result)
        self._write(result)

    def _measure(self, case: Case) -> None:
        """Measure ``case``'s block; its rows are written as they end."""
        block = self._block(case)
        self.hosts.keep(block)
        for c in block:  # the device's roofs, once, before any window
            self.roofs(c)
        self._blocks += 1
        rng = random.Random(f"{self.run_id}:{self.worker}:{self._blocks}")
        try:
            out = run_block(
                block, self.options, self.hosts.host, rng=rng, skip=self._skip_in_block,
                ended=self._ended,
            )  # fmt: skip
        except BlockInterrupted as stop:
            for result in stop.out.results:
                if result.case not in self._results:
                    self._ended(result)
            if stop.opening is not None and stop.opening not in self._results:
                result = self._skip(stop.opening, "interrupted (Ctrl-C) while the case ran")
                result.row["status"] = "error"
                self._ended(result)
            raise CaseInterrupted(self._results.get(case) or self._results[stop.opening]) from None
        for lost in out.retry:  # its process died while another case ran: measured again
            if lost not in self._results and lost not in self._retried:
                self._retried.add(lost)
                self._measure(lost)

    def run(self, case: Case, *, test_name: str | None = None) -> CaseResult:
        """Run (or skip) ``case`` and write its row; see the module doc for the rules.

        Returns the CaseResult; a case another test measured already comes back ``skipped``
        with ``duplicate_of`` in its row's ``error`` and is not written again. Raises
        ``ResultsNotWritable`` when a row could not be written (the row is in ``rows``),
        and ``CaseInterrupted`` on Ctrl-C after writing the rows measured.
        """
        if case not in self._owner:  # not planned: a block of its own
            self._owner[case] = test_name
        owner = self._owner[case]
        if owner != test_name:
            result = self._skip(case, f"measured already by {owner} (one case, one row)")
            result.row["test_name"] = test_name
            return result
        if case in self._results:
            return self._results[case]
        if self.write_error is not None:
            raise ResultsNotWritable(self.write_error)
        reason = self._precheck(case)
        if reason is not None:
            self._ended(self._skip(case, reason))
            return self._results[case]
        self._measure(case)
        if case not in self._results:  # lost twice: its row says so
            self._ended(self._skip(case, "not measured: its process was lost twice"))
        return self._results[case]

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
        self.hosts.close()

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
