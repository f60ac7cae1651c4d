"""The windows schedule: the cases of a block are opened, then timed in windows interleaved in
a random order, then finished; each row is assembled from its windows (torch-free: the
sessions that time them live where the cases run, harness.run.session).

Why windows, and why interleaved: a machine that changes speed for seconds at a time (this
VM's host, 1.7x in spells of 0.1-10 s; a GPU at its power cap or warming up) puts one long
window inside one state, where it looks tight and is 1.4x off the next run. Repeating the
measurement at a higher level (Kalibera & Jones, ISMM 2013; pyperf's many processes) and
interleaving the repetitions of different benchmarks in a random order (Google Benchmark's
``--benchmark_enable_random_interleaving``, google/benchmark#1051; RMIT, Abedi & Brecht,
ICPE 2017) spreads each case's windows over the block's time, so the machine's states fall on
windows of every case alike and disagreeing windows show them.

A block (harness.run.sweep forms them) runs in three phases:

1. **open** each case in order (profile, pre-check, build, first call, warm-up): a case that
   fails or is skipped there ends with its row;
2. **windows**: pass ``w`` times window ``w`` of every case that plans one, the cases in a fresh
   random order each pass (a seeded ``random.Random``: the order is reproducible, never
   systematic); then **extra windows** (``remeasure`` passes of half the planned count) for
   the cases whose row could still become valid or reach the interval target within their time
   cap, never for a case whose disagreement is structural (no number of windows would make
   enough of them agree);
3. **finish** each case (memory, layer times, energy in its own window) and assemble its row.

Hosts answer ``open``/``window``/``finish``: the test process itself (``LocalHost``) or a child
per model or case (harness.run.isolation). A child that dies takes its case's row as
``crashed``; the other cases it held are handed back to be measured in a later block.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from harness.core import windows as win
from harness.core.signals import assess
from harness.core.spec import Case
from harness.core.stats import MIN_SAMPLES_FOR_CI, half_width_rel, summarize
from harness.run.options import RunOptions
from harness.run.outcome import CaseResult, Finished, Opened, WindowRecord

STOP_REASONS = ("planned", "target", "time_cap", "structural")
LOST = "lost"  # a Finished status: the case's process died while another case ran in it


class Host(Protocol):
    def open(self, case: Case, options: RunOptions) -> Opened: ...
    def window(self, case: Case, index: int, rounds: int) -> WindowRecord | Finished: ...
    def finish(self, case: Case, value_s: float, samples_per_window: int) -> Finished: ...
    def abandon(self, case: Case) -> None: ...


@dataclass
class _Open:
    """A case of the block between open and finish."""

    case: Case
    host: Host
    opened: Opened
    windows: list[WindowRecord] = field(default_factory=list)
    extra: int = 0
    stop: str = "planned"
    wall_s: float = 0.0

    @property
    def timed_s(self) -> float:
        return sum(sum(w.samples_s) for w in self.windows)


@dataclass
class BlockResult:
    """The block's rows in the order its cases were given, and the cases to measure again in
    a later block (their process died while another case ran)."""

    results: list[CaseResult] = field(default_factory=list)
    retry: list[Case] = field(default_factory=list)


class BlockInterrupted(KeyboardInterrupt):
    """Ctrl-C during a block: ``out`` holds the rows so far (the open cases' with the windows
    they had, status error); ``opening`` is the case whose open was interrupted (no row yet)."""

    def __init__(self, out: BlockResult, opening: Case | None) -> None:
        super().__init__("interrupted")
        self.out, self.opening = out, opening


def interleave(counts: Sequence[int], rng: random.Random) -> list[tuple[int, int]]:
    """``(case, window)`` in running order: pass ``w`` holds window ``w`` of every case that
    plans more than ``w`` windows, in a fresh random order."""
    order: list[tuple[int, int]] = []
    for w in range(max(counts, default=0)):
        order += [(i, w) for i in _pass(counts, w, rng)]
    return order


def _pass(counts: Sequence[int], w: int, rng: random.Random) -> list[int]:
    todo = [i for i, n in enumerate(counts) if n > w]
    rng.shuffle(todo)
    return todo


def model_groups(models: Sequence[str], block_cases: int) -> dict[str, int]:
    """Consecutive models (one entry per case, in run order) grouped until a group holds
    ``block_cases`` cases; a model's cases are all in one group. pytest-xdist's scheduler hands
    out whole groups (harness.plugin.xdist), and a worker's blocks stay inside one, so every
    worker interleaves the cases it was given and nothing else."""
    counts: dict[str, int] = {}
    for model in models:
        counts[model] = counts.get(model, 0) + 1
    groups: dict[str, int] = {}
    group = size = 0
    for model, n in counts.items():
        if size and size + n > block_cases:
            group, size = group + 1, 0
        groups[model] = group
        size += n
    return groups


def run_block(
    cases: Sequence[Case],
    options: RunOptions,
    host_for: Callable[[Case], Host],
    *,
    rng: random.Random,
    skip: Callable[[Case], CaseResult | None] = lambda case: None,
    ended: Callable[[CaseResult], None] = lambda result: None,
) -> BlockResult:
    """Open, time (interleaved) and finish ``cases``; see the module doc. ``skip(case)`` gives
    the row of a case not to open (a larger batch after an out-of-memory one), asked just
    before it would be; ``ended(result)`` is told of each row as soon as it is final."""
    block = _Block(options, rng, ended)
    opening: Case | None = None
    try:
        for case in cases:
            skipped = skip(case)
            if skipped is not None:
                block.end(skipped)
                continue
            opening = case
            host = host_for(case)
            opened = host.open(case, options)
            opening = None
            if opened.result is not None:
                block.end(opened.result)
                continue
            block.live.append(_Open(case, host, opened, wall_s=opened.wall_s))
        block.windows(list(block.live), [o.opened.windows for o in block.live])
        block.extra_windows()
        for item in list(block.live):
            block.finish(item)
    except KeyboardInterrupt:
        for item in block.live:  # nothing measured is lost: the rows of what was measured
            with contextlib.suppress(Exception):  # the row matters, not the clean-up
                item.host.abandon(item.case)
            block.done[item.case] = _assemble(item, _interrupted(item), options)
        block.out.results = [block.done[c] for c in cases if c in block.done]
        raise BlockInterrupted(block.out, opening) from None
    block.out.results = [block.done[c] for c in cases if c in block.done]
    return block.out


class _Block:
    """The state of one block while it runs: its open cases, its rows, its retries."""

    def __init__(
        self, options: RunOptions, rng: random.Random, ended: Callable[[CaseResult], None]
    ) -> None:
        self.options, self.rng, self.ended = options, rng, ended
        self.live: list[_Open] = []
        self.done: dict[Case, CaseResult] = {}
        self.out = BlockResult()

    def end(self, result: CaseResult) -> None:
        self.done[result.case] = result
        self.ended(result)

    def _over(self, item: _Open, finished: Finished) -> None:
        """``item`` left the block: its row, or a retry when its process was lost."""
        self.live.remove(item)
        if finished.status == LOST:
            self.out.retry.append(item.case)
        else:
            self.end(_assemble(item, finished, self.options))

    def windows(self, items: list[_Open], more: Sequence[int]) -> None:
        """``more[i]`` windows of ``items[i]``, pass by pass in ``interleave``'s order (each
        pass's cases in a fresh random order); a case whose window failed ends. A case whose
        first window shows its estimate was off by 2x is planned again from that window (a
        warm-up call slowed by a burst of load must not cut its windows)."""
        goal = [len(item.windows) + n for item, n in zip(items, more, strict=True)]
        w = 0
        while True:
            counts = [g - w for g in goal]
            todo = [i for i in _pass(counts, 0, self.rng) if items[i] in self.live]
            if not todo:
                return
            for i in todo:
                item = items[i]
                if item not in self.live:
                    continue
                record = item.host.window(item.case, len(item.windows), item.opened.rounds)
                if isinstance(record, Finished):
                    self._over(item, record)
                    continue
                item.windows.append(record)
                item.wall_s += record.wall_s
                if len(item.windows) == 1 and _replan(item, self.options):
                    goal[i] = item.opened.windows
            w += 1

    def extra_windows(self) -> None:
        """Up to ``remeasure`` passes of half the planned windows for the cases where more
        windows pay (``_worth_more``), each pass interleaved like the first."""
        for _ in range(self.options.remeasure):
            extra = [(item, n) for item in self.live if (n := _worth_more(item, self.options))]
            if not extra:
                return
            for item, n in extra:
                item.extra += n
            self.windows([item for item, _ in extra], [n for _, n in extra])
        for item in self.live:  # why the last pass was the last
            _worth_more(item, self.options)

    def finish(self, item: _Open) -> None:
        finished = item.host.finish(item.case, _value(item), item.opened.rounds)
        if finished.status != LOST:
            self.live.remove(item)
            self.end(_assemble(item, finished, self.options))
        else:
            self._over(item, finished)


def _replan(item: _Open, options: RunOptions) -> bool:
    """Plan ``item``'s windows again from its first window's median when the calibration's
    estimate was off by more than 2x; whether the plan changed."""
    first = item.windows[0]
    per_call = float(np.median(first.samples_s))
    estimate = item.opened.estimate_s
    if estimate <= 0 or 0.5 <= per_call / estimate <= 2.0:
        return False
    windows, rounds = win.window_plan(
        per_call, windows=options.windows, min_rounds=options.min_rounds,
        min_time_s=options.min_time_s, max_time_s=options.max_time_s,
    )  # fmt: skip
    item.opened.estimate_s, item.opened.rounds = per_call, rounds
    item.opened.windows = max(windows, len(item.windows))
    return True


def _value(item: _Open) -> float:
    """The row's value from the windows so far (the layer times' coverage is against it)."""
    samples = [s for w in item.windows for s in w.samples_s]
    ids = [w.index for w in item.windows for _ in w.samples_s]
    return win.split(samples, ids).central() if samples else 0.0


def _worth_more(item: _Open, options: RunOptions) -> int:
    """Extra windows for ``item`` (0: none; ``item.stop`` says why): more windows pay only
    while the row is short of valid, or of the interval target, for a reason more windows can
    fix, and the case's time cap allows them."""
    if not item.windows:
        return 0
    samples = np.concatenate([w.samples_s for w in item.windows])
    ids = np.concatenate([[w.index] * len(w.samples_s) for w in item.windows])
    windows = win.split(samples, ids)
    count = windows.count
    n = max(1, math.ceil(item.opened.windows / 2), win.MIN_WINDOWS - count)
    agree = int(windows.agreeing().sum())
    if agree >= win.needed(count):
        lo, hi = win.interval(windows, n_resamples=400)
        half = half_width_rel(lo, hi, windows.central())
        target = options.ci_target or None
        enough = int(windows.agreeing_samples().size) >= MIN_SAMPLES_FOR_CI
        if enough and (target is None or (half is not None and half <= target)):
            item.stop = "target" if item.extra else "planned"
            return 0
    fit = n
    if options.max_time_s is not None:
        per_window = float(np.median(samples)) * item.opened.rounds
        fit = min(n, int((options.max_time_s - item.timed_s) // max(per_window, 1e-12)))
    if fit < 1:
        item.stop = "time_cap"
        return 0
    if agree + fit < win.needed(count + fit):  # even that many agreeing would not do
        item.stop = "structural" if fit == n else "time_cap"
        return 0
    return fit


# --- the row ---------------------------------------------------------------------------------


def window_columns(records: Sequence[WindowRecord]) -> dict[str, Any]:
    """The timing columns of a row from its windows: every sample with its window id, the
    summary statistics of all samples, the row's value (harness.core.windows: the median of
    the windows that agree with the fastest) and its hierarchical interval, the windows'
    number and spread in time, and the noise of the windows that speak for the row."""
    records = sorted(records, key=lambda w: w.index)
    samples = [s for w in records for s in w.samples_s]
    ids = [w.index for w in records for _ in w.samples_s]
    windows = win.split(samples, ids)
    value = windows.central()
    cols: dict[str, Any] = {**summarize(samples)}
    agreeing = windows.agreeing()
    lo = hi = None
    if int(sum(len(g) for g, k in zip(windows.groups, agreeing, strict=True) if k)) >= (
        MIN_SAMPLES_FOR_CI
    ):
        lo, hi = win.interval(windows)
    first = records[0].start_s
    cols.update(
        latency_s_median=value,
        latency_s_median_ci_low=lo,
        latency_s_median_ci_high=hi,
        latency_s_samples=samples,
        latency_s_window_ids=ids,
        windows=windows.count,
        windows_agreeing=int(agreeing.sum()),
        window_spread=windows.spread(),
        window_starts_s=[w.start_s - first for w in records],
        windows_span_s=records[-1].start_s - first + sum(records[-1].samples_s),
        window_speed_probe=[w.noise.get("speed_probe_ratio") for w in records],
    )
    from harness.measure.noise import aggregate  # torch-free

    by_index = dict(zip(windows.ids.tolist(), agreeing.tolist(), strict=True))
    kept = [w for w in records if by_index.get(w.index)]
    cols.update(aggregate([w.noise for w in kept]) if kept else {})
    gpu = [(w.noise["gpu"], w.noise.get("elapsed_s") or 0.0) for w in kept if "gpu" in w.noise]
    if gpu:
        from harness.measure.gpu_watch import over_windows  # no NVML call: arithmetic

        cols.update(over_windows(gpu))
    return cols


def _assemble(item: _Open, finished: Finished, options: RunOptions) -> CaseResult:
    """The case's row: what open measured, its windows, what finish measured, the verdict."""
    row = dict(item.opened.row)
    if item.windows:
        row.update(window_columns(item.windows))
        row["throughput_per_s"] = item.case.batch_size / row["latency_s_median"]
    row.update(finished.columns)
    row.update(
        ci_target=options.ci_target or None,
        stop_reason=item.stop if finished.status == "ok" else None,
        remeasured=item.extra,
        status=finished.status,
        error=finished.error,
        timestamp_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if finished.status == "ok":
        row["validity"], row["validity_reason"] = assess(row)
        if finished.invalid:  # it did not measure the case it names
            why = row["validity_reason"]
            row["validity"] = "invalid"
            row["validity_reason"] = f"{finished.invalid}; {why}" if why else finished.invalid
    result = CaseResult(item.case, row, layers=finished.layers, power=finished.power)
    result.poisoned = finished.poisoned
    result.wall_s = item.wall_s + finished.wall_s
    return result


def _interrupted(item: _Open) -> Finished:
    """How a case Ctrl-C stopped ends: status error, its windows kept in the row."""
    return Finished(
        status="error",
        error=f"interrupted (Ctrl-C) while the case ran, after {len(item.windows)} window(s)",
    )
