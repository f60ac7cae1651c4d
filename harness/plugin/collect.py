"""Collection: the ``cnn_case`` parametrization of suite tests (harness.run.grid), the built-in
test for models named on the command line, one usage line for a typo in --cnn-models, the
budget's order, and the size of a sweep said before it starts. Its hook functions are
re-exported by harness.plugin.hooks (the plugin's entry point)."""

from __future__ import annotations

import difflib
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.core.spec import Case
from harness.plugin.session import BUILTIN_SUITE, resolve_run, start_sweep
from harness.plugin.state import STATE, State
from harness.run.grid import GridSettings, build_cases, suite_models, unmatched_patterns

# --- collection ------------------------------------------------------------------------------


def _named_models(state: State) -> list[str]:
    """The --cnn-models names no collected suite lists, resolved (torchvision:, timm:,
    package.module:factory, registered); a name that resolves to nothing is kept in
    ``state.model_problems`` for one usage line after collection."""
    from harness.models.resolve import get_entry

    names = []
    for name in state.grid.models or ():
        if any(ch in name for ch in "*?[") or name in state.suite_models:
            continue
        try:
            get_entry(name)
        except HarnessError as exc:
            state.model_problems.append((name, str(exc)))
            continue
        names.append(name)
    return names


def _suite_cases(metafunc: pytest.Metafunc, state: State, marker: Any) -> list[Case]:
    if metafunc.definition.path == BUILTIN_SUITE:  # collected after every suite
        state.extra_models = _named_models(state)
        if not state.extra_models:
            return []
        spec = {**marker.kwargs, "models": state.extra_models}
        settings = GridSettings(**{**state.settings.__dict__, "models": None})
        return build_cases(spec, settings, state.device)
    state.suite_models.update(suite_models(marker.kwargs, state.settings.scale))
    return build_cases(marker.kwargs, state.settings, state.device)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cnn_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("cnnbench")
    if marker is None:
        pytest.fail(
            f"{metafunc.definition.nodeid} uses cnn_case but has no "
            "@pytest.mark.cnnbench(models=[...])",
            pytrace=False,
        )
    state = metafunc.config.stash[STATE]
    resolve_run(state)
    try:
        cases = _suite_cases(metafunc, state, marker)
        problem = None
    except HarnessError as exc:
        problem = str(exc)
    if problem is not None:
        # A suite's own mistake: a one-line collection error for that file, no traceback.
        pytest.fail(f"{metafunc.definition.nodeid}: {problem}", pytrace=False)
    if not cases:
        reason = "no case left after the --cnn-* filters"
        metafunc.parametrize(
            "cnn_case",
            [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
            ids=["no-cases"],
        )
        return
    metafunc.parametrize("cnn_case", cases, ids=[c.case_id for c in cases])


def _is_case(item: pytest.Item) -> bool:
    spec = getattr(item, "callspec", None)
    return spec is not None and isinstance(spec.params.get("cnn_case"), Case)


def _budget_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """Under a budget: every model first (its smallest batch, then its largest), then the
    batches in between, so a budget cut leaves every model measured."""
    spans: dict[tuple, list[int]] = {}
    for item in items:
        if _is_case(item):
            c = item.callspec.params["cnn_case"]
            spans.setdefault(c.series, []).append(c.batch_size)

    def rank(pair: tuple[int, pytest.Item]) -> tuple[int, int]:
        i, item = pair
        if not _is_case(item):
            return (0, i)
        c = item.callspec.params["cnn_case"]
        sizes = spans[c.series]
        phase = 0 if c.batch_size == min(sizes) else 1 if c.batch_size == max(sizes) else 2
        return (phase, i)

    return [item for _, item in sorted(enumerate(items), key=rank)]


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A --cnn-models pattern that matches no model is a typo: say so instead of skipping every
    case; drop the built-in test when it has nothing to run; order for a budget; and say how
    big a sweep is before it starts."""
    state = config.stash[STATE]
    items[:] = [i for i in items if not (i.path == BUILTIN_SUITE and not _is_case(i))]
    known = state.suite_models | set(state.extra_models)
    if state.model_problems:
        name, problem = state.model_problems[0]
        if ":" not in name:  # a plain name: a typo of a suite's model, most likely
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else "`cnnbench models` lists them"
            problem = f"{name!r} matches no model of the collected suites; {hint}"
        raise pytest.UsageError(f"--cnn-models: {problem}")
    if state.grid.models and known:
        missing = unmatched_patterns(state.grid.models, known)
        if missing:
            close = sorted(
                {
                    c
                    for p in missing
                    for c in difflib.get_close_matches(p, sorted(known), n=3, cutoff=0.5)
                }
            )
            hint = f"closest: {', '.join(close)}" if close else "`cnnbench models` lists them"
            raise pytest.UsageError(
                f"--cnn-models: {', '.join(repr(p) for p in missing)} matches no model of the "
                f"collected suites; {hint}"
            )
    if state.max_minutes is not None:
        items[:] = _budget_order(items)
    cases = [i for i in items if _is_case(i)]
    if cases and state.role != "controller" and state.sweep is None:
        start_sweep(config, state)


def case_test_name(item: pytest.Item) -> str:
    """The test that owns a case's row (``file::function``), as the ``cnn_bench`` fixture
    names it."""
    name = item.nodeid.split("[")[0]
    if name.startswith("::"):  # a file outside the rootdir (the built-in test)
        name = f"{item.path.name}{name}"
    return name


def pytest_collection_finish(session: pytest.Session) -> None:
    """The final order of the cases (after -k, -m, --lf and every other plugin) is the sweep's
    plan and its size: the progress counter counts the cases that will run, and blocks of
    interleaved cases follow the order (harness.run.sweep). Under xdist a worker's blocks stay
    within one group of models, the scheduler's unit (harness.plugin.xdist). ``--cnn-plan``
    prints the estimate and exits here."""
    state = session.config.stash.get(STATE, None)
    if state is None or state.role == "controller":
        return
    entries = [
        (item.callspec.params["cnn_case"], case_test_name(item))
        for item in session.items
        if _is_case(item)
    ]
    state.total = len(entries)
    if state.role == "main":
        if state.plan:
            _print_plan(session.config, state, len(entries))
            pytest.exit("--cnn-plan: nothing measured", returncode=0)
        _warn_size(session.config, state, state.total)
    if state.sweep is None or not entries:
        return
    group = None
    if state.role == "worker":  # the scheduler's groups, from the same collection
        from harness.plugin.xdist import groups_of, model_of

        groups = groups_of([item.nodeid for item in session.items], state.block_cases)
        group = lambda case: groups.get(model_of(f"[{case.case_id}]") or "")  # noqa: E731
    state.sweep.plan(entries, group)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    state = node.config.stash[STATE]
    if state.total is None:
        state.total = sum(1 for i in ids if "[" in i and not i.endswith("[no-cases]"))
        if state.plan:
            _print_plan(node.config, state, state.total)
            pytest.exit("--cnn-plan: nothing measured", returncode=0)
        _warn_size(node.config, state, state.total)


def _plan_text(state: State, n: int) -> str:
    from harness.run.plan import describe, make_plan

    plan = make_plan(n, state.options, state.device or "cpu", workers=max(1, state.workers))
    return describe(plan)


def _print_plan(config: pytest.Config, state: State, n: int) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    text = _plan_text(state, n)
    if tr is not None:
        tr.write_line(text)
    else:
        print(text)


def _warn_size(config: pytest.Config, state: State, n: int) -> None:
    """Before a large sweep, on a CPU or a GPU: the case count, the time the settings imply
    (harness.run.plan), a hint."""
    if n <= 100 or state.smoke:
        return
    tr = config.pluginmanager.get_plugin("terminalreporter")
    text = (
        f"{_plan_text(state, n)}. Narrow it with --cnn-models, --cnn-batch-sizes or -k, set "
        "--cnn-max-minutes, or see it alone with --cnn-plan"
    )
    if tr is not None:
        tr.write_line(text, yellow=True)
