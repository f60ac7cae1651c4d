"""A ground truth independent of this VM: a machine whose speed follows a hidden two-state
process, and steps that take a known time in each state (issue 21, "what to build" item 4).

``HiddenMachine``: a simulated clock (seconds) and a two-state Markov process on it: the fast
state (factor 1.0) and the slow one (``slow_factor``, 1.7 by default, this VM's ratio), each
held for an exponentially distributed spell (means ``fast_mean_s``, ``slow_mean_s``: 0.3 to
3 s in the tests), drawn from a seeded ``random.Random``: the same seed, the same machine.
``SimStep(machine, base_s)`` is a step that advances the clock by ``base_s`` times the state's
factor at the moment it starts, times a small seeded jitter (0.3%). Nothing waits: a whole
sweep of simulated seconds runs in milliseconds, and the harness's windows are timed on the
machine's clock (the ``clock`` that harness.measure.windows takes).

The truth the tests hold the harness to: a step's value in the fast state is ``base_s``
(the jitter is symmetric and tiny); a row called valid must say that, within 5%.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class HiddenMachine:
    seed: int
    fast_mean_s: float = 1.0
    slow_mean_s: float = 1.0
    slow_factor: float = 1.7
    now: float = 0.0
    epoch: float = 0.0  # when the sweep started (after the speed reference's warm-up)
    _slow: bool = False
    _until: float = 0.0
    _rng: random.Random = field(init=False)
    changes: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._slow = self._rng.random() < self.slow_mean_s / (self.fast_mean_s + self.slow_mean_s)
        self._until = self._spell(0.0)

    def _spell(self, start: float) -> float:
        mean = self.slow_mean_s if self._slow else self.fast_mean_s
        return start + self._rng.expovariate(1.0 / mean)

    def slow(self) -> bool:
        """The hidden state now, moved on as time passed."""
        while self.now >= self._until:
            start = self._until
            self._slow = not self._slow
            self.changes.append(start)
            self._until = self._spell(start)
        return self._slow

    def factor(self) -> float:
        """The step's speed factor now (1.0 fast)."""
        return self.slow_factor if self.slow() else 1.0

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def jitter(self) -> float:
        return 1.0 + self._rng.uniform(-0.003, 0.003)


class SimStep:
    """A step of ``base_s`` seconds in the fast state, on ``machine``'s clock."""

    def __init__(self, machine: HiddenMachine, base_s: float) -> None:
        self.machine, self.base_s = machine, base_s
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        m = self.machine
        m.advance(self.base_s * m.factor() * m.jitter())


class SteadyMachine(HiddenMachine):
    """The same clock, one state: every step takes its base time (within the jitter)."""

    def slow(self) -> bool:
        return False


class ScheduledMachine(HiddenMachine):
    """Slow exactly between the given times (``spans``: [(start_s, end_s), ...], seconds since
    ``epoch``: ``run_sweep`` sets it when the sweep starts)."""

    def __init__(self, spans: list[tuple[float, float]], slow_factor: float = 1.7) -> None:
        super().__init__(seed=0, slow_factor=slow_factor)
        self.spans = spans

    def slow(self) -> bool:
        t = self.now - self.epoch
        return any(a <= t < b for a, b in self.spans)


# --- the harness on the hidden machine ----------------------------------------------------

PROBE_S = 0.0008  # the speed probe's time in the fast state (harness.measure.noise)
PROBE_SLOW = 1.9  # the probe slows with the state, not by the step's factor


class SimHost:
    """harness.run.schedule's Host for simulated cases: the real window timing
    (harness.measure.windows.time_window on the machine's clock), the real speed reference
    (its probes slow down with the hidden state, like any code on the machine), and no torch.
    ``base_s``: each case's step time in the fast state, by model name. ``open_s``: the fixed
    cost of opening a case (build, warm-up), during which the machine's time passes."""

    def __init__(
        self, machine: HiddenMachine, base_s: dict[str, float], reference, open_s: float = 0.3
    ) -> None:
        self.machine, self.base_s, self.reference, self.open_s = machine, base_s, reference, open_s
        self.steps: dict[str, SimStep] = {}

    def probe(self) -> float:
        m = self.machine
        seconds = PROBE_S * (PROBE_SLOW if m.slow() else 1.0) * m.jitter()
        m.advance(3 * seconds)  # best of three
        return seconds

    def open(self, case, options):
        from harness.core.windows import window_plan
        from harness.run.outcome import Opened

        step = self.steps[case.case_id] = SimStep(self.machine, self.base_s[case.model])
        self.machine.advance(self.open_s)
        for _ in range(options.warmup_rounds):
            step()
        estimate = self.base_s[case.model] * self.machine.factor()
        windows, rounds = window_plan(
            estimate, windows=options.windows, min_rounds=options.min_rounds,
            min_time_s=options.min_time_s, max_time_s=options.max_time_s,
        )  # fmt: skip
        row = {**case.to_dict(), "case_id": case.case_id, "cpu_cores": 2}
        return Opened(row=row, estimate_s=estimate, windows=windows, rounds=rounds, warmup=1)

    def window(self, case, index, rounds):
        from harness.measure.windows import time_window
        from harness.run.outcome import WindowRecord

        before = self.reference.ratio(self.probe())
        t0 = self.machine.clock()
        start, samples = time_window(
            self.steps[case.case_id], rounds, device="cpu", warmup=1, clock=self.machine.clock
        )
        elapsed = self.machine.clock() - t0
        after = self.reference.ratio(self.probe())
        ratio = max(before, after, key=lambda r: max(r, 1 / r))
        noise = {"elapsed_s": elapsed, "stall_s": None, "switches": None,
                 "speed_probe_ratio": ratio, "load_avg_1m_end": None}  # fmt: skip
        return WindowRecord(index, start, [float(x) for x in samples], noise)

    def finish(self, case, value_s, samples_per_window):
        from harness.run.outcome import Finished

        return Finished()

    def abandon(self, case) -> None:
        pass


def run_sweep(
    machine: HiddenMachine,
    base_s: dict[str, float],
    options,
    tmp_path,
    *,
    block_cases: int = 8,
    seed: int = 0,
) -> list[dict]:
    """The cases of ``base_s`` (one each, in order) measured in blocks of ``block_cases`` on
    ``machine``: the rows, as harness.run.schedule assembles and judges them."""
    import random as _random

    from harness.core.spec import Case
    from harness.measure import noise
    from harness.run.schedule import run_block

    reference = noise.SpeedReference(tmp_path / "speed.json")  # one host: one history
    host = SimHost(machine, base_s, reference)
    real_probe, real_sleep = noise.speed_probe, noise.time.sleep
    noise.speed_probe = host.probe  # the reference's own warm-up probes the same machine
    noise.time.sleep = machine.advance
    try:
        reference.ratio(host.probe())  # a host's first probes found its reference
        reference.save()  # the next run on this host reads the history
        machine.epoch = machine.now
        cases = [Case(name, (1, 2, 2)) for name in base_s]
        rows = []
        rng = _random.Random(seed)
        for start in range(0, len(cases), block_cases):
            block = cases[start : start + block_cases]
            out = run_block(block, options, lambda case: host, rng=rng)
            rows += [r.row for r in out.results]
        reference.save()
        return rows
    finally:
        noise.speed_probe, noise.time.sleep = real_probe, real_sleep
