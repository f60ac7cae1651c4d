"""The rows a measured claim reads: one configuration at a time, valid rows only.

``Measured(cases, layers, all_runs)`` takes the cases table through
``harness.results.runs.select_runs`` (per host, device, CPU threads and torch version the latest
complete run; ``all_runs`` pools them) and ``groups(models)`` gives, per configuration and
device, the rows of one setting (batch size, dtype, memory format, mode, compiled, requested
threads): the one with the most of ``models`` measured validly, preferring inference, eager,
contiguous, float32 and the smallest batch. Rows of two configurations (two thread counts, two
machines) are never compared with each other.

Only rows with status ``ok`` and ``validity == 'valid'`` decide a timing (``validity.usable``);
for any other, ``Rows.why`` says what the row is (oom, noisy and why) and the quantity is
missing. Static quantities (parameters, MACs) and peak memory do not depend on how quiet the
machine was (compare's ``NOISE_FREE``): ``Rows.static_value`` reads them from any row that ran.
A latency's interval is the 95% interval the row records (computed from its samples, windows
then samples, for files that predate the columns); a ratio of two latencies spans the ratios
of the ends of the two intervals (conservative: it covers at least 90%). Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.claims.core import Quantity, q
from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing, missing_reason, reason_columns
from harness.core.schema import column_names
from harness.core.signals import usable
from harness.core.stats import median_ci
from harness.core.windows import interval, split
from harness.results.runs import CONFIG_COLUMNS, config_label, device_kind, select_runs
from harness.results.validity import assess_frame

SETTINGS = ("batch_size", "dtype", "memory_format", "mode", "compiled", "threads")
NO_RESULTS = "no result files given (--results PATH)"


def _text(v: Any) -> str:
    return "-" if is_missing(v) else str(v)


class Rows:
    """The rows of one configuration and setting, as a measured claim's ``measure`` reads them
    (empty, with ``absent`` saying why, when there are none)."""

    def __init__(self, frame: pd.DataFrame, layers: Callable[[], pd.DataFrame | None], label: str,
                 absent: str) -> None:  # fmt: skip
        self.frame, self._layers, self.label, self.absent = frame, layers, label, absent
        self.usable = frame[_usable(frame)]

    def row(self, model: str) -> pd.Series | None:
        hit = self.usable[self.usable["model"] == model]
        return None if hit.empty else hit.iloc[0]

    def why(self, model: str) -> str:
        """Why ``model`` has no usable row here."""
        rows = self.frame[self.frame["model"] == model]
        if rows.empty:
            return self.absent.format(model=model)
        r = rows.iloc[0]
        if r["status"] != "ok":
            return f"{model}: {missing_reason(r, 'the case', ())}"
        return f"{model}: {_text(r['validity'])} row: {_text(r['validity_reason'])}"

    def value(self, model: str, column: str, unit: str) -> Quantity:
        r = self.row(model)
        if r is None:
            return q(None, unit, why=self.why(model))
        return q(r[column], unit, why=missing_reason(r, column, reason_columns(column)))

    def static_value(self, model: str, column: str, unit: str) -> Quantity:
        """A value that does not depend on the timing's validity (``NOISE_FREE``: parameters,
        MACs, activation bytes from the profile; peak memory, counted by the allocator or the
        tensor tracker): read from the model's valid row, else from any row that ran."""
        r = self.row(model)
        if r is None:
            ran = self.frame[(self.frame["model"] == model) & (self.frame["status"] == "ok")]
            if ran.empty:
                return q(None, unit, why=self.why(model))
            r = ran.iloc[0]
        return q(r[column], unit, why=missing_reason(r, column, reason_columns(column)))

    def latency(self, model: str) -> Quantity:
        """The median step latency with the median's 95% interval."""
        r = self.row(model)
        if r is None:
            return q(None, "s", why=self.why(model))
        return latency_of(r)

    def ratio(self, base: str, other: str) -> Quantity:
        """Latency of ``other`` over ``base``; the interval from the ends of both intervals."""
        a, b = self.latency(base), self.latency(other)
        if a.missing or b.missing:
            return q(None, "x", why="; ".join(dict.fromkeys(x.why for x in (a, b) if x.missing)))
        if a.low is None or b.low is None:
            return q(b.value / a.value, "x")
        return q(b.value / a.value, "x", b.low / a.high, b.high / a.low)

    def layer_rows(self, model: str) -> pd.DataFrame | None:
        """The layer rows of ``model``'s case here (None without a layers table or a row)."""
        r, lay = self.row(model), self._layers()
        if r is None or lay is None:
            return None
        return lay[(lay["run_id"] == r["run_id"]) & (lay["case_id"] == r["case_id"])]


