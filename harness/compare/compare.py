"""Compare runs across hardware and time: join on the case key, ratios with noise bounds, verdicts.

Rules (also in ``Comparison.method``):

* Cases are joined on ``harness.core.spec.CASE_KEY``. Every ratio is candidate / baseline.
  Across a setting (``across``: threads, dtype, ...; harness.compare.across) the join leaves
  that setting out; a pair with no case in common whose sides differ in exactly one setting
  is compared across it, and ``Comparison.across`` names it.
* Latency (``latency_s_median``): a percentile bootstrap confidence interval of the ratio of
  medians from the raw ``latency_s_samples`` of both sides (``n_resamples`` resamples, level
  ``ci_level``, a fixed ``seed``; each case gets its own stream, so filtering does not change
  a case's interval). Throughput is ``batch_size / latency_s_median`` with the same batch on
  both sides, so its ratio is the inverse of latency's and so is its interval. Energy, memory
  and every other column have no raw samples: their ratio comes without an interval.
* Verdict: ``noisy`` (or ``invalid``) when either side's row is not ``valid``
  (harness.results.validity) for a time, throughput, power or energy column: noise is never
  called faster or slower; otherwise ``same`` when the interval contains 1, or when the ratio
  lies within a factor of ``1 + min_effect`` of 1 either way (default 2%); otherwise
  ``faster``/``slower`` for time and throughput columns, ``lower``/``higher`` for the others;
  ``n/a`` when either side has no value (a failed case, an unmeasured metric), with each
  side's reason in ``na_reason``. Peak memory does not depend on the machine's noise and keeps
  its verdict.
* Gates (``Comparison.failures``) leave noisy and invalid cases out unless asked
  (``include_noisy``); a case ``ok`` in the baseline and not in the candidate always fails.
* The same case twice in one input: ``harness.results.runs.DUPLICATE_RULE`` (a valid row wins,
  then the latest); what was dropped and why is reported per input.
* Static columns (params, macs, activation_bytes) that differ for a matched case are listed:
  the model definition changed between the runs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.compare.across import (
    check_setting,
    describe,
    differing_setting,
    reduced_key,
    rekey,
    split,
)
from harness.compare.pair import ROW_COLUMNS, Settings, _Columns, _distinct, compare_pair
from harness.compare.verdicts import (
    ACROSS_COLUMNS,
    CASE_COLUMNS,
    ENV_COLUMNS,
    ENV_FIELDS,
    FLOAT_COLUMNS,
    HIGHER_IS_BETTER,
    METRICS,
    MODEL_COLUMNS,
    MODEL_RULE,
    NOISY_COLUMNS,
    STATIC_COLUMNS,
    STATIC_ROW_COLUMNS,
    SUMMARY_COLUMNS,
    metric_column,
    per_model,
)
from harness.core.errors import InvalidInputError
from harness.core.missing import is_missing, reason_columns
from harness.core.schema import CASE_KEY
from harness.results.runs import DUPLICATE_RULE, pick_one_per_case
from harness.results.store import PathLike, load_results

ResultsInput = PathLike | Iterable[PathLike] | pd.DataFrame


@dataclass
class Comparison:
    """Everything ``cnnbench compare`` shows; ``cases`` is what ``compare()`` returns.

    ``noisy``: each row of a matched case that is not ``valid``, with the side and its reason
    (its metrics got the verdict ``noisy``/``invalid``).
    """

    inputs: pd.DataFrame
    cases: pd.DataFrame
    only: pd.DataFrame
    environment: pd.DataFrame
    static: pd.DataFrame
    summary: pd.DataFrame
    method: dict[str, Any] = field(default_factory=dict)
    noisy: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NOISY_COLUMNS))
    across: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ACROSS_COLUMNS))
    models: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MODEL_COLUMNS))

    def failures(
        self, thresholds: dict[str, float], *, include_noisy: bool = False
    ) -> pd.DataFrame:
        """Cases worse than ``thresholds`` (column -> allowed worsening, 0.05 = 5%).

        A case fails when its change in the worse direction exceeds the threshold and, where a
        confidence interval exists, the whole interval lies on the worse side of 1; or when it
        was ``ok`` in the baseline and is not in the candidate. Cases whose verdict is
        ``noisy`` or ``invalid`` are left out unless ``include_noisy`` (their ratio is then
        judged like any other).
        """
        rows = []
        c = self.cases
        for column, limit in thresholds.items():
            sel = c[c["column"] == column]
            for r in sel.itertuples(index=False):
                reason = None
                bad = not is_missing(r.candidate_status) and r.candidate_status != "ok"
                if r.baseline_status == "ok" and bad:
                    reason = f"status ok -> {r.candidate_status}"
                elif r.verdict in ("noisy", "invalid") and not include_noisy:
                    continue
                elif not is_missing(r.ratio):
                    worse = (1 - r.ratio) if column in HIGHER_IS_BETTER else (r.ratio - 1)
                    if column in HIGHER_IS_BETTER:
                        noise = not is_missing(r.ci_high) and r.ci_high >= 1
                    else:
                        noise = not is_missing(r.ci_low) and r.ci_low <= 1
                    if worse > limit and not noise:
                        reason = f"{worse:.1%} worse (limit {limit:.1%})"
                if reason:
                    rows.append({**r._asdict(), "limit": limit, "reason": reason})
        return pd.DataFrame(rows, columns=[*c.columns, "limit", "reason"])


def _label(item: ResultsInput, i: int) -> str:
    if isinstance(item, pd.DataFrame):
        return f"input {i + 1}"
    if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__"):
        return str(item)
    return " + ".join(str(p) for p in item)


def _unique(labels: list[str]) -> list[str]:
    """The same file given twice (a sanity check) gets ``#2`` after its second label."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _prepare(
    frame: pd.DataFrame, label: str, models: Sequence[str] | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Filter by model patterns, keep one row per case (``DUPLICATE_RULE``);
    -> (frame indexed by the case key, {why dropped: count})."""
    missing = [k for k in CASE_KEY if k not in frame.columns]
    if missing:
        raise InvalidInputError(f"{label}: the results lack the case key column(s) {missing}")
    df = frame.reset_index(drop=True)
    if models:
        names = df["model"].astype("string").fillna("")
        keep = [any(fnmatch.fnmatchcase(m, p) for p in models) for m in names]
        df = df[keep].reset_index(drop=True)
    keys = ["|".join(k) for k in df[list(CASE_KEY)].astype("string").fillna("<NA>").itertuples(
        index=False
    )]  # fmt: skip
    dropped: dict[str, int] = {}
    if len(set(keys)) < len(keys):  # reordering copies every column: only when needed
        df, dropped = pick_one_per_case(df, CASE_KEY)
        keys = ["|".join(k) for k in df[list(CASE_KEY)].astype("string").fillna("<NA>")
                .itertuples(index=False)]  # fmt: skip
    df.index = pd.Index(keys, name="_key")
    return df, dropped


def _input_info(raw: pd.DataFrame, df: pd.DataFrame, label: str, dropped: dict[str, int]) -> dict:
    incomplete = ""
    if "run_complete" in raw and "run_id" in raw:
        incomplete = _distinct(raw.loc[raw["run_complete"].eq(False).fillna(False), "run_id"])
    return {
        "label": label,
        "rows": len(raw),
        "cases": len(df),
        "duplicates_dropped": sum(dropped.values()),
        "duplicates_why": "; ".join(f"{n} {why}" for why, n in dropped.items()),
        "runs": _distinct(raw.get("run_id")),
        "devices": _distinct(df.get("device_name")),
        "incomplete_runs": incomplete,
    }


def _check_options(
    ci_level: float, n_resamples: int, min_effect: float, across: str | None
) -> None:
    """One line naming the option a bad value breaks."""
    if across not in (None, "auto"):
        check_setting(across)
    if not 0 < ci_level < 1:
        raise InvalidInputError(
            f"the confidence level (--ci-level) must lie between 0 and 1, got {ci_level:g}: "
            "pass e.g. 0.95"
        )
    if n_resamples < 100:
        raise InvalidInputError(
            f"{n_resamples} bootstrap resamples (--resamples) are too few for an interval: pass "
            "100 or more (2000 is the default)"
        )
    if min_effect < 0:
        raise InvalidInputError(
            f"the minimum effect (--min-effect) cannot be negative, got {min_effect:g}"
        )


def compare_runs(
    baseline: ResultsInput,
    candidate: ResultsInput,
    *more: ResultsInput,
    metrics: Sequence[str] = tuple(METRICS),
    models: Sequence[str] | None = None,
    min_effect: float = 0.02,
    ci_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    across: str | None = "auto",
) -> Comparison:
    """Compare ``candidate`` (and each of ``more``) against ``baseline``; see the module doc.

    Each input is a result file, a directory, a list of them, or a DataFrame from load_results;
    ``models`` are fnmatch patterns. ``across``: a setting to compare across (the join leaves it
    out), ``"auto"`` (across the one setting a pair without common cases differs in), or None
    (the whole case key). Raises ResultFileError for a bad file, InvalidInputError when a pair
    has no case in common.
    """
    _check_options(ci_level, n_resamples, min_effect, across)
    columns = list(dict.fromkeys(metric_column(m) for m in metrics))
    s = Settings(columns, min_effect, ci_level, n_resamples, seed)
    items = [baseline, candidate, *more]
    names = list(labels) if labels else _unique([_label(x, i) for i, x in enumerate(items)])
    if len(names) != len(items) or len(set(names)) != len(names):
        raise InvalidInputError(f"need {len(items)} distinct labels, got {names}")
    needed = [
        *CASE_KEY, *columns, *STATIC_COLUMNS, *ENV_FIELDS, *ROW_COLUMNS, "latency_s_samples",
        "run_id", "run_complete", "timestamp_utc", "host", "cpu_threads", "torch_version",
        *(c for col in columns for c in reason_columns(col)),
    ]  # fmt: skip
    frames, info, all_models = [], [], set()
    for item, name in zip(items, names, strict=True):
        raw = item if isinstance(item, pd.DataFrame) else load_results(item, columns=needed)
        if "model" in raw:
            all_models |= {str(m) for m in raw["model"].dropna().unique()}
        df, dropped = _prepare(raw, name, models)
        frames.append(df)
        info.append(_input_info(raw, df, name, dropped))
    out: dict[str, Any] = {k: [] for k in ("only", "environment", "static", "summary", "noisy")}
    out["cases"] = _Columns(CASE_COLUMNS, FLOAT_COLUMNS)
    settings = []
    for cand, cname in zip(frames[1:], names[1:], strict=True):
        base, cand, setting = _align(frames[0], cand, (names[0], cname), across, models, all_models)
        compare_pair(base, cand, {"baseline": names[0], "candidate": cname}, s, out)
        if setting is not None:
            settings.append({"baseline": names[0], "candidate": cname, "setting": setting,
                             "baseline_value": describe(base, setting),
                             "candidate_value": describe(cand, setting)})  # fmt: skip
    cases = out["cases"].frame()
    return Comparison(
        inputs=pd.DataFrame(info),
        cases=cases,
        only=pd.DataFrame(out["only"], columns=["baseline", "candidate", "side", *CASE_KEY]),
        environment=pd.DataFrame(out["environment"], columns=ENV_COLUMNS),
        static=pd.DataFrame(out["static"], columns=STATIC_ROW_COLUMNS).drop_duplicates(
            ignore_index=True
        ),
        summary=pd.DataFrame(out["summary"], columns=SUMMARY_COLUMNS),
        method=_method(s),
        noisy=pd.DataFrame(out["noisy"], columns=NOISY_COLUMNS),
        across=pd.DataFrame(settings, columns=ACROSS_COLUMNS),
        models=per_model(cases),
    )


def _align(
    base: pd.DataFrame,
    cand: pd.DataFrame,
    names: tuple[str, str],
    across: str | None,
    models: Sequence[str] | None,
    all_models: set[str],
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The pair keyed for the join, and the setting compared across (None: the whole key)."""
    setting = across if across not in (None, "auto") else None
    if setting is None and not len(base.index.intersection(cand.index)):
        differ: list[str] = []
        if across == "auto":
            setting, differ = differing_setting(base, cand)
        if setting is None:
            raise _no_common(base, cand, names, models, all_models, differ)
    if setting is None:
        return base, cand, None
    base, cand = rekey(base, setting, names[0]), rekey(cand, setting, names[1])
    if not len(base.index.intersection(cand.index)):
        raise _no_common(base, cand, names, models, all_models, [], setting)
    return base, cand, setting


