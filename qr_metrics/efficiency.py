"""What a reasoning trace spends beyond its answer, from what a run already holds.

Accuracy under a thinking budget (OptimalThinkingBench's OAA_t and AUC_OAA), token
efficiency (evalscope ThinkBench's first-correct and reflection tokens, found here from the
answers the reasoning states instead of an LLM judge), self-correction markers, and how much
accuracy moves between repeats. Pure functions over plain arrays and text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from .documents import item_indices


@dataclass(frozen=True)
class BudgetCurve:
    """Accuracy when every trace longer than ``t`` counts as wrong, for ``t`` in ``budgets``
    (0 to ``limit``), and ``auc``, the area under that curve over [0, limit] divided by limit."""

    limit: float
    budgets: list[float]
    accuracy: list[float]
    auc: float

    def as_dict(self) -> dict:
        return {"limit": self.limit, "budgets": self.budgets, "accuracy": self.accuracy, "auc": self.auc}


def budget_curve(lengths: Sequence[float], correct: Sequence[bool], limit: float, points: int = 20) -> BudgetCurve:
    """OAA_t on ``points + 1`` evenly spaced budgets, and AUC_OAA computed exactly.

    The curve is a step function, so its area is exact without a grid: a correct trace of
    length l adds ``limit - l`` (when l < limit), i.e. AUC = mean(correct * max(0, 1 - l/limit)).
    """
    lengths = np.asarray(lengths, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if len(lengths) == 0 or limit <= 0:
        raise ValueError(f"a budget curve needs samples and a positive limit (got {len(lengths)}, {limit})")
    budgets = np.linspace(0.0, limit, points + 1)
    solved = np.sort(lengths[correct])
    accuracy = np.searchsorted(solved, budgets, side="right") / len(lengths)
    auc = float(np.mean(correct * np.clip(1.0 - lengths / limit, 0.0, None)))
    return BudgetCurve(float(limit), budgets.tolist(), accuracy.tolist(), auc)


def budget_limit(lengths: Sequence[float], generation_budget: int | None) -> float:
    """The budget the curve runs up to: the generation budget when it is known and in the
    lengths' unit (tokens), else the longest trace, so runs compared on the same samples
    share one axis."""
    return float(generation_budget) if generation_budget else float(max(lengths))


def token_efficiency(first_correct: float, reasoning: float) -> float:
    """Share of the reasoning spent before the correct answer was first written (ThinkBench's
    token efficiency); 1 for an empty reasoning, which spent nothing after it either."""
    return min(1.0, first_correct / reasoning) if reasoning else 1.0


@lru_cache(maxsize=8)
def _marker_pattern(markers: tuple[str, ...]) -> re.Pattern:
    """Whole words, in lower case; longer markers first so "but wait" counts once, not also
    as "wait". The leading word boundary of a marker that starts with a letter is checked
    after that letter (``w(?<!\\ww)ait``, the same test as ``\\bwait``): every branch then
    starts with a literal, and the regex engine jumps between candidate letters instead of
    trying every branch at every position (1.6 to 1.8 times as fast on long traces)."""
    phrases = sorted((m.lower() for m in markers), key=len, reverse=True)
    return re.compile("(?:" + "|".join(map(_marker_branch, phrases)) + r")\b")


def _marker_branch(phrase: str) -> str:
    body = r"\s+".join(map(re.escape, phrase.split()))
    first = phrase[0]
    if re.match(r"\w", first):
        return first + r"(?<!\w" + first + ")" + body[1:]
    return r"\b" + body


def count_markers(text: str, markers: Sequence[str]) -> int:
    """Self-correction markers ("wait", "hmm", ...) in ``text``, non-overlapping, whatever
    their case. The text is lowered once: a case-sensitive pattern runs about twice as fast
    as an ``IGNORECASE`` one, and this runs on every sample ``analyze`` reads."""
    return len(_marker_pattern(tuple(markers)).findall(text.lower()))


def per_thousand(count: float, words: float) -> float | None:
    """A count per 1,000 words; None for no words."""
    return 1000.0 * count / words if words else None


@dataclass(frozen=True)
class RepeatSpread:
    """pass@1 averaged over repeats, each repeat's accuracy and their standard deviation."""

    n_repeats: int
    pass_at_1: float
    per_repeat: list[float]
    spread: float

    def as_dict(self) -> dict:
        return {
            "n_repeats": self.n_repeats,
            "pass_at_1": self.pass_at_1,
            "per_repeat": self.per_repeat,
            "spread": self.spread,
        }


def repeat_spread(item: Sequence, repeat: Sequence[int], correct: Sequence[bool]) -> RepeatSpread | None:
    """None with fewer than two repeats. ``pass_at_1`` averages each item's share of correct
    repeats (items weigh alike even when some have fewer repeats); ``spread`` is the sample
    standard deviation of the per-repeat accuracies: how far one sampled run can land from another."""
    repeat = np.asarray(repeat)
    correct = np.asarray(correct, dtype=float)
    repeats = np.unique(repeat)
    if len(repeats) < 2:
        return None
    item_index = item_indices(item)
    per_item = np.bincount(item_index, weights=correct) / np.bincount(item_index)
    per_repeat = [float(correct[repeat == r].mean()) for r in repeats]
    return RepeatSpread(len(repeats), float(per_item.mean()), per_repeat, float(np.std(per_repeat, ddof=1)))
