"""Pair a candidate run with its baseline and compute the paired statistics (DESIGN.md 3).

Pairs are keyed by (task, doc_id, repeat). What does not pair is reported and excluded;
what makes two runs incomparable (other tasks, budget, sampling or tokenizer) is flagged,
and an error with ``strict``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qr_metrics.counts import same_tokenizer, tokenizer_problem
from qr_metrics.pathologies import PATHOLOGIES
from qr_metrics.stats import DEFAULT_BOOTSTRAP, BootstrapConfig, PairedComparison, stratified_comparison

from .analysis import MeasuredSample, measure_run, reasoning_figures, shared_limit
from .runs import InputError, Run
from .units import TOKENS, UNITS, Unit

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


def measure_cached(
    run: Run, tokenizer: str | None = None, progress: bool = True, cache: dict | None = None
) -> list[MeasuredSample]:
    """``measure_run``, measured once per (run object, tokenizer) when given a ``cache``
    (a dict the caller keeps for one command: leaderboard and select compare one baseline
    with many runs)."""
    if cache is None:
        return measure_run(run, tokenizer=tokenizer, progress=progress)
    key = (id(run), tokenizer)
    if key not in cache or cache[key][0] is not run:
        cache[key] = (run, measure_run(run, tokenizer=tokenizer, progress=progress))
    return cache[key][1]


def resolve_unit(
    runs: Sequence[Run],
    unit: str | None = None,
    tokenizer: str | None = None,
    pairs: Sequence[tuple[Run, Run]] = (),
    progress: bool = True,
    cache: dict | None = None,
) -> Unit:
    """The unit ``runs`` are measured in, the one rule of every verb (``units.UNITS``).

    ``unit`` (a ``--unit`` name): that unit, or an ``InputError`` that names the fix when
    some sample lacks it. None: the best unit every sample has, said in one notice line (a
    warning) when it is not tokens. ``pairs``: runs compared with each other, whose token
    counts must come from one tokenizer (two names with the same vocabulary count alike);
    ``tokenizer`` recounts every run with one.
    """
    if unit is not None and unit not in UNITS:
        raise InputError("--unit", f"must be one of {list(UNITS)}, got {unit!r}")
    problem = tokenizer and tokenizer_problem(tokenizer)
    if problem:
        where, what, remedy = _does_not_load(tokenizer, problem, "--tokenizer")
        raise InputError(where, f"{what}; {remedy}")
    measured = [(run, measure_cached(run, tokenizer, progress, cache)) for run in runs]
    no_tokens = _token_problem(measured, pairs, tokenizer is not None)
    lacking = {u: _lacking(u, measured) for u in UNITS.values()}
    usable = [u for u, lack in lacking.items() if lack is None and not (u is TOKENS and no_tokens)]
    if unit is not None:
        asked = UNITS[unit]
        if asked in usable:
            return asked
        where, problem, remedy = no_tokens if asked is TOKENS and no_tokens else lacking[asked]
        other = next((u for u in usable if u is not asked), None)
        remedies = [r for r in (remedy, other and f"use --unit {other.name}") if r]
        raise InputError(where, problem + (f"; {' or '.join(remedies)}" if remedies else ""))
    if not usable:
        where, problem, _ = lacking[UNITS["completion_words"]]
        raise InputError(where, f"no length unit every sample has ({problem})")
    best = usable[0]
    if best is not TOKENS:  # tokens have a problem, which the notice gives
        where, problem, remedy = no_tokens
        log.warning("lengths in %s, the best unit every sample has: %s: %s%s",
                    best.label, where, problem, f" ({remedy})" if remedy else "")
    return best


_Problem = tuple[Path | str, str, str | None]
"""Why a unit cannot be used: where, what is missing, and the remedy (None: none but another unit)."""


def _lacking(unit: Unit, measured: list[tuple[Run, list[MeasuredSample]]]) -> _Problem | None:
    """Why some sample has no length in ``unit``, or None when every sample has one."""
    for run, samples in measured:
        missing = [m for m in samples if unit.field not in m.counts]
        if missing:
            count_only = [m for m in missing if m.sample.completion is None]
            what = f"{len(missing)} sample(s) have no {unit.field!r} count ({unit.label})"
            if count_only:
                held = sorted({field for m in count_only for field in m.counts})
                what += f": count-only data (no completion text), counts {', '.join(held)}"
            return run.source, what, None
    return None


def _token_problem(measured: list[tuple[Run, list[MeasuredSample]]], pairs, recounted: bool) -> _Problem | None:
    """Why lengths cannot be reasoning tokens, or None when they can; ``recounted``: one
    tokenizer (``--tokenizer``) counted every run."""
    for run, samples in measured:
        missing = [m for m in samples if TOKENS.field not in m.counts]
        if not missing:
            continue
        problem = not recounted and run.tokenizer and tokenizer_problem(run.tokenizer)
        if problem:
            return _does_not_load(run.tokenizer, problem, run.source)
        if any(m.sample.completion is None for m in missing):
            return _lacking(TOKENS, [(run, samples)])
        what = f"{len(missing)} sample(s) have no {TOKENS.field!r} count: no tokenizer could be resolved"
        return run.source, what, "pass --tokenizer NAME_OR_PATH to count tokens"
    for baseline, candidate in [] if recounted else pairs:
        if not same_tokenizer(baseline.tokenizer, candidate.tokenizer):
            what = f"token counts come from different tokenizers ({baseline.tokenizer!r} vs {candidate.tokenizer!r})"
            return candidate.source, what, "pass --tokenizer to recount both runs with one"
    return None


def _does_not_load(name: str, problem: str, where: Path | str) -> _Problem:
    what = f"tokenizer {name!r} does not load ({problem}): no token counts"
    return where, what, "pass --tokenizer NAME_OR_PATH to count with one that loads"


def statistics_header(unit: Unit, config: BootstrapConfig) -> dict[str, Any]:
    """The unit and bootstrap settings every statistics JSON output starts with."""
    return {
        "unit": unit.name,
        "unit_field": unit.field,
        "confidence": config.confidence,
        "method": config.method,
        "n_resamples": config.n_resamples,
        "seed": config.seed,
    }


def compare_runs(
    baseline: Run,
    candidate: Run,
    unit: str | None = None,
    config: BootstrapConfig = DEFAULT_BOOTSTRAP,
    tokenizer: str | None = None,
    strict: bool = False,
    progress: bool = True,
    cache: dict | None = None,
    allow_missing: bool | None = None,
) -> dict[str, Any]:
    """The documented ``qr-eval compare --json`` object.

    ``unit``: see :func:`resolve_unit` (None: the best unit both runs have).
    ``cache``: see ``measure_cached`` (measurements shared between calls).
    ``allow_missing``: samples in one run only are excluded (True) or an error (False, so
    that a gate never passes a run evaluated on part of the set); None: an error under
    ``strict`` only.
    """
    issues = compatibility_issues(baseline, candidate)
    if issues and strict:
        raise InputError(candidate.source, "not comparable with the baseline (--strict): " + "; ".join(issues))
    unit = resolve_unit([baseline, candidate], unit, tokenizer, [(baseline, candidate)], progress, cache)
    base_measured = measure_cached(baseline, tokenizer, progress, cache)
    cand_measured = measure_cached(candidate, tokenizer, progress, cache)
    pairing = pair_samples(base_measured, cand_measured)
    if pairing.n_pairs == 0:
        raise InputError(candidate.source, "no sample pairs with the baseline by (task, doc_id, repeat)")
    refuse_unpaired = strict if allow_missing is None else not allow_missing
    if pairing.first_unpaired and refuse_unpaired:
        raise InputError(candidate.source, _unpaired_error(pairing))
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
        result = stratified_comparison([_statistics_input(pairs, field) for pairs in pairing.pairs.values()], config)
    except ValueError as error:  # an undefined statistic, e.g. a zero-length baseline
        raise InputError(baseline.source, f"{field}: {error}") from None
    tasks = {task: _block(pairs, field, r) for (task, pairs), r in zip(pairing.pairs.items(), result.tasks)}
    if len(tasks) == 1:  # overall is that task
        overall = dict(next(iter(tasks.values())))
    else:
        overall = _block([pair for pairs in pairing.pairs.values() for pair in pairs], field, result.overall)
    overall["macro_ratio"] = {**result.macro.ratio.as_dict(), "notes": list(result.macro.notes)}
    return {
        **statistics_header(unit, config),
        "baseline": {"name": baseline.name, "source": str(baseline.source)},
        "candidate": {"name": candidate.name, "source": str(candidate.source)},
        "n_pairs": pairing.n_pairs,
        "only_baseline": pairing.only_baseline,
        "only_candidate": pairing.only_candidate,
        "warnings": warnings,
        "tasks": tasks,
        "overall": overall,
    }


def _unpaired_error(pairing: Pairing) -> str:
    (task, doc_id, repeat), side = pairing.first_unpaired
    return (
        f"{pairing.only_baseline + pairing.only_candidate} sample(s) are in one run only "
        f"({pairing.only_baseline} baseline, {pairing.only_candidate} candidate), the first "
        f"task {task!r} doc_id {doc_id} repeat {repeat} in the {side} only: the runs must hold the same samples "
        "(--strict, and gate/select unless --allow-missing)"
    )


def pair_lengths(pairs, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item ids (unique across tasks), baseline and candidate lengths, over pairs."""
    items = {key: i for i, key in enumerate(dict.fromkeys(b.sample.key[:2] for b, _ in pairs))}
    item = np.array([items[b.sample.key[:2]] for b, _ in pairs])
    base = np.array([b.counts[field] for b, _ in pairs], dtype=float)
    cand = np.array([c.counts[field] for _, c in pairs], dtype=float)
    return item, base, cand