def _no_common(
    base: pd.DataFrame,
    cand: pd.DataFrame,
    names: tuple[str, str],
    models: Sequence[str] | None,
    all_models: set[str],
    differ: list[str],
    setting: str | None = None,
) -> InvalidInputError:
    hint = f" matching --model {' '.join(models)}" if models else ""
    there = ""
    if models and not (len(base) and len(cand)):
        there = f"; the models in these files: {', '.join(sorted(all_models)) or 'none'}"
    key = reduced_key(setting) if setting else CASE_KEY
    text = (
        f"no common cases{hint} between {names[0]} ({len(base)} cases) and {names[1]} "
        f"({len(cand)} cases): cases match on {', '.join(key)}{there}"
    )
    if len(differ) > 1:
        text += (
            f"; the two sides differ in {', '.join(differ)}: pass --across with the one to "
            "compare across"
        )
    return InvalidInputError(text)


def _method(s: Settings) -> dict[str, Any]:
    return {
        "ratio": "candidate / baseline",
        "ci": f"{s.ci_level:.0%} percentile bootstrap of the ratio of medians of "
        f"latency_s_samples, {s.n_resamples} resamples, seed {s.seed}; throughput's interval "
        "is the inverse of latency's; other metrics have no raw samples and no interval",
        "same": f"the interval contains 1, or the ratio is within x{1 + s.min_effect:g} of 1 "
        f"either way (min_effect {s.min_effect:.0%})",
        "noisy": "a row that is not valid on either side (harness.results.validity) gives "
        "'noisy' or 'invalid' for every metric but peak memory and static columns; such cases "
        "are left out of the geometric mean and of --fail-on unless --include-noisy",
        "duplicates": DUPLICATE_RULE,
        "per_model": MODEL_RULE,
        "across": "cases are joined on the case key without the setting compared across (none "
        "given: the one setting a pair without common cases differs in)",
        "ci_level": s.ci_level,
        "n_resamples": s.n_resamples,
        "seed": s.seed,
        "min_effect": s.min_effect,
    }


