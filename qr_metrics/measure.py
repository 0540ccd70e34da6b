"""One call that turns a raw completion into every per-sample figure qr-eval reports.

Used alike by the lm-eval tasks (``process_results``) and by ``qr-eval analyze``, so the
harness table and the offline analysis can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .counts import TokenCounter, count_steps, count_words, token_counter
from .efficiency import count_markers
from .graders import MATH, Grader
from .loops import detect_exact_loop, detect_near_loop, lexical_ids, loop_end_length, may_end_in_loop, sentences
from .params import DEFAULT_PARAMS, MeasureParams
from .pathologies import budget_exhausted, first_commitment, is_delayed, is_repetitive, repeated_sentence_share
from .segments import split_reasoning


@dataclass(frozen=True)
class SampleMeasurement:
    """Counts, correctness and pathology flags of one completion.

    A flag is None when the data cannot tell (``budget_exhausted`` with neither a finish
    reason nor token counts and a budget; ``answer_found_not_given`` without a gold).
    Positions: ``loop_onset`` and ``commit_delay_tokens`` are in tokens and exist only when
    a tokenizer was given; ``loop_onset_char`` is a char offset into the completion.
    ``first_correct``: for a correct answer, the reasoning length (per unit: ``words``, and
    ``reasoning_tokens`` with a tokenizer) before the reasoning first wrote it; the whole
    reasoning when it never did (the answer first appears after it). None otherwise.
    ``reflection_markers``: self-correction markers in the reasoning (``params.reflection_markers``).
    """

    counts: dict[str, int]
    final_answer: str | None
    correct: bool | None
    flags: dict[str, bool | None]
    loop_kind: str | None
    loop_onset: int | None
    loop_onset_char: int | None
    repetition_share: float
    commit_delay_tokens: int | None
    commit_delay_words: int | None
    first_correct: dict[str, int] | None = None
    reflection_markers: int = 0


def measure(
    completion: str,
    *,
    gold: Any = None,
    correct: bool | None = None,
    grader: Grader = MATH,
    tokenizer: str | TokenCounter | None = None,
    max_gen_toks: int | None = None,
    finish_reason: str | None = None,
    opened_by_prompt: bool = True,
    params: MeasureParams = DEFAULT_PARAMS,
) -> SampleMeasurement:
    """Measure one completion.

    ``gold`` grades the final answer with ``grader``; without it, a known ``correct`` may be
    passed through (generic traces). An unclosed trace has no answer and is never correct.
    """
    segments = split_reasoning(completion, params, opened_by_prompt)
    reasoning = segments.reasoning
    counter = token_counter(tokenizer) if isinstance(tokenizer, str) else tokenizer

    counts = {"words": count_words(reasoning), "steps": count_steps(reasoning)}
    if counter is not None:
        ids, starts = counter.encode(completion)
        in_reasoning = (starts >= segments.reasoning_start) & (
            starts < segments.reasoning_start + len(reasoning)
        )
        counts["reasoning_tokens"] = int(in_reasoning.sum())
        counts["answer_tokens"] = int((starts >= segments.answer_start).sum()) if segments.answer else 0
        counts["completion_tokens"] = len(ids)
        loop_starts = starts[in_reasoning] - segments.reasoning_start
        exact = detect_exact_loop(ids[in_reasoning], params)
        exact_char = None if exact is None else int(loop_starts[exact.onset])
    else:
        exact_char = _lexical_exact_loop(reasoning, params)
    norms = sentences(reasoning)
    loop_kind, onset_char = _loop_kind(reasoning, norms, exact_char, params)

    final = grader.final_answer(segments.answer) if segments.answer.strip() else None
    if gold is not None:
        correct = final is not None and grader.is_correct(final, gold)
    elif correct is not None and segments.unclosed:
        correct = False

    intermediate = grader.intermediate_answers(reasoning)
    commit_at = first_commitment(intermediate, final, grader.same_answer) if final else None
    delay_words = None if commit_at is None else count_words(reasoning[commit_at:])
    share = repeated_sentence_share(norms)
    exhausted = budget_exhausted(finish_reason, counts.get("completion_tokens"), max_gen_toks)
    flags = {
        "loop": loop_kind is not None,
        "repetition": is_repetitive(share, params),
        "budget_exhausted": exhausted,
        "exhausted_in_reasoning": None if exhausted is None else exhausted and segments.unclosed,
        "unclosed": segments.unclosed,
        "delayed_commitment": is_delayed(delay_words, counts["words"], params),
        # without a gold, intermediate answers cannot be graded: unknown, never "no"
        "answer_found_not_given": None if gold is None else not correct and _found_before(intermediate, gold, grader),
        "no_answer": final is None,
    }

    def to_tokens(char: int | None) -> int | None:
        if char is None or counter is None:
            return None
        return int(np.searchsorted(loop_starts, char, side="left"))

    first_correct = None
    if correct:
        first_at = len(reasoning) if commit_at is None else commit_at
        first_correct = {"words": count_words(reasoning[:first_at])}
        if counter is not None:
            first_correct["reasoning_tokens"] = to_tokens(first_at)

    return SampleMeasurement(
        counts=counts,
        final_answer=final,
        correct=correct,
        flags=flags,
        loop_kind=loop_kind,
        loop_onset=to_tokens(onset_char),
        loop_onset_char=None if onset_char is None else onset_char + segments.reasoning_start,
        repetition_share=share,
        commit_delay_tokens=None
        if commit_at is None or counter is None
        else counts["reasoning_tokens"] - to_tokens(commit_at),
        commit_delay_words=delay_words,
        first_correct=first_correct,
        reflection_markers=count_markers(reasoning, params.reflection_markers),
    )


def _lexical_exact_loop(reasoning: str, params: MeasureParams) -> int | None:
    """Char offset of an exact loop found on lexical pieces, or None.

    Splitting costs as much as the text is long, so only tails are split: first the few
    pieces :func:`may_end_in_loop` needs (a varied trace stops there), then the detection
    window, then tails twice as long while the periodic run reaches the start of the tail
    (its onset may lie further back).
    """
    ids, starts, tail_start = _lexical_tail(reasoning, loop_end_length(params))
    if not may_end_in_loop(ids, params):
        return None
    pieces = params.loop_window + params.loop_max_period
    while True:
        if tail_start > 0:  # (at 0 the whole text, a short one, is split already)
            ids, starts, tail_start = _lexical_tail(reasoning, pieces)
        exact = detect_exact_loop(ids, params)
        if exact is None or exact.onset > 0 or tail_start == 0:
            return None if exact is None else int(starts[exact.onset])
        pieces = 2 * len(ids)


def _lexical_tail(reasoning: str, pieces: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Lexical ids and starts of a tail holding at least ``pieces`` pieces (or of the whole
    text), and the char offset the tail starts at."""
    tail_chars = _CHARS_PER_PIECE * pieces
    while True:
        tail_start = max(0, len(reasoning) - tail_chars)
        ids, starts = lexical_ids(reasoning, tail_start)
        if tail_start == 0 or len(ids) >= pieces:
            return ids, starts, tail_start
        tail_chars *= 2


_CHARS_PER_PIECE = 4
"""Chars per lexical piece first budgeted for a tail (pieces average about 3.5 chars)."""


def _loop_kind(
    reasoning: str, norms: list[str], exact_char: int | None, params: MeasureParams
) -> tuple[str | None, int | None]:
    """The loop kind and the char offset (in the reasoning) where its tail starts."""
    if exact_char is not None:
        return "exact", exact_char
    near = detect_near_loop(reasoning, params, norms)
    if near is not None:
        return "near", near.onset_char
    return None, None


_MAX_CHECKED_INTERMEDIATE = 32
"""Distinct intermediate answers graded per sample, bounding math-verify's cost."""


def _found_before(intermediate: list[tuple[int, str]], gold: Any, grader: Grader) -> bool:
    """Whether any answer written during the reasoning was correct."""
    distinct = list(dict.fromkeys(answer for _, answer in intermediate))
    return any(grader.is_correct(answer, gold) for answer in distinct[-_MAX_CHECKED_INTERMEDIATE:])
