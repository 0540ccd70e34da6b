"""Measure every sample of a ``Run`` with ``qr_metrics`` and summarise it per task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from qr_metrics.counts import count_words, tokenizer_problem
from qr_metrics.efficiency import budget_curve, budget_limit, per_thousand, repeat_spread, token_efficiency
from qr_metrics.graders import grader_for_task
from qr_metrics.measure import measure
from qr_metrics.params import DEFAULT_PARAMS, MeasureParams
from qr_metrics.pathologies import PATHOLOGIES
from qr_metrics.segments import prompt_opens_reasoning
from qr_metrics.sidecar import SideRecord

from .runs import Run, Sample
from .units import COUNT_FIELDS, Unit, best_unit


@dataclass(frozen=True)
class MeasuredSample:
    """A sample with its figures; ``flags`` values are None where the data cannot tell."""

    sample: Sample
    counts: dict[str, int]
    correct: bool | None
    flags: dict[str, bool | None]
    loop_kind: str | None = None
    loop_onset: int | None = None
    loop_onset_char: int | None = None
    first_correct: dict[str, int] | None = None
    """Reasoning length before the correct answer was first written (see ``SampleMeasurement``)."""
    reflection_markers: int | None = None

    def efficiency(self, unit: str) -> tuple[int, float] | None:
        """Reflection length (after the first correct answer) and token efficiency in
        ``unit``; None for a sample not correct or without that count."""
        if self.first_correct is None or unit not in self.first_correct or unit not in self.counts:
            return None
        total = self.counts[unit]
        return max(0, total - self.first_correct[unit]), token_efficiency(self.first_correct[unit], total)

    def as_record(self) -> dict[str, Any]:
        """The ``--per-sample`` JSON Lines record."""
        s = self.sample
        spent = {unit: self.efficiency(unit) for unit in self.first_correct or {}}
        spent = {unit: figures for unit, figures in spent.items() if figures is not None}
        return {
            "task": s.task,
            "doc_id": s.doc_id,
            "repeat": s.repeat,
            "correct": self.correct,
            "counts": self.counts,
            "flags": self.flags,
            "loop_kind": self.loop_kind,
            "loop_onset": self.loop_onset,
            "loop_onset_char": self.loop_onset_char,
            "first_correct": self.first_correct,
            "reflection": {unit: reflection for unit, (reflection, _) in spent.items()} or None,
            "token_efficiency": {unit: efficiency for unit, (_, efficiency) in spent.items()} or None,
            "reflection_markers": self.reflection_markers,
        }


def measure_run(
    run: Run, tokenizer: str | None = None, params: MeasureParams = DEFAULT_PARAMS, progress: bool = True
) -> list[MeasuredSample]:
    """Measure each sample; ``tokenizer`` overrides the run's own (None: the run's, if any).
    A tokenizer that does not load counts nothing (``compare.resolve_unit`` says why)."""
    tokenizer = tokenizer or run.tokenizer
    if tokenizer is not None and tokenizer_problem(tokenizer) is not None:
        tokenizer = None
    return [
        _measure_sample(sample, tokenizer, params)
        for sample in tqdm(run.samples, desc=f"measuring {run.name}", unit="sample", disable=not progress)
    ]


def _measure_sample(sample: Sample, tokenizer: str | None, params: MeasureParams) -> MeasuredSample:
    if sample.completion is None:  # precomputed counts only: no flags can be derived
        return MeasuredSample(sample, dict(sample.counts), sample.correct, {k: None for k in PATHOLOGIES})
    opened = prompt_opens_reasoning(sample.prompt, params) if sample.prompt else True
    m = measure(
        sample.completion,
        gold=sample.gold,
        correct=sample.correct,
        grader=grader_for_task(sample.task),
        tokenizer=tokenizer,
        max_gen_toks=sample.max_gen_toks,
        finish_reason=sample.finish_reason,
        opened_by_prompt=opened,
        params=params,
    )
    counts = {**sample.counts, **m.counts, **_exact_counts(sample.side)}
    counts["completion_words"] = count_words(sample.completion)  # what a per-sample CSV counts
    return MeasuredSample(
        sample, counts, m.correct, m.flags, m.loop_kind, m.loop_onset, m.loop_onset_char,
        m.first_correct, m.reflection_markers,
    )


def _exact_counts(side: SideRecord | None) -> dict[str, int]:
    """The side file's token counts: the generator's own ids, so they win over re-tokenising."""
    if side is None:
        return {}
    if side.reasoning_tokens is None:
        return {"completion_tokens": side.completion_tokens}
    return {
        "completion_tokens": side.completion_tokens,
        "reasoning_tokens": side.reasoning_tokens,
        "answer_tokens": side.completion_tokens - side.reasoning_tokens,
    }


def summarize(measured: list[MeasuredSample], unit: Unit | None = None) -> dict[str, dict[str, Any]]:
    """Per task: ``n``, ``accuracy``, length statistics per count, pathology counts and rates,
    the reasoning figures in ``unit`` (None: the best unit every sample has), and ``rescue``
    (see :func:`rescue_counts`) when the task's samples have side-file records.

    This is the documented ``qr-eval analyze --json`` schema.
    """
    unit = unit or best_unit(m.counts for m in measured)
    by_task: dict[str, list[MeasuredSample]] = {}
    for m in measured:
        by_task.setdefault(m.sample.task, []).append(m)
    return {task: _summarize_task(items, unit) for task, items in sorted(by_task.items())}


def _summarize_task(items: list[MeasuredSample], unit: Unit) -> dict[str, Any]:
    known = [m.correct for m in items if m.correct is not None]
    summary: dict[str, Any] = {
        "n": len(items),
        "accuracy": float(np.mean(known)) if known else None,
    }
    for field in COUNT_FIELDS:
        values = np.array([m.counts[field] for m in items if field in m.counts], dtype=float)
        if len(values) == len(items):  # a count is reported only when every sample has it
            summary[field] = {
                "mean": float(values.mean()),
                "median": float(np.median(values)),
                "p90": float(np.percentile(values, 90)),
                "max": float(values.max()),
            }
    counts: dict[str, int | None] = {}
    rates: dict[str, float | None] = {}
    for name in PATHOLOGIES:
        flags = [m.flags[name] for m in items if m.flags.get(name) is not None]
        counts[name] = int(sum(flags)) if flags else None
        rates[name] = float(np.mean(flags)) if flags else None
    summary["counts"] = counts
    summary["rates"] = rates
    summary.update(reasoning_figures(items, unit.field, shared_limit(items, unit.field)))
    rescue = rescue_counts([m.sample.side for m in items if m.sample.side is not None])
    if rescue is not None:
        summary["rescue"] = rescue
    return summary


def shared_limit(samples: list[MeasuredSample], unit: str) -> float | None:
    """The budget-curve limit for these samples (:func:`budget_limit`): their one generation
    budget when lengths are tokens, else the longest trace; None when nothing has a length."""
    lengths = [m.counts[unit] for m in samples if unit in m.counts]
    budgets = {m.sample.max_gen_toks for m in samples}
    budget = budgets.pop() if unit == "reasoning_tokens" and len(budgets) == 1 else None
    return (budget_limit(lengths, budget) or None) if lengths else None


def reasoning_figures(
    items: list[MeasuredSample], unit: str, limit: float | None, params: MeasureParams = DEFAULT_PARAMS
) -> dict[str, Any]:
    """Accuracy under a thinking budget up to ``limit``, token efficiency (lengths in
    ``unit``), reflection markers and the spread between repeats; each None where the data
    cannot give it (no correctness, no text, a single repeat).

    ``efficiency`` averages over the correct samples: ``first_correct`` (length before the
    answer was first written), ``reflection`` (length after it), ``token_efficiency``.
    ``reflection_markers``: ``total``, ``per_sample`` (mean) and ``per_1k_words`` (total per
    1,000 reasoning words of those samples).
    """
    correct = [m.correct for m in items]
    graded = None not in correct
    budget = None
    if graded and limit and all(unit in m.counts for m in items):
        budget = {"unit": unit, **budget_curve([m.counts[unit] for m in items], correct, limit, params.budget_points).as_dict()}
    spent = [(m.first_correct[unit], *m.efficiency(unit)) for m in items if m.efficiency(unit) is not None]
    efficiency = None
    if spent:
        first, reflection, share = np.array(spent, dtype=float).T
        efficiency = {
            "unit": unit, "n_correct": len(spent), "first_correct": float(first.mean()),
            "reflection": float(reflection.mean()), "token_efficiency": float(share.mean()),
        }
    marked = [m for m in items if m.reflection_markers is not None]
    markers = None
    if marked:
        total = sum(m.reflection_markers for m in marked)
        markers = {
            "total": total,
            "per_sample": total / len(marked),
            "per_1k_words": per_thousand(total, sum(m.counts["words"] for m in marked)),
        }
    spread = None
    if graded:
        spread = repeat_spread([m.sample.key[:2] for m in items], [m.sample.repeat for m in items], correct)
    return {
        "budget_accuracy": budget,
        "efficiency": efficiency,
        "reflection_markers": markers,
        "repeats": None if spread is None else spread.as_dict(),
    }


def rescue_counts(records: list[SideRecord]) -> dict[str, int] | None:
    """What loop rescue did to these samples; None without side-file records.

    ``rescued``: samples with at least one rescue event; ``committed`` / ``fell_back``: those
    whose last event is a commit / a fallback; ``tokens_saved``: over the samples with a
    loop-triggered event, the budget left unspent, ``max(0, max_gen_toks - completion_tokens)``:
    what a loop would otherwise have burned until the budget ran out.
    """
    if not records:
        return None
    rescued = [r for r in records if r.rescue]
    return {
        "rescued": len(rescued),
        "committed": sum(r.rescue[-1].kind == "commit" for r in rescued),
        "fell_back": sum(r.rescue[-1].kind == "fallback" for r in rescued),
        "tokens_saved": sum(
            max(0, r.max_gen_toks - r.completion_tokens) for r in rescued if any(e.trigger == "loop" for e in r.rescue)
        ),
    }
