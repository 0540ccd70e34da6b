"""The rescue decision, shared by the adapters and replay, on hand-made reasoning."""

from __future__ import annotations

import pytest

from qr_adapters.control import commit_text
from qr_adapters.errors import ModelArgumentError
from qr_adapters.model_args import RescueParams
from qr_metrics.graders import CHOICE, MATH
from qr_metrics.rescue_choice import RescueChoice, choose_rescue

WITH = "First 6*7. So the answer is \\boxed{42}. Wait, check. Actually \\boxed{41}? Wait, check."
WITHOUT = "Hmm, let me think. Wait, let me think."


@pytest.mark.parametrize(
    ("mode", "reasoning", "expected"),
    [
        ("off", WITH, None),
        ("commit", WITH, RescueChoice("commit", "41")),  # the last answer written before the cut
        ("commit", WITHOUT, RescueChoice("commit", None)),
        ("fallback", WITH, RescueChoice("fallback")),
        ("commit_then_fallback", WITH, RescueChoice("commit", "41")),
        ("commit_then_fallback", WITHOUT, RescueChoice("fallback")),
    ],
)
def test_choose_rescue(mode, reasoning, expected):
    assert choose_rescue(mode, reasoning, MATH) == expected


def test_choice_tasks_commit_a_letter():
    assert choose_rescue("commit", "It looks like (B). So the answer is C. Wait.", CHOICE) == RescueChoice("commit", "C")


def test_commit_text_closes_and_answers():
    params = RescueParams()
    assert commit_text(params, "42") == "\n</think>\n\nThe final answer is $\\boxed{42}$."
    assert commit_text(params, None) == "\n</think>\n\n"


@pytest.mark.parametrize(
    "args",
    [{"close_text": "done"}, {"commit_template": "no placeholder"}, {"answer_tokens": 0}, {"plan_tokens": -1},
     {"min_reasoning_tokens": True}],
)
def test_bad_params_name_the_argument(args):
    (name,) = args
    with pytest.raises(ModelArgumentError, match=f"^{name}="):
        RescueParams(**args)
