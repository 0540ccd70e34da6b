"""The leaderboard: one row per run (model, precision, bits), per task and overall.

``build_leaderboard`` computes the documented ``leaderboard.json`` object from ``Run``
models: absolute figures from the run's measured samples, paired figures from
``compare_runs`` against each row's baseline, every budget curve on one axis per scope.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from qr_metrics.documents import item_indices
from qr_metrics.measured import MeasuredSample
from qr_metrics.runs import OptionError, Run
from qr_metrics.stats import BootstrapConfig, Interval, accuracy_comparison

from ..compare import compare_runs
from ..figures import flag_rates, reasoning_figures, shared_limit
from ..options import DEFAULT_OPTIONS, Measurer, Options
from ..results import PairedFigures, interval_json, statistics_header
from ..schema import OVERALL, REASONING_FIELDS
from .baselines import resolve_baselines
from .speedup import PerTokenSpeedup, effective_speedup, resolve_speedup


def _absolute(
    measured: Sequence[MeasuredSample], field: str, config: BootstrapConfig, figures: dict[str, Any]
) -> dict[str, Any]:
    """A run's own figures over some samples: n, accuracy with interval, mean length, rates,
    and its ``reasoning_figures`` (computed once per row by the caller)."""
    correct = [m for m in measured if m.correct is not None]
    accuracy = None
    if correct:
        item = item_indices(m.sample.item for m in correct)
        flags = np.array([m.correct for m in correct], dtype=bool)
        accuracy = accuracy_comparison(item, flags, flags, config).candidate.as_dict()
    rates = flag_rates(measured)
    curve, efficiency = figures["budget_accuracy"], figures["efficiency"]
    return {
        "n": len(measured),
        "accuracy": accuracy,
        "mean_length": float(np.mean([m.counts[field] for m in measured])),
        "rates": {name: r.rate for name, r in rates.items()},
        "rates_known": {name: r.known for name, r in rates.items()},
        "budget_auc": None if curve is None else curve["auc"],
        "budget_curve": None if curve is None else {k: curve[k] for k in ("limit", "budgets", "accuracy")},
        "token_efficiency": None if efficiency is None else efficiency["token_efficiency"],
        "markers_per_1k_words": (figures["reflection_markers"] or {}).get("per_1k_words"),
        "repeats": figures["repeats"],
    }


def build_leaderboard(
    runs: Sequence[Run],
    baseline: str | Run | None = None,
    options: Options = DEFAULT_OPTIONS,
    measurer: Measurer | None = None,
    speedups: Mapping[str, float] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """The documented ``leaderboard.json`` object.

    ``baseline``: see ``resolve_baselines``. ``speedups``: precision label -> per-token
    speedup; it overrides a run's own ``speedup`` (run.json) and the measured one
    (``resolve_speedup``, with the options' confidence, resamples and seed). A label that
    matches no run is an input error.
    """
    measurer = measurer or Measurer(options)
    config = options.bootstrap
    if not runs:
        raise OptionError("runs", "no runs given")
    rows_runs, plan = resolve_baselines(runs, baseline, options.name)
    speedups = dict(speedups or {})
    precisions = {r.precision for r in rows_runs}
    for label in speedups:
        if label not in precisions:
            known = sorted(p for p in precisions if p is not None)
            raise OptionError("speedups", f"no run has precision {label!r}; precisions: {known}")

    tasks = sorted({t for r in rows_runs for t in r.tasks})
    rows: list[dict[str, Any]] = []
    run_info = []
    warnings: list[str] = []
    pairs = [(plan[run.name][0], run) for run in rows_runs if plan[run.name][1] == "candidate"]
    unit = measurer.unit(rows_runs, pairs)  # each run is measured once, however many rows use it
    field = unit.field
    every = {run.name: measurer(run) for run in rows_runs}
    pooled = [m for measured in every.values() for m in measured]
    limits = {task: shared_limit([m for m in pooled if m.sample.task == task], field) for task in tasks}
    limits[OVERALL] = shared_limit(pooled, field)  # one budget axis for every run's row
    for run in rows_runs:
        reference, role, note = plan[run.name]
        measured = every[run.name]
        comparison = None
        if role == "candidate":
            comparison = compare_runs(reference, run, replace(options, unit=unit.name), measurer, limits)
            warnings.extend(f"{run.name}: {w}" for w in comparison.warnings)
        speedup = resolve_speedup(run, reference, speedups, config, options.name)
        run_info.append(
            {
                "name": run.name, "model": run.model, "precision": run.precision, "bits": run.bits,
                "source": str(run.source), "device": run.device, "role": role,
                "baseline": None if reference is None else reference.name,
                "speedup_per_token": speedup.value, "speedup_source": speedup.source,
                "speedup_withheld": speedup.withheld, "note": note,
            }
        )
        by_task: dict[str, list[MeasuredSample]] = {}
        for m in measured:
            by_task.setdefault(m.sample.task, []).append(m)
        scopes = [(task, by_task[task]) for task in tasks if task in by_task] + [(OVERALL, measured)]
        for scope, samples in scopes:
            if scope == OVERALL and len(by_task) == 1:
                figures = copy.deepcopy(rows[-1])  # overall is that one task: no second bootstrap
                figures["task"] = OVERALL
                if comparison is not None:
                    figures["macro_ratio"] = comparison.macro_ratio.ratio.as_dict()
                rows.append(figures)
                continue
            block = None
            if comparison is not None:
                block = comparison.overall if scope == OVERALL else comparison.tasks.get(scope)
            if block is not None and block.n_pairs == len(samples):  # the comparison's figures are the row's
                figures = block.reasoning.candidate
            else:
                figures = reasoning_figures(samples, field, limits[scope], measurer.params(run).budget_points)
            absolute = _absolute(samples, field, config, figures)
            macro = comparison.macro_ratio.ratio if comparison is not None and scope == OVERALL else None
            rows.append(_row(run, scope, role, reference, note, absolute, block, macro, speedup))
    return {
        "title": title or "qr-eval leaderboard",
        **statistics_header(unit, config),
        "baseline_rule": baseline.name if isinstance(baseline, Run) else baseline or "auto",
        "tasks": tasks,
        "runs": run_info,
        "rows": rows,
        "warnings": warnings,
    }


def _row(run: Run, scope: str, role: str, reference: Run | None, note: str | None, absolute: dict[str, Any],
         block: PairedFigures | None, macro: Interval | None, speedup: PerTokenSpeedup) -> dict[str, Any]:
    """One ``leaderboard.json`` row: the run's own figures and, against its baseline, ``block``'s."""
    notes = [] if note is None else [note]
    ratio = None if block is None else block.ratio_of_means.as_dict()
    if role == "candidate" and block is None:
        notes.append(f"no baseline samples for task {scope!r}: absolute figures only")
    if block is not None and block.ratio_is_lower_bound:
        notes.append("hit its generation budget: the ratio is a lower bound")
    if speedup.withheld:
        notes.append(f"per-token speedup withheld: {speedup.withheld}")
    accuracy = None if block is None else block.accuracy
    return {
        "run": run.name,
        "model": run.model,
        "precision": run.precision,
        "bits": run.bits,
        "task": scope,
        "role": role,
        "baseline": None if reference is None else reference.name,
        "n": absolute["n"],
        "accuracy": absolute["accuracy"],
        "mean_length": absolute["mean_length"],
        "ratio_of_means": ratio,
        "ratio_is_lower_bound": None if block is None else block.ratio_is_lower_bound,
        "both_correct_ratio": None if block is None else interval_json(block.both_correct_ratio),
        "paired_geomean_ratio": None if block is None else interval_json(block.paired_geomean_ratio),
        "macro_ratio": None if block is None or macro is None else macro.as_dict(),
        "accuracy_delta": None if accuracy is None else accuracy.delta.as_dict(),
        "mcnemar_p": None if accuracy is None else accuracy.mcnemar_p,
        "rates": absolute["rates"],
        "rates_known": absolute["rates_known"],
        **{key: absolute[key] for key in REASONING_FIELDS},
        "speedup_per_token": speedup.value,
        "speedup_source": speedup.source,
        "speedup_withheld": speedup.withheld,
        "effective_speedup": effective_speedup(speedup.value, ratio, role),
        "notes": notes,
    }