def _usable(frame: pd.DataFrame) -> np.ndarray:
    """Rows that may decide (status ok, validity valid), as a boolean mask (a plain list would
    select columns when empty)."""
    ok = [s == "ok" and usable(v) for s, v in zip(frame["status"], frame["validity"], strict=True)]
    return np.array(ok, dtype=bool)


def latency_of(row: pd.Series) -> Quantity:
    """The row's latency with its 95% interval: the one recorded (since schema version 4 the
    hierarchical bootstrap over windows, then samples: harness.core.windows), else computed
    the same way from the samples (one window for files without window ids: the median's
    order-statistics interval). No interval below six samples."""
    lo, hi = row.get("latency_s_median_ci_low"), row.get("latency_s_median_ci_high")
    samples = row.get("latency_s_samples")
    if (is_missing(lo) or is_missing(hi)) and samples is not None and len(samples) >= 6:
        ids = row.get("latency_s_window_ids")
        if ids is not None and not isinstance(ids, float) and len(ids) == len(samples):
            lo, hi = interval(split([float(s) for s in samples], [int(i) for i in ids]))
        else:
            lo, hi = median_ci([float(s) for s in samples])
    if is_missing(lo) or is_missing(hi):
        lo = hi = None
    return q(row["latency_s_median"], "s", lo, hi)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when a side is constant."""
    xs, ys = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    return float(xs.rank().corr(ys.rank()))


def _key(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """One text key per row from ``columns`` (vectorised: a 50,000-row table in milliseconds)."""
    key = pd.Series("", index=frame.index, dtype=object)
    for c in columns:
        key = key + frame[c].astype("string").fillna("-").astype(object) + "\x1f"
    return key


def _preference(frame: pd.DataFrame) -> pd.Series:
    """Per row, the rank of its setting: inference, eager, contiguous, float32, the smallest
    batch and torch's default threads first."""
    batch = pd.to_numeric(frame["batch_size"], errors="coerce").fillna(math.inf)
    flags = [frame["mode"] != "inference", frame["compiled"].map(lambda v: v is True),
             frame["memory_format"] != "contiguous", frame["dtype"] != "float32"]  # fmt: skip
    asked = ~frame["threads"].map(is_missing).astype(bool)  # a requested thread count
    return pd.Series(list(zip(*flags, batch, asked, strict=True)), index=frame.index)


