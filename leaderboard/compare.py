"""Pair a candidate run with its baseline and compute the paired statistics (DESIGN.md 3).

Pairs are keyed by (task, doc_id, repeat). What does not pair is reported and excluded;
what makes two runs incomparable (other tasks, budget, sampling or tokenizer) is flagged,
and an error with ``strict``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from qr_metrics.documents import item_indices
from qr_metrics.measured import MeasuredSample
from qr_metrics.pathologies import PATHOLOGIES
from qr_metrics.runs import InputError, Run
from qr_metrics.stats import PairedComparison, stratified_comparison

from .figures import flag_rates, reasoning_figures, shared_limit
from .options import DEFAULT_OPTIONS, Measurer, Options
from .render.formats import percent
from .results import Comparison, PairedFigures, RateSides, Sides
from .schema import OVERALL

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "min_p", "repetition_penalty")


@dataclass(frozen=True)
class Pairing:
    """Matched samples per task, and what did not match."""

    pairs: dict[str, list[tuple[MeasuredSample, MeasuredSample]]]
    only_baseline: int
    only_candidate: int
    first_unpaired: tuple[tuple[str, str, int], str] | None = None
    """The lowest key of a sample in one run only, and that run (``baseline``/``candidate``)."""

    @property
    def n_pairs(self) -> int:
        return sum(len(p) for p in self.pairs.values())


def pair_samples(baseline: list[MeasuredSample], candidate: list[MeasuredSample]) -> Pairing:
    """Match by (task, doc_id, repeat); unmatched samples are counted, not used."""
    base = {m.sample.key: m for m in baseline}
    cand = {m.sample.key: m for m in candidate}
    pairs: dict[str, list[tuple[MeasuredSample, MeasuredSample]]] = {}
    for key in sorted(base.keys() & cand.keys()):
        pairs.setdefault(key[0], []).append((base[key], cand[key]))
    only_base, only_cand = base.keys() - cand.keys(), cand.keys() - base.keys()
    first = min([(k, "baseline") for k in only_base] + [(k, "candidate") for k in only_cand], default=None)
    return Pairing(pairs, len(only_base), len(only_cand), first)


def compatibility_issues(baseline: Run, candidate: Run) -> list[str]:
    """What makes the two runs not directly comparable (each a sentence)."""
    issues = []
    if baseline.tasks != candidate.tasks:
        issues.append(f"task sets differ: baseline {baseline.tasks}, candidate {candidate.tasks}")
    for task in sorted(set(baseline.tasks) & set(candidate.tasks)):
        base_budget, cand_budget = _budget(baseline, task), _budget(candidate, task)
        if base_budget != cand_budget:
            issues.append(f"{task}: generation budgets differ (max_gen_toks {base_budget} vs {cand_budget})")
        base_sampling = _sampling(baseline, task)
        cand_sampling = _sampling(candidate, task)
        if base_sampling != cand_sampling:
            issues.append(f"{task}: sampling settings differ ({base_sampling} vs {cand_sampling})")
    return issues


def _budget(run: Run, task: str) -> int | None:
    budgets = {s.max_gen_toks for s in run.samples if s.task == task}
    configured = run.generation.get(task, {}).get("max_gen_toks")
    return configured if configured is not None else (budgets.pop() if len(budgets) == 1 else None)


def _sampling(run: Run, task: str) -> dict[str, Any]:
    settings = run.generation.get(task, {})
    return {k: settings[k] for k in SAMPLING_KEYS if k in settings}


def compare_runs(
    baseline: Run,
    candidate: Run,
    options: Options = DEFAULT_OPTIONS,
    measurer: Measurer | None = None,
    limits: Mapping[str, float | None] | None = None,
) -> Comparison:
    """``candidate`` against ``baseline`` (``Comparison.as_json``: the documented
    ``qr-eval compare --json`` object).

    ``measurer``: shares measurements between calls (leaderboard and select compare one
    baseline with many runs); None: a new one for ``options``. ``limits``: the budget-curve
    limit per task and ``overall`` when the caller fixes one axis for many runs (the
    leaderboard); None: the limit these two runs share (``figures.shared_limit``).
    """
    measurer = measurer or Measurer(options)
    issues = compatibility_issues(baseline, candidate)
    if measurer.params(baseline) != measurer.params(candidate):  # each run as its lm-eval metadata says
        issues.append("the runs logged different measurement parameters (metadata); "
                      f"{options.name('params')} measures both with one set")
    if issues and options.strict:
        raise InputError(candidate.source,
                         f"not comparable with the baseline ({options.name('strict')}): " + "; ".join(issues))
    unit = measurer.unit([baseline, candidate], [(baseline, candidate)])
    base_measured, cand_measured = measurer(baseline), measurer(candidate)
    pairing = pair_samples(base_measured, cand_measured)
    if pairing.n_pairs == 0:
        raise InputError(candidate.source, "no sample pairs with the baseline by (task, doc_id, repeat)")
    refuse_unpaired = options.strict if options.allow_missing is None else not options.allow_missing
    if pairing.first_unpaired and refuse_unpaired:
        raise InputError(candidate.source, _unpaired_error(pairing, options))
    warnings = list(issues)
    if pairing.only_baseline or pairing.only_candidate:
        warnings.append(
            f"{pairing.only_baseline} baseline and {pairing.only_candidate} candidate sample(s) "
            "have no partner and are excluded"
        )
    for warning in warnings:
        log.warning(warning)

    field = unit.field
    try:  # one draw per task; the overall and the macro ratio sum the tasks' draws
        result = stratified_comparison([_statistics_input(pairs, field) for pairs in pairing.pairs.values()],
                                       options.bootstrap)
    except ValueError as error:  # an undefined statistic, e.g. a zero-length baseline
        raise InputError(baseline.source, f"{field}: {error}") from None
    budget_points = measurer.params(candidate).budget_points
    tasks = {
        task: _block(pairs, field, r, None if limits is None else limits.get(task), budget_points)
        for (task, pairs), r in zip(pairing.pairs.items(), result.tasks)
    }
    if len(tasks) == 1:  # overall is that task
        overall = next(iter(tasks.values()))
    else:
        every = [pair for pairs in pairing.pairs.values() for pair in pairs]
        overall = _block(every, field, result.overall, None if limits is None else limits.get(OVERALL), budget_points)
    return Comparison(
        unit, options.bootstrap, baseline.name, baseline.source, candidate.name, candidate.source, pairing.n_pairs,
        pairing.only_baseline, pairing.only_candidate, tuple(warnings), tasks, overall, result.macro,
    )


def _unpaired_error(pairing: Pairing, options: Options) -> str:
    (task, doc_id, repeat), side = pairing.first_unpaired
    return (
        f"{pairing.only_baseline + pairing.only_candidate} sample(s) are in one run only "
        f"({pairing.only_baseline} baseline, {pairing.only_candidate} candidate), the first "
        f"task {task!r} doc_id {doc_id} repeat {repeat} in the {side} only: the runs must hold the same samples "
        f"({options.name('strict')}, and gate/select unless {options.name('allow_missing')})"
    )


def pair_lengths(pairs, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item ids (unique across tasks), baseline and candidate lengths, over pairs."""
    item = item_indices(b.sample.item for b, _ in pairs)
    base = np.array([b.counts[field] for b, _ in pairs], dtype=float)
    cand = np.array([c.counts[field] for _, c in pairs], dtype=float)
    return item, base, cand


