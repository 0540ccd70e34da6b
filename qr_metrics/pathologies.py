"""Per-sample trace pathologies other than loops (DESIGN.md section 3)."""

from __future__ import annotations

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
