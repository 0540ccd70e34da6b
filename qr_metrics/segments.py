"""Split a completion into its reasoning and its answer (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass

from .params import DEFAULT_PARAMS, MeasureParams


@dataclass(frozen=True)
class Segments:
    """A completion cut at the last closing tag.

    ``answer_start`` is the char offset of the answer in the completion (its length when
    there is no answer); ``reasoning_start`` skips an opening tag written by the model.
    """

    reasoning: str
    answer: str
    opened: bool
    closed: bool
    reasoning_start: int
    answer_start: int

    @property
    def unclosed(self) -> bool:
        """Reasoning was opened and never closed: the whole completion is reasoning."""
        return self.opened and not self.closed


def prompt_opens_reasoning(prompt: str, params: MeasureParams = DEFAULT_PARAMS) -> bool:
    """True when the prompt (a chat template) leaves a reasoning tag open for the model."""
    return prompt.rfind(params.think_open) > prompt.rfind(params.think_close)


def split_reasoning(
    completion: str, params: MeasureParams = DEFAULT_PARAMS, opened_by_prompt: bool = True
) -> Segments:
    """Reasoning = text up to the last closing tag; answer = the rest.

    ``opened_by_prompt`` says whether the chat template already opened the reasoning (the
    end-only form of R1-style models, the common case). An opened trace with no closing tag
    is ``unclosed``: all of it is reasoning and the answer is empty, so nothing inside an
    unfinished trace is ever graded. A completion that neither opens nor closes reasoning,
    from a prompt that did not open it, is all answer.
    """
    close = completion.rfind(params.think_close)
    open_at = completion.find(params.think_open)
    opened = opened_by_prompt or open_at != -1
    start = 0
    if open_at != -1 and (close == -1 or open_at < close):
        start = open_at + len(params.think_open)
    if close != -1:
        answer_start = close + len(params.think_close)
        return Segments(completion[start:close], completion[answer_start:], True, True, start, answer_start)
    if opened:
        return Segments(completion[start:], "", True, False, start, len(completion))
    return Segments("", completion, False, False, 0, 0)


def segment_token_counts(
    ids: list[int], open_ids: list[int], close_ids: list[int], opened_by_prompt: bool
) -> tuple[int, int] | tuple[None, None]:
    """``(reasoning_tokens, answer_tokens)`` of a completion's token ids, as
    :func:`split_reasoning` cuts its text (and ``measure`` counts it): reasoning = the ids after
    an opening tag the completion writes (if it writes one before the last closing tag) and
    before the last closing tag; answer = the ids after it; the tags themselves count only in
    the completion's tokens. Opened and never closed: all reasoning, answer 0; neither opened
    by the prompt nor by the completion, and no closing tag: reasoning 0, answer all.

    ``(None, None)`` when a tag is not exactly one id (ids alone cannot tell where it is).
    """
    if len(open_ids) != 1 or len(close_ids) != 1:
        return None, None
    (open_id,), (close_id,) = open_ids, close_ids
    close = len(ids) - 1 - ids[::-1].index(close_id) if close_id in ids else -1
    open_at = ids.index(open_id) if open_id in ids else -1
    start = open_at + 1 if open_at != -1 and (close == -1 or open_at < close) else 0
    if close != -1:
        return close - start, len(ids) - close - 1
    if opened_by_prompt or open_at != -1:
        return len(ids) - start, 0
    return 0, len(ids)
