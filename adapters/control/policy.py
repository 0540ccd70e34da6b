"""What to do with the rows of a batch: when a row may be rescued, planning, and the rescue.

:func:`may_rescue` is the one rule every watch applies (``qr-hf``'s logits processor, vLLM's
in-engine processor, the chunked and engine-detected watches, and :func:`rescue_batch`);
:func:`plan_batch` lets the reference write the first ``plan_tokens`` ids of every row and
:func:`rescue_batch` commits or falls back for every row cut at a loop or at the budget.
The choice between commit and fallback is ``qr_metrics.rescue_choice.choose_rescue``, which
``qr-eval replay`` applies to logged traces too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qr_metrics.graders import grader_for_task
from qr_metrics.rescue_choice import RescueChoice, choose_rescue
from qr_metrics.segments import split_reasoning
from qr_metrics.sidecar import RescueEvent

from ..model_args import RescueParams
from .engine import Engine
from .trace import Batch, Trace


def may_rescue(loop_found: Any, length: Any, min_reasoning_tokens: Any, closed: Any, ended: Any) -> Any:
    """Whether a row may be rescued now: it has a cause (a loop found, or a budget that ran
    out), holds at least ``min_reasoning_tokens`` ids, its reasoning is still open and its
    generation has not ended (at eos or a stop sequence, or stopped already).

    Elementwise on numpy arrays (one entry per row; scalars broadcast); on one row's values it
    returns a numpy bool.
    """
    return (np.asarray(loop_found, dtype=bool) & (np.asarray(length) >= min_reasoning_tokens)
            & ~np.asarray(closed, dtype=bool) & ~np.asarray(ended, dtype=bool))


def commit_text(params: RescueParams, answer: str | None) -> str:
    """The text appended to a cut trace: the close, then the answer when one is committed."""
    if answer is None:
        return params.close_text
    return params.close_text + params.commit_template.format(answer=answer)


def answer_room(prompt_length: int, completion_length: int, close_length: int, answer_tokens: int,
                max_length: int | None) -> int:
    """How many completion ids fit before a forced close (``close_length`` ids) and
    ``answer_tokens``, in a model that takes ``max_length`` ids (None: no limit)."""
    if max_length is None:
        return completion_length
    return max(0, max_length - prompt_length - close_length - answer_tokens)


def writes_answer(choice: RescueChoice, trigger: str) -> bool:
    """Whether the rescue closes the reasoning and has a model write the answer."""
    return (choice.kind == "commit" and choice.answer is None) or (choice.kind == "fallback" and trigger == "length")


def plan_batch(batch: Batch, params: RescueParams, engine: Engine) -> None:
    """The reference writes the first ``plan_tokens`` ids of every row."""
    budget = min(params.plan_tokens, batch.budget)
    new, ended = engine.generate("reference", [row.prompt for row in batch.rows], budget, "plan")
    for row, ids, done in zip(batch.rows, new, ended):
        row.ids, row.plan = list(ids), len(ids)
        if done:
            row.done, row.finish, row.final = True, "stop", "stop"
        elif len(ids) >= batch.budget:
            row.done, row.finish, row.final = True, "length", "length"


def rescue_batch(batch: Batch, params: RescueParams, engine: Engine) -> None:
    """Commit or fall back for every row cut at a loop or at the budget inside its reasoning."""
    started = engine.clock()
    answer_jobs, fallback_jobs = [], []  # (row, prefix ids, new-token budget)
    close = engine.encode(params.close_text)
    for row in batch.rows:
        trigger = _trigger(row, params, engine)
        if trigger is None:
            continue
        cut = row.loop[0] if trigger == "loop" else len(row.ids)
        choice = _choose(row, cut, params, engine)
        room = answer_room(len(row.prompt), len(row.ids), len(close), params.answer_tokens, engine.max_length)
        if writes_answer(choice, trigger) and cut > room:
            cut = room  # the end of the reasoning makes way for the close and the answer
            choice = _choose(row, cut, params, engine)
        tokens_cut = len(row.ids) - cut
        row.keep(cut)
        row.events.append(RescueEvent(
            kind=choice.kind, trigger=trigger, position=cut,
            period=row.loop[1] if trigger == "loop" else None, answer=choice.answer, tokens_cut=tokens_cut,
        ))
        job = _apply(choice, row, trigger, batch.budget, params, engine, close)
        if job is not None:
            (answer_jobs if choice.kind == "commit" else fallback_jobs).append(job)
    for model, jobs in (("lowbit", answer_jobs), ("reference", fallback_jobs)):
        if jobs:
            _finish(model, jobs, engine)
    batch.wall["rescue"] = batch.wall.get("rescue", 0.0) + engine.clock() - started


def _choose(row: Trace, cut: int, params: RescueParams, engine: Engine) -> RescueChoice:
    reasoning = split_reasoning(engine.decode(row.ids[:cut]), params.measure, row.opened).reasoning
    return choose_rescue(params.rescue, reasoning, grader_for_task(row.task))


def _trigger(row: Trace, params: RescueParams, engine: Engine) -> str | None:
    """``loop`` when a watch cut the row at a loop, ``length`` when the budget ran out inside
    the reasoning; None when :func:`may_rescue` says no (before ``min_reasoning_tokens``,
    after the reasoning closed, or after a plan ended the row)."""
    if row.loop is not None and row.finish in ("loop", "length"):
        trigger, closed = "loop", False  # a watch reports only loops inside open reasoning
    elif row.finish == "length":
        trigger = "length"
        closed = not split_reasoning(engine.decode(row.ids), params.measure, row.opened).unclosed
    else:
        return None  # it stopped by itself
    return trigger if may_rescue(True, len(row.ids), params.min_reasoning_tokens, closed, row.done) else None


def _apply(choice: RescueChoice, row: Trace, trigger: str, budget: int, params: RescueParams, engine: Engine,
           close: list[int]) -> tuple[Trace, list[int], int] | None:
    """Append the committed answer, or the job that writes one or continues the trace."""
    if choice.kind == "commit" and choice.answer is not None:
        row.ids = row.ids + engine.encode(commit_text(params, choice.answer))
        row.final = "stop"
        return None
    if choice.kind == "commit":
        return row, row.ids + close, params.answer_tokens
    if trigger == "loop":
        return row, row.ids, max(1, budget - len(row.ids))
    return row, row.ids + close, params.answer_tokens


def _finish(model: str, jobs: list[tuple[Trace, list[int], int]], engine: Engine) -> None:
    """Run the jobs of one model as one batch; each row keeps at most its own budget."""
    budget = max(need for _, _, need in jobs)
    new, ended = engine.generate(model, [row.prompt + prefix for row, prefix, _ in jobs], budget, None)
    for (row, prefix, need), ids, done in zip(jobs, new, ended):
        row.final = "stop" if done and len(ids) <= need else "length"
        ids = ids[:need]
        row.ids = prefix + ids
        setattr(row, model, getattr(row, model) + len(ids))