def _rate(values: list[bool | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known and len(known) == len(values) else None


def _statistics_input(pairs, field: str) -> tuple:
    """``(item, base_len, cand_len, base_correct, cand_correct)`` of some pairs, correctness
    None unless every sample has it."""
    item, base_len, cand_len = pair_lengths(pairs, field)
    base_correct = [b.correct for b, _ in pairs]
    cand_correct = [c.correct for _, c in pairs]
    if None in base_correct + cand_correct:
        return item, base_len, cand_len, None, None
    return item, base_len, cand_len, np.array(base_correct, dtype=bool), np.array(cand_correct, dtype=bool)


def _block(pairs, field: str, result: PairedComparison) -> dict[str, Any]:
    """Ratios, accuracy, pathology rates and budget exhaustion over a set of pairs, the
    statistics from ``result``."""
    _, base_len, cand_len = pair_lengths(pairs, field)
    inflation = result.inflation
    rates = {
        name: {"baseline": _rate([b.flags.get(name) for b, _ in pairs]), "candidate": _rate([c.flags.get(name) for _, c in pairs])}
        for name in PATHOLOGIES
    }
    budget = rates["budget_exhausted"]
    notes = list(inflation.notes)
    lower_bound = bool(budget["candidate"])
    if lower_bound:
        notes.append(
            f"{100 * budget['candidate']:.1f}% of candidate traces hit the generation budget: "
            "their true length is longer, so the ratios are lower bounds"
        )
    elif budget["candidate"] is None:
        notes.append("budget exhaustion unknown (no finish reason or token counts): ratios may be lower bounds")
    accuracy = None
    if result.accuracy is not None:
        acc = result.accuracy
        accuracy = {
            "baseline": acc.baseline.estimate,
            "candidate": acc.candidate.estimate,
            "delta": acc.delta.as_dict(),
            "mcnemar_p": acc.mcnemar_p,
            "n_discordant": acc.n_discordant,
        }
        notes.extend(acc.notes)
    base, cand = [b for b, _ in pairs], [c for _, c in pairs]
    limit = shared_limit(base + cand, field)  # one budget axis for both runs
    figures = {"baseline": reasoning_figures(base, field, limit), "candidate": reasoning_figures(cand, field, limit)}
    return {
        "n_pairs": inflation.n_pairs,
        "n_items": inflation.n_items,
        "mean_length": {"baseline": float(base_len.mean()), "candidate": float(cand_len.mean())},
        "ratio_of_means": inflation.ratio_of_means.as_dict(),
        "both_correct_ratio": None if inflation.both_correct_ratio is None else inflation.both_correct_ratio.as_dict(),
        "paired_geomean_ratio": None
        if inflation.paired_geomean_ratio is None
        else inflation.paired_geomean_ratio.as_dict(),
        "ratio_is_lower_bound": lower_bound,
        "budget_exhausted": budget,
        "accuracy": accuracy,
        "pathology_rates": rates,
        **{name: {side: figures[side][name] for side in figures} for name in figures["baseline"]},
        "reflection_marker_ratio": _marker_ratio(figures),
        "notes": notes,
    }


def _marker_ratio(figures: dict[str, dict]) -> float | None:
    """Candidate / baseline reflection markers per 1,000 reasoning words (None when either is unknown or zero)."""
    rates = [(figures[side]["reflection_markers"] or {}).get("per_1k_words") for side in ("baseline", "candidate")]
    return rates[1] / rates[0] if rates[0] and rates[1] is not None else None
