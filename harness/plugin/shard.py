"""A shard of a sweep in the plugin (harness.cluster): ``--cnn-shard=I/N --cnn-sweep=ID`` writes
into the shard's leaf of the results tree under the sweep's run id (the merging process locks
it, an earlier attempt's files are reopened), and keeps the shard's part of the plan after every
other filter, less the cases an earlier run of the shard did.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.core.spec import Case
from harness.plugin.state import STATE, State

SHARD_SLOT = pytest.StashKey[Any]()
REFUSED = "cnnbench_shard_refused"  # a worker's refusal of the shard, for the controller


def _case_of(item: pytest.Item) -> Case | None:
    spec = getattr(item, "callspec", None)
    case = spec.params.get("cnn_case") if spec is not None else None
    return case if isinstance(case, Case) else None


def configure_shard(config: pytest.Config, state: State) -> None:
    """--cnn-shard / --cnn-sweep: the run writes into its shard's leaf of the results tree,
    under the sweep's id; the process that merges locks the leaf (one writer per shard)."""
    config.pluginmanager.register(_ShardHooks(), "cnnbench-shard")
    if state.results_dir is None:  # a smoke run writes nothing: the selection alone
        return
    from harness.cluster.slot import open_slot

    try:
        slot = open_slot(
            state.results_dir, state.sweep_id, *state.shard, owner=state.role != "worker"
        )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.add_cleanup(slot.release)
    config.stash[SHARD_SLOT] = slot
    state.results_dir = slot.leaf
    state.run_id = slot.sweep


class _ShardHooks:
    """Registered for a sharded run. The selection comes after every other filter (-k, -m,
    --benchmark-only), so the plan holds exactly the cases the shards run. A shard with nothing
    left to run (its cases done, or more shards than cases) ends with exit 0, not pytest's 5
    ("no tests ran"), which a scheduler would retry as a failure."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]):
        state = config.stash[STATE]
        _select_shard(config, state, items)
        state.total = sum(1 for i in items if _case_of(i) is not None)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist (controller side): a worker that refused the shard (its plan differs from
        the sweep's) stops the run with its one line."""
        refused = getattr(node, "workeroutput", {}).get(REFUSED)
        state = node.config.stash[STATE]
        if refused and state.refused is None:
            state.refused = refused

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = session.config.stash[STATE]
        if state.refused is not None:
            tr = session.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(f"ERROR: {state.refused}", red=True)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        slot = session.config.stash.get(SHARD_SLOT, None)
        if slot is not None and slot.reopened and state.sweep is None and state.role == "main":
            # an earlier attempt's rows reopened, and no case collected to start the sweep
            # that would have merged them back
            from harness.results.store import merge_parts

            merge_parts(slot.leaf, slot.sweep, complete=exitstatus in (0, 5))
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK


def _select_shard(config: pytest.Config, state: State, items: list[pytest.Item]) -> None:
    """Keep this shard's part of the plan, less what an earlier run of the shard did."""
    from harness.cluster.slot import select

    cases = [_case_of(i) for i in items]
    slot = config.stash.get(SHARD_SLOT, None)
    try:
        chosen = select(cases, *state.shard, options=state.options, slot=slot)
    except HarnessError as exc:
        if state.role == "worker":  # raised here, xdist's controller would crash on it: the
            # worker runs nothing and the controller stops the run with this line (below)
            config.workeroutput[REFUSED] = str(exc)  # type: ignore[attr-defined]
            config.hook.pytest_deselected(items=list(items))
            items[:] = []
            return
        raise pytest.UsageError(str(exc)) from None
    dropped = [i for i, keep in zip(items, chosen.keep, strict=True) if not keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i, keep in zip(items, chosen.keep, strict=True) if keep]
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None and state.role == "main":
        label = slot.label if slot is not None else f"shard {state.shard[0]}/{state.shard[1]}"
        tr.write_line(chosen.line(label))