def _statistics_input(pairs, field: str) -> tuple:
    """``(item, base_len, cand_len, base_correct, cand_correct)`` of some pairs, correctness
    None unless every sample has it."""
    item, base_len, cand_len = pair_lengths(pairs, field)
    base_correct = [b.correct for b, _ in pairs]
    cand_correct = [c.correct for _, c in pairs]
    if None in base_correct + cand_correct:
        return item, base_len, cand_len, None, None
    return item, base_len, cand_len, np.array(base_correct, dtype=bool), np.array(cand_correct, dtype=bool)


def _block(pairs, field: str, result: PairedComparison, limit: float | None, budget_points: int) -> PairedFigures:
    """Ratios, accuracy, pathology rates and budget exhaustion over a set of pairs, the
    statistics from ``result``; the budget curves up to ``limit`` (None: the pairs' shared one)."""
    _, base_len, cand_len = pair_lengths(pairs, field)
    inflation = result.inflation
    base, cand = [b for b, _ in pairs], [c for _, c in pairs]
    base_rates, cand_rates = flag_rates(base), flag_rates(cand)
    rates = {name: RateSides(base_rates[name], cand_rates[name]) for name in PATHOLOGIES}
    budget = rates["budget_exhausted"].candidate.rate
    notes = list(inflation.notes)
    lower_bound = bool(budget)
    if lower_bound:
        notes.append(
            f"{percent(budget)}% of candidate traces hit the generation budget: "
            "their true length is longer, so the ratios are lower bounds"
        )
    elif budget is None:
        notes.append("budget exhaustion unknown (no finish reason or token counts): ratios may be lower bounds")
    if result.accuracy is not None:
        notes.extend(result.accuracy.notes)
    limit = limit or shared_limit(base + cand, field)  # one budget axis for both runs
    figures = Sides(*(reasoning_figures(samples, field, limit, budget_points) for samples in (base, cand)))
    return PairedFigures(
        n_pairs=inflation.n_pairs,
        n_items=inflation.n_items,
        mean_length=Sides(float(base_len.mean()), float(cand_len.mean())),
        ratio_of_means=inflation.ratio_of_means,
        both_correct_ratio=inflation.both_correct_ratio,
        paired_geomean_ratio=inflation.paired_geomean_ratio,
        ratio_is_lower_bound=lower_bound,
        pathology_rates=rates,
        accuracy=result.accuracy,
        reasoning=figures,
        reflection_marker_ratio=_marker_ratio(figures),
        notes=tuple(notes),
    )


def _marker_ratio(figures: Sides) -> float | None:
    """Candidate / baseline reflection markers per 1,000 reasoning words (None when either is unknown or zero)."""
    rates = [(side["reflection_markers"] or {}).get("per_1k_words") for side in (figures.baseline, figures.candidate)]
    return rates[1] / rates[0] if rates[0] and rates[1] is not None else None
