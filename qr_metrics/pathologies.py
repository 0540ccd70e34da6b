"""Per-sample trace pathologies other than loops (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .params import DEFAULT_PARAMS, MeasureParams

PATHOLOGIES = (
    "loop",
    "repetition",
    "budget_exhausted",
    "exhausted_in_reasoning",
    "unclosed",
    "delayed_commitment",
    "answer_found_not_given",
    "no_answer",
)
"""Every pathology flag, in report order."""

NEEDS = {
    **dict.fromkeys(PATHOLOGIES, "the completions' text (count-only data has none)"),
    "budget_exhausted": "a finish reason, or token counts and the generation budget (max_gen_toks), of every sample",
    "exhausted_in_reasoning": "the completions' text and a finish reason (or token counts and the budget)",
    "answer_found_not_given": "the completions' text and the gold answers",
}
"""What data gives each flag: without it the flag, and any rate over it, is unknown."""


def repeated_sentence_share(norms: list[str]) -> float:
    """Share of sentences that repeat an earlier one; ``norms`` are the reasoning's normalised
    sentences, :func:`qr_metrics.loops.sentences` (split as the near-loop detector splits)."""
    return 1.0 - len(set(norms)) / len(norms) if norms else 0.0


def is_repetitive(share: float, params: MeasureParams = DEFAULT_PARAMS) -> bool:
    return share >= params.repetition_threshold


def budget_exhausted(
    finish_reason: str | None, completion_tokens: int | None, max_gen_toks: int | None
) -> bool | None:
    """The completion hit its generation budget (finish reason, or a full token budget).

    None when neither a finish reason nor both token figures are known: unknown is not "no".
    """
    if finish_reason is not None:
        return finish_reason == "length"
    if completion_tokens is None or max_gen_toks is None:
        return None
    return completion_tokens >= max_gen_toks


def first_commitment(
    intermediate: list[tuple[int, str]], final: str, same_answer
) -> int | None:
    """Char offset where the reasoning first wrote the final answer, or None."""
    for position, written in intermediate:
        if same_answer(written, final):
            return position
    return None


def is_delayed(delay_words: int | None, reasoning_words: int, params: MeasureParams = DEFAULT_PARAMS) -> bool:
    """The model kept reasoning for more than ``commit_min_share`` of its reasoning (in
    words) after it first wrote its final answer."""
    if delay_words is None or reasoning_words == 0:
        return False
    return delay_words / reasoning_words > params.commit_min_share


@dataclass(frozen=True)
class FlagRate:
    """How often a pathology occurs among samples: the one definition every verb reports.

    The rate is over the samples whose flag is known (``known`` of ``n``); a sample whose
    data cannot tell (count-only records, no finish reason) is left out, never counted as
    "no". ``known``/``n`` is the coverage, reported beside the rate.
    """

    flagged: int
    known: int
    n: int

    @property
    def rate(self) -> float | None:
        """Share of the known samples that have the pathology; None when none is known."""
        return self.flagged / self.known if self.known else None

    @property
    def at_most(self) -> float | None:
        """The rate if every unknown sample had the pathology (the gate's bound under partial
        coverage); None when none is known."""
        return (self.flagged + self.n - self.known) / self.n if self.known else None


def flag_rate(flags: Iterable[bool | None]) -> FlagRate:
    """The :class:`FlagRate` of some samples' flags (None: the data cannot tell)."""
    flags = list(flags)
    known = [flag for flag in flags if flag is not None]
    return FlagRate(flagged=sum(map(bool, known)), known=len(known), n=len(flags))
