"""The rescue scenarios every backend must pass on the looping checkpoint, written once.

Each takes ``make(**rescue_args)``, which returns the backend's lm-eval model armed with
those arguments and writing its side file to ``side_path``, and the checkpoint's tokenizer;
``qr_adapters/test_vllm.py`` and ``qr_adapters/test_completions.py`` run them with their own
engines or servers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jsonlines
from helpers.looping_checkpoint import (
    ANSWER_PREFIX, BLOCK, BUDGET, CLOSE, COMMIT, EARLY_PREFIX, EASY, LONG_IDS, LOWBIT_ANSWER, NO_ANSWER_PREFIX, PLAN,
    REFERENCE_TAIL, generate, ids, rescue_event,
)

from qr_metrics.sidecar import SideRecord

QUESTIONS = ["[LOOPANSWER] what is 6*7?", "[LOOPNONE] what is 2+3?", "[EASY] what is 1+1?", "[LONG] count.",
             "[EARLY] what is 2+2?"]
Make = Callable[..., object]


def side(path: Path) -> dict[int, SideRecord]:
    with jsonlines.open(path) as reader:
        return {r["doc_id"]: SideRecord.from_json(r) for r in reader}


def each_rescue_at_its_exact_position(make: Make, side_path: Path, tok) -> None:
    """Commit with an answer, fallback, a budget run out inside the reasoning, each at its id;
    only the looping rows of the batch are stopped."""
    answer, fallback, easy, long = generate(make(rescue="commit_then_fallback", min_reasoning_tokens=0), QUESTIONS[:4])
    found = side(side_path)
    period = len(ids(tok, BLOCK))
    assert answer == ANSWER_PREFIX + CLOSE + COMMIT
    assert rescue_event(found[0]) == ("commit", "loop", len(ids(tok, ANSWER_PREFIX)), period, "42")
    assert found[0].finish_reason == "loop" and found[0].final_finish_reason == "stop"
    assert fallback == NO_ANSWER_PREFIX + REFERENCE_TAIL
    assert rescue_event(found[1]) == ("fallback", "loop", len(ids(tok, NO_ANSWER_PREFIX)), period, None)
    assert found[1].tokens == {"lowbit": len(ids(tok, NO_ANSWER_PREFIX)), "reference": len(ids(tok, REFERENCE_TAIL))}
    assert easy == EASY and not found[2].rescue and found[2].finish_reason == "stop"
    assert found[2].completion_tokens == len(ids(tok, EASY))  # the generation-config eos id is not counted
    assert rescue_event(found[3]) == ("fallback", "length", BUDGET, None, None)
    assert long == tok.decode(list(LONG_IDS[:BUDGET])) + CLOSE + REFERENCE_TAIL


def commit_without_an_answer_lets_the_low_bit_model_answer(make: Make, side_path: Path, tok) -> None:
    (completion,) = generate(make(rescue="commit", min_reasoning_tokens=0), ["[LOOPNONE] what is 2+3?"])
    assert completion == NO_ANSWER_PREFIX + CLOSE + LOWBIT_ANSWER
    record = side(side_path)[0]
    assert rescue_event(record) == ("commit", "loop", len(ids(tok, NO_ANSWER_PREFIX)), len(ids(tok, BLOCK)), None)
    assert record.final_finish_reason == "stop"


def planning_hands_over_after_exactly_n_ids(make: Make, side_path: Path, tok) -> None:
    (completion,) = generate(make(plan_tokens=5), ["[PLANME] what is 1+1?"])
    assert completion == tok.decode(ids(tok, PLAN)[:5] + ids(tok, EASY))
    record = side(side_path)[0]
    assert record.plan_tokens == 5 and record.tokens == {"lowbit": len(ids(tok, EASY)), "reference": 5}


def a_loop_after_an_early_repetition_stop_is_still_rescued(make: Make, side_path: Path, tok) -> None:
    """vLLM's repetition detection stops the [EARLY] loop after 3 copies, before
    min_reasoning_tokens: the adapter resumes it still watched and rescues it at its onset."""
    assert len(ids(tok, EARLY_PREFIX + BLOCK * 3)) < 50
    generate(make(rescue="commit", min_reasoning_tokens=50), ["[EARLY] what is 2+2?"])
    onset, period = len(ids(tok, EARLY_PREFIX)), len(ids(tok, BLOCK))
    assert rescue_event(side(side_path)[0]) == ("commit", "loop", onset, period, None)


def a_loop_completed_by_the_budgets_last_id_is_rescued_at_its_onset(make: Make, side_path: Path, tok) -> None:
    """vLLM checks the budget before repetition, so it reports ``length`` there."""
    budget = len(ids(tok, ANSWER_PREFIX)) + 3 * len(ids(tok, BLOCK))
    generate(make(rescue="commit", min_reasoning_tokens=0), ["[LOOPANSWER] what is 6*7?"], budget)
    assert rescue_event(side(side_path)[0])[:3] == ("commit", "loop", len(ids(tok, ANSWER_PREFIX)))


WATCHED = (each_rescue_at_its_exact_position, commit_without_an_answer_lets_the_low_bit_model_answer,
           a_loop_after_an_early_repetition_stop_is_still_rescued,
           a_loop_completed_by_the_budgets_last_id_is_rescued_at_its_onset)
"""The scenarios that depend on how the low-bit model is watched (run with every watch)."""