class Measured:
    """The cases table (and layers table) of result files, one run per configuration.

    ``layers`` is the layers table, or a function that loads it (called once, when a claim
    first reads layer rows: a large sweep's layer rows are read only when needed)."""

    def __init__(self, cases: pd.DataFrame | None,
                 layers: pd.DataFrame | Callable[[], pd.DataFrame | None] | None = None,
                 all_runs: bool = False) -> None:  # fmt: skip
        self.notes: list[str] = []
        self._layers = layers
        if cases is None:
            self.frame = None
            return
        if not isinstance(cases, pd.DataFrame):
            raise InvalidInputError(
                "results must be a pandas DataFrame (the cases table of "
                f"harness.load_results(paths)), got {type(cases).__name__}"
            )
        if "model" not in cases or "status" not in cases:
            raise InvalidInputError(
                "results lack the columns model and status: pass the cases table of "
                "harness.load_results(paths) (not the layers or power table)"
            )
        absent = {c: pd.Series(pd.NA, index=cases.index, dtype=object)
                  for c in column_names("cases") if c not in cases}  # fmt: skip
        frame = pd.concat([cases, pd.DataFrame(absent, index=cases.index)], axis=1)
        selection = select_runs(assess_frame(frame), all_runs=all_runs)
        self.notes = selection.notes()
        f = selection.frame.astype(object).where(selection.frame.notna(), None)
        kind = f[list(CONFIG_COLUMNS)].assign(kind=f["device"].map(device_kind))  # cuda:0..7: one
        keys = pd.DataFrame({"_config": _key(kind, [*CONFIG_COLUMNS, "kind"]),
                             "_setting": _key(f, SETTINGS), "_usable": _usable(f),
                             "_preference": _preference(f)}, index=f.index)  # fmt: skip
        self.frame = pd.concat([f, keys], axis=1).copy()  # the copy consolidates the blocks

    def layers(self) -> pd.DataFrame | None:
        if callable(self._layers):
            self._layers = self._layers()
        return self._layers

    def groups(self, models: Sequence[str]) -> list[Rows]:
        """One Rows per configuration holding any row of ``models`` (any model when empty),
        or a single empty Rows saying why there is none."""
        if self.frame is None:
            return [Rows(_empty(), self.layers, "", NO_RESULTS)]
        frame = self.frame
        wanted = frame if not models else frame[frame["model"].isin(list(models))]
        stats = (
            wanted[["_config", "_setting", "_preference", "model"]]
            .assign(_covered=wanted["model"].where(wanted["_usable"]))
            .groupby(["_config", "_setting"], sort=True)
            .agg(covered=("_covered", "nunique"), n=("model", "size"),
                 preference=("_preference", "first"))
        )  # fmt: skip
        best: dict[str, tuple] = {}  # per configuration: the setting with most valid models
        for (config, setting), covered, n, preference in zip(
            stats.index, stats["covered"], stats["n"], stats["preference"], strict=True
        ):
            rank = (-covered, -n, preference, setting)
            if config not in best or rank < best[config]:
                best[config] = rank
        out = []
        for config, rank in best.items():
            chosen = wanted[(wanted["_config"] == config) & (wanted["_setting"] == rank[-1])]
            out.append(Rows(chosen, self.layers, _label(chosen), "no row of {model} here"))
        if not out:
            total = len(frame)
            why = f"no row of {{model}} in the results ({total} rows of other models)"
            return [Rows(_empty(), self.layers, "", why)]
        return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in column_names("cases")})


def _label(rows: pd.DataFrame) -> str:
    """Which configuration, setting and run(s) the rows came from."""
    r = rows.iloc[0]
    compiled = "compiled" if r["compiled"] is True else "eager"
    setting = f"batch {_text(r['batch_size'])}, {_text(r['dtype'])}, {_text(r['mode'])}, "
    setting += f"{_text(r['memory_format'])}, {compiled}"
    if not is_missing(r["threads"]):
        setting += f", {_text(r['threads'])} threads requested"
    runs = sorted({_text(v) for v in rows["run_id"]})
    return f"{config_label(r)} ({_where(rows)}); {setting}; run {', '.join(runs)}"


def _where(rows: pd.DataFrame) -> str:
    """``cpu``, ``cuda:0``, or for rows of several GPUs ``cuda: GPU 0, 3`` (NVML's indices
    where the rows have them, else the devices)."""
    kind = device_kind(rows["device"].iloc[0])
    index = rows["gpu_index"] if "gpu_index" in rows else pd.Series(dtype=object)
    numbers = sorted({int(v) for v in index if not is_missing(v)})
    if numbers:
        return f"{kind}: GPU {', '.join(map(str, numbers))}"
    devices = sorted({_text(v) for v in rows["device"]})
    return devices[0] if len(devices) == 1 else f"{kind}: {', '.join(devices)}"
