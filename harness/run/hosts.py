"""Where a block's cases run under crash isolation: ``ChildHost`` answers harness.run.schedule's
``open``/``window``/``finish`` from a child process (harness.run.isolation), so the schedule
drives a case in a child exactly as one in the test process (harness.run.session.LocalHost).

A child that dies or hangs takes the case whose call was in flight as ``crashed`` (its windows
so far are kept in the row); the other cases it held are ``lost`` (harness.run.schedule hands
them back to be measured in a later block, in a fresh child).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from harness.core.errors import HarnessError
from harness.core.spec import Case
from harness.run.isolation import CaseProcess
from harness.run.options import RunOptions
from harness.run.outcome import CaseResult, Finished, Opened, WindowRecord
from harness.run.schedule import LOST, Host
from harness.run.step import ModelCache

# How long a call of a case may go without an answer, and why (the sweep's hang limit)
Limit = Callable[[Case], tuple[float, str]]
# Told of a case whose child was killed as hung, and how
Hung = Callable[[Case, str], None]


class ChildHost:
    """A child process's share of a block: the cases opened in it, by case id."""

    def __init__(self, process: CaseProcess, limit: Limit, hung: Hung) -> None:
        self.process = process
        self.limit, self.hung = limit, hung
        self.open_cases: set[str] = set()
        self.lost: dict[str, str] = {}  # case id -> why its process was lost
        self.cupti = False  # a case here was profiled through CUPTI: the child leaves

    def _call(self, call: str, case: Case, *args: Any) -> Any:
        timeout_s, why = self.limit(case)
        reply = self.process.session(call, case, *args, timeout_s=timeout_s, why_limit=why)
        if isinstance(reply, tuple) and reply[:1] == ("interrupted",):
            raise KeyboardInterrupt
        if self.process.hung:  # killed as hung: the model's other cases are not run
            self.hung(case, self.process.hung)
        if isinstance(reply, CaseResult):  # the child died or hung during this call
            why = f"its process was lost while {case.case_id} ran: {reply.row.get('error')}"
            for other in self.open_cases - {case.case_id}:
                self.lost[other] = why
            self.open_cases.clear()
        return reply

    def open(self, case: Case, options: RunOptions) -> Opened:
        reply = self._call("open", case, options)
        if isinstance(reply, CaseResult):
            reply.row["isolation"] = self.process.label
            return Opened(row=reply.row, result=reply, wall_s=reply.wall_s)
        if reply.result is None:
            self.open_cases.add(case.case_id)
        return reply

    def _lost(self, case: Case) -> Finished | None:
        why = self.lost.pop(case.case_id, None)
        return None if why is None else Finished(status=LOST, error=why)

    def window(self, case: Case, index: int, rounds: int) -> WindowRecord | Finished:
        lost = self._lost(case)
        if lost is not None:
            return lost
        reply = self._call("window", case, index, rounds)
        if isinstance(reply, CaseResult):
            return Finished(status="crashed", error=reply.row.get("error"), wall_s=reply.wall_s)
        if isinstance(reply, Finished):
            self.open_cases.discard(case.case_id)
        return reply

    def finish(self, case: Case, value_s: float, samples_per_window: int) -> Finished:
        lost = self._lost(case)
        if lost is not None:
            return lost
        reply = self._call("finish", case, value_s, samples_per_window)
        self.open_cases.discard(case.case_id)
        if isinstance(reply, CaseResult):
            return Finished(status="crashed", error=reply.row.get("error"), wall_s=reply.wall_s)
        # a case profiled through CUPTI: the child leaves once no case of it is open (_child)
        from harness.measure.profiling import profiled_through_cupti  # torch: in the child

        self.cupti = self.cupti or profiled_through_cupti(reply.columns)
        if self.cupti and not self.open_cases:
            self.process.close()
            self.cupti = False
        return reply

    def abandon(self, case: Case) -> None:
        self.open_cases.discard(case.case_id)
        if self.process.alive:
            self.process.session("abandon", case, timeout_s=10.0)


class Hosts:
    """A sweep's hosts: the test process (``isolate="none"``: one ``LocalHost`` and its model
    cache), or a child per model or per case, kept while the cases of the next block need
    them; and a child without suite imports for the device's facts and roofs."""

    def __init__(
        self,
        isolate: str,
        environment: Callable[[str], dict[str, Any]],
        models: ModelCache,
        run_facts: Callable[[], dict[str, Any]],
        cuda_index: int | None,
        *,
        limit: Limit,
        hung: Hung,
    ) -> None:
        self.isolate, self.environment, self.models = isolate, environment, models
        self.run_facts, self.cuda_index = run_facts, cuda_index
        self.limit, self.hung = limit, hung
        self._local: Host | None = None
        self._children: dict[str, ChildHost] = {}
        self._facts: CaseProcess | None = None

    def _key(self, case: Case) -> str:
        return case.case_id if self.isolate == "case" else case.model

    def host(self, case: Case) -> Host:
        if self.isolate == "none":
            if self._local is None:
                from harness.run.session import LocalHost

                self._local = LocalHost(self.environment, self.models)
            return self._local
        key = self._key(case)
        if key not in self._children:
            self._children[key] = ChildHost(self._child(case), self.limit, self.hung)
        return self._children[key]

    def _child(self, case: Case | None) -> CaseProcess:
        imports = []
        if case is not None:
            from harness.models.resolve import get_entry

            with contextlib.suppress(HarnessError):
                module = getattr(get_entry(case.model).factory, "__module__", None)
                if module and not module.startswith("harness.") and module != "__main__":
                    imports.append(module)
        return CaseProcess(
            imports=imports, run_facts=self.run_facts(), cuda_index=self.cuda_index,
            label=self.isolate,
        )  # fmt: skip

    def facts(self) -> CaseProcess:
        """The child for the device's facts and roofs (closed when a block starts)."""
        if self._facts is None:
            self._facts = self._child(None)
        return self._facts

    def keep(self, cases: Iterable[Case]) -> None:
        """Close every child the next block's ``cases`` do not need (and the facts child)."""
        wanted = {self._key(c) for c in cases}
        for key in [k for k in self._children if k not in wanted]:
            self._children.pop(key).process.close()
        if self._facts is not None:
            self._facts.close()
            self._facts = None

    def close(self) -> None:
        self.keep(())
