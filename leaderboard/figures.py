"""Figures over measured samples: the per-task summary of ``analyze`` and the reasoning
figures (accuracy under a thinking budget, token efficiency, reflection markers, repeats,
rescue counts) that compare and the leaderboard report."""

from __future__ import annotations

from typing import Any

import numpy as np

from qr_metrics.efficiency import budget_curve, budget_limit, per_thousand, repeat_spread
from qr_metrics.measured import MeasuredSample
from qr_metrics.params import DEFAULT_PARAMS
from qr_metrics.pathologies import PATHOLOGIES, FlagRate, flag_rate
from qr_metrics.sidecar import SideRecord
from qr_metrics.units import COUNT_FIELDS, Unit, best_unit


def summarize(
    measured: list[MeasuredSample], unit: Unit | None = None, budget_points: int = DEFAULT_PARAMS.budget_points
) -> dict[str, dict[str, Any]]:
    """Per task: ``n``, ``accuracy``, length statistics per count, pathology counts and rates,
    the reasoning figures in ``unit`` (None: the best unit every sample has), and ``rescue``
    (see :func:`rescue_counts`) when the task's samples have side-file records.

    This is the documented ``qr-eval analyze --json`` schema.
    """
    unit = unit or best_unit(m.counts for m in measured)
    by_task: dict[str, list[MeasuredSample]] = {}
    for m in measured:
        by_task.setdefault(m.sample.task, []).append(m)
    return {task: _summarize_task(items, unit, budget_points) for task, items in sorted(by_task.items())}


def _summarize_task(items: list[MeasuredSample], unit: Unit, budget_points: int) -> dict[str, Any]:
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
    rates = flag_rates(items)
    summary["counts"] = {name: r.flagged if r.known else None for name, r in rates.items()}
    summary["rates"] = {name: r.rate for name, r in rates.items()}
    summary["known"] = {name: r.known for name, r in rates.items()}
    summary.update(reasoning_figures(items, unit.field, shared_limit(items, unit.field), budget_points))
    rescue = rescue_counts([m.sample.side for m in items if m.sample.side is not None])
    if rescue is not None:
        summary["rescue"] = rescue
    return summary


def flag_rates(samples: list[MeasuredSample]) -> dict[str, FlagRate]:
    """Every pathology's ``FlagRate`` over these samples (the rate over those whose flag is known)."""
    return {name: flag_rate(m.flags.get(name) for m in samples) for name in PATHOLOGIES}


def shared_limit(samples: list[MeasuredSample], unit: str) -> float | None:
    """The budget-curve limit for these samples (:func:`budget_limit`): their one generation
    budget when lengths are tokens, else the longest trace; None when nothing has a length."""
    lengths = [m.counts[unit] for m in samples if unit in m.counts]
    budgets = {m.sample.max_gen_toks for m in samples}
    budget = budgets.pop() if unit == "reasoning_tokens" and len(budgets) == 1 else None
    return (budget_limit(lengths, budget) or None) if lengths else None


def reasoning_figures(
    items: list[MeasuredSample], unit: str, limit: float | None, budget_points: int = DEFAULT_PARAMS.budget_points
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
        budget = {"unit": unit, **budget_curve([m.counts[unit] for m in items], correct, limit, budget_points).as_dict()}
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
        spread = repeat_spread([m.sample.item for m in items], [m.sample.repeat for m in items], correct)
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
