import pytest

from qr_metrics.params import MeasureParams
from qr_metrics.segments import prompt_opens_reasoning, split_reasoning


def test_end_only_form_splits_at_closing_tag():
    s = split_reasoning("Let me think.\n</think>\nThe answer is \\boxed{4}.")
    assert s.reasoning == "Let me think.\n"
    assert s.answer == "\nThe answer is \\boxed{4}."
    assert s.closed and s.opened and not s.unclosed


def test_full_form_skips_the_opening_tag():
    s = split_reasoning("<think>hmm</think>42", opened_by_prompt=False)
    assert (s.reasoning, s.answer, s.reasoning_start) == ("hmm", "42", len("<think>"))


def test_last_closing_tag_wins():
    s = split_reasoning("a</think>b</think>c")
    assert (s.reasoning, s.answer) == ("a</think>b", "c")


def test_unclosed_trace_is_all_reasoning_and_no_answer():
    s = split_reasoning("so \\boxed{5} ... wait, let me recompute")
    assert s.unclosed
    assert s.answer == ""
    assert "\\boxed{5}" in s.reasoning


def test_no_reasoning_when_prompt_did_not_open_it():
    s = split_reasoning("plain answer 7", opened_by_prompt=False)
    assert (s.reasoning, s.answer, s.opened, s.unclosed) == ("", "plain answer 7", False, False)


def test_configurable_tags():
    params = MeasureParams(think_open="<reasoning>", think_close="</reasoning>")
    s = split_reasoning("x</reasoning>y", params)
    assert (s.reasoning, s.answer) == ("x", "y")


def test_prompt_opens_reasoning():
    assert prompt_opens_reasoning("<|Assistant|><think>\n")
    assert not prompt_opens_reasoning("<think>a</think> user: hi")
    assert not prompt_opens_reasoning("no tags")


@pytest.mark.parametrize("bad", [{"loop_min_copies": 2}, {"loop_min_period": 0}, {"repetition_threshold": 0}])
def test_params_validation_names_the_parameter(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        MeasureParams(**bad)


def test_params_from_mapping_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown measurement parameter"):
        MeasureParams.from_mapping({"loop_copies": 3})