def compare(
    baseline: ResultsInput,
    candidate: ResultsInput,
    *more: ResultsInput,
    metrics: Sequence[str] = tuple(METRICS),
    models: Sequence[str] | None = None,
    min_effect: float = 0.02,
    ci_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    across: str | None = "auto",
) -> pd.DataFrame:
    """One row per (pair, case, metric): values, ratio, interval, change and verdict.

    The arguments are those of ``compare_runs``, which also returns the one-sided cases, the
    environment differences, the static changes and the geometric-mean summary.
    """
    # fmt: off
    return compare_runs(
        baseline, candidate, *more, metrics=metrics, models=models, min_effect=min_effect,
        ci_level=ci_level, n_resamples=n_resamples, seed=seed, labels=labels, across=across,
    ).cases
    # fmt: on


def compare_across(
    results: ResultsInput,
    setting: str,
    *,
    label: str | None = None,
    **options: Any,
) -> Comparison:
    """One input compared with itself across ``setting``: its rows split by the setting's
    values (harness.compare.across.split: the baseline is the first value), each other value
    compared with the first. ``options`` are those of ``compare_runs``."""
    check_setting(setting)
    name = label or _label(results, 0)
    frame = results if isinstance(results, pd.DataFrame) else load_results(results)
    groups = split(frame, setting, name)
    return compare_runs(
        *(g for _, g in groups), labels=[n for n, _ in groups], across=setting, **options
    )
