"""Every non-loop pathology on hand-made traces and on the real fixture generations."""

from __future__ import annotations

import json

import pytest

from qr_metrics.loops import sentences
from qr_metrics.measure import measure
from qr_metrics.params import MeasureParams
from qr_metrics.pathologies import budget_exhausted, repeated_sentence_share

VARIED = " ".join(f"Step {i}: we add {i} to the running total and check the parity." for i in range(40))


# --- repetition -------------------------------------------------------------------------------


def test_repeated_sentence_share_by_hand():
    assert repeated_sentence_share(sentences("A b. A  B! c.\nA b")) == pytest.approx(2 / 4)  # normalised copies
    assert repeated_sentence_share(sentences(VARIED)) == 0.0
    assert repeated_sentence_share([]) == 0.0


def test_repetition_flag_at_its_threshold():
    half = "Wait, check it. Wait, check it. Now add. Then halve."  # 1 repeat of 4: 0.25
    assert not measure(half).flags["repetition"]
    assert measure(half, params=MeasureParams(repetition_threshold=0.25)).flags["repetition"]
    assert measure("Hmm. " * 10 + "Ok.").flags["repetition"]  # 9 of 11 repeat


# --- budget --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "finish_reason, tokens, budget, expected",
    [
        ("length", None, None, True),
        ("stop", 500, 500, False),  # a finish reason wins over counts
        (None, 500, 500, True),
        (None, 499, 500, False),
        (None, None, 500, None),  # unknown is not "no"
        (None, 500, None, None),
    ],
)
def test_budget_exhausted(finish_reason, tokens, budget, expected):
    assert budget_exhausted(finish_reason, tokens, budget) is expected


def test_exhausted_in_reasoning_needs_an_unclosed_trace():
    unclosed = measure("thinking and thinking", finish_reason="length")
    closed = measure("thought</think>\\boxed{1}", finish_reason="length")
    assert unclosed.flags["exhausted_in_reasoning"] and not closed.flags["exhausted_in_reasoning"]
    assert closed.flags["budget_exhausted"]


# --- delayed commitment -----------------------------------------------------------------------------


def test_delayed_commitment_and_its_delay():
    reasoning = "So the answer is \\boxed{12}. " + VARIED
    m = measure(reasoning + "</think>The answer is \\boxed{12}.")
    assert m.flags["delayed_commitment"]
    assert m.commit_delay_words == len(reasoning.split()) - 4  # counted from the \boxed{12}
    assert m.commit_delay_tokens is None  # no tokenizer: tokens are never estimated


def test_commitment_at_the_end_is_not_delayed():
    m = measure(VARIED + " So the answer is \\boxed{12}.</think>\\boxed{12}")
    assert not m.flags["delayed_commitment"]


def test_other_intermediate_answer_is_not_a_commitment():
    m = measure("First guess \\boxed{7}. " + VARIED + "</think>\\boxed{12}")
    assert not m.flags["delayed_commitment"] and m.commit_delay_words is None


# --- answer found, not given; no answer ---------------------------------------------------------


def test_answer_found_not_given():
    m = measure("I get \\boxed{\\frac{1}{2}}. " + VARIED + "</think>\\boxed{3}", gold="0.5")
    assert m.flags["answer_found_not_given"] and m.correct is False


def test_found_and_given_is_fine():
    m = measure("I get \\boxed{1/2}. " + VARIED + "</think>\\boxed{\\frac12}", gold="0.5")
    assert m.correct and not m.flags["answer_found_not_given"]


def test_unclosed_trace_with_a_correct_boxed_answer_is_found_not_given():
    m = measure("so \\boxed{4} ... wait, let me recheck " + VARIED, gold="4")
    assert m.flags["unclosed"] and m.flags["no_answer"] and m.flags["answer_found_not_given"]
    assert m.correct is False  # never score text inside an unclosed trace


def test_no_answer():
    assert measure("done</think>I could not solve it.").flags["no_answer"]
    assert not measure("done</think>The answer is 7.").flags["no_answer"]


# --- real traces ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kv3_math(fixtures_dir):
    return json.loads((fixtures_dir / "generations" / "kvquant_star-kv3_MATH-500.json").read_text())


def test_real_traces(kv3_math):
    measured = [measure(item["generated_text"], gold=item["gold"]) for item in kv3_math]
    flags = {name: sum(bool(m.flags[name]) for m in measured) for name in measured[0].flags}
    # The publisher's note: boxed answers inside the reasoning long before it closes.
    assert flags["delayed_commitment"] >= 3
    for m, item in zip(measured, kv3_math):
        unclosed = "</think>" not in item["generated_text"]
        assert m.flags["unclosed"] == unclosed
        if unclosed:
            assert m.flags["no_answer"] and not m.correct and not m.flags["delayed_commitment"]
        if m.flags["delayed_commitment"]:
            assert m.commit_delay_words > 0.25 * m.counts["words"]
        if m.flags["answer_found_not_given"]:
            assert not m.correct
    # Repetition is rare outside the looping, unclosed traces.
    closed_repetitive = sum(m.flags["repetition"] for m in measured if not m.flags["unclosed"])
    assert closed_repetitive <= 2
    assert flags["budget_exhausted"] == 0  # unknown without a tokenizer or finish reason: never counted
