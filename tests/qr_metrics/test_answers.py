import re

import numpy as np
import pytest

from qr_metrics.answers import (
    boxed_answers,
    extract_final_answer,
    intermediate_answers,
    math_equal,
    normalize_answer,
    stated_answers,
)
from qr_metrics.counts import count_steps, count_words


def test_boxed_with_nested_braces_and_last_wins():
    text = r"first \boxed{1} then \boxed{\frac{1}{2}} and \boxed{x^{2}+1}"
    assert [a for _, a in boxed_answers(text)] == ["1", r"\frac{1}{2}", "x^{2}+1"]
    assert extract_final_answer(text) == "x^{2}+1"


def test_unbalanced_boxed_is_ignored():
    assert boxed_answers(r"\boxed{\frac{1}{2}") == []


def test_stated_answer_is_the_fallback():
    assert extract_final_answer("Therefore, the answer is 42.") == "42"
    assert extract_final_answer("I am not sure.") is None


def test_stated_answers_match_a_plain_regex_scan():
    # The scan jumps between occurrences of "answer"; it must find what finditer finds,
    # overlapping and adjacent statements included.
    pattern = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(\$[^$\n]{1,120}\$|[^\n.;,]{1,80})")
    parts = ["the answer is 5", "final answer: 7", "answer is: the answer is 9", " ", ".", "\n", "the ",
             "final ", "answer", " is ", ":", "$x$", "Answer", "The Answer is 3;", "thefinal answer is2"]
    rng = np.random.default_rng(3)
    for _ in range(2000):
        text = "".join(rng.choice(parts, 30))
        expected = [
            (m.start(), text[m.start(1) : m.end(1)].strip().strip("$").strip())
            for m in pattern.finditer(text.lower())
        ]
        assert stated_answers(text) == [(at, answer) for at, answer in expected if answer]


def test_intermediate_answers_are_ordered_by_position():
    text = r"So the answer is 3. Wait. \boxed{4}"
    assert [a for _, a in intermediate_answers(text)] == ["3", "4"]


@pytest.mark.parametrize(
    "prediction, gold",
    [
        ("0.5", r"\frac{1}{2}"),  # fraction vs decimal
        (r"\dfrac{3}{4}", r"\frac34"),  # \dfrac vs \frac
        ("[1,2)", "[1, 2)"),  # interval
        (r"10\text{ cm}", "10"),  # units
        (r"\frac{\sqrt{3}}{2}", r"\sqrt3/2"),
        ("1,000", "1000"),
        (r"90^\circ", "90"),
    ],
)
def test_math_equivalence(prediction, gold):
    assert math_equal(prediction, gold)


@pytest.mark.parametrize(
    "prediction, gold",
    [("(1,2]", "[1,2)"), ("0.51", r"\frac{1}{2}"), ("3", "4"), (r"\frac{2}{3}", "0.6")],
)
def test_math_non_equivalence(prediction, gold):
    assert not math_equal(prediction, gold)


def test_normalize_answer():
    assert normalize_answer(r"\left( 1, 2 \right)") == normalize_answer("(1,2)")
    assert normalize_answer(r"\text{Yes}.") == "yes"


def test_word_and_step_counts():
    assert count_words("a  b\tc\nd") == 4
    assert count_steps("step one\n\nstep two\n  \nstep three\n\n\n") == 3
    assert count_steps("") == 0
