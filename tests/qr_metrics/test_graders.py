"""Graders of the qr suite on hand-made answers: correct, wrong, malformed, and inside an
unclosed reasoning segment (which never counts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qr_metrics.choice import (
    ChoiceGrader,
    YesNoGrader,
    gpqa_doc,
    labelled_doc,
    letter_of,
    shuffle_seed,
)
from qr_metrics.code_sandbox import SandboxLimits
from qr_metrics.graders import CHOICE, CODE, MATH, NUMBER, TOOL_CALL, YES_NO, grader_for_task
from qr_metrics.measure import measure
from qr_metrics.programs import MAX_DRAFTS, CodeGrader, humaneval_doc, mbpp_doc
from qr_metrics.tool_calls import (
    ToolCallGrader,
    bfcl_doc,
    call_matches,
    is_single_call,
    parse_calls,
    value_matches,
)


def grade(completion: str, gold, grader) -> tuple[bool, str | None]:
    """(correct, final answer) of a completion whose prompt opened the reasoning."""
    m = measure(completion, gold=gold, grader=grader)
    return m.correct, m.final_answer


def closed(answer: str) -> str:
    return f"Let me think about it.\n</think>\n\n{answer}"


def test_registry_maps_every_suite_task():
    expected = {
        "qr_math": MATH, "qr_aime24": MATH, "qr_aime25": MATH, "qr_gsm8k": NUMBER,
        "qr_gpqa": CHOICE, "qr_commonsense_qa": CHOICE, "qr_arc_challenge": CHOICE,
        "qr_strategyqa": YES_NO, "qr_humaneval": CODE, "qr_mbpp": CODE, "qr_tools": TOOL_CALL,
    }  # fmt: skip
    for task, grader in expected.items():
        assert grader_for_task(task) is grader, task
    assert grader_for_task("qr_gpqa_main") is CHOICE  # a variant of a family
    assert grader_for_task("qr_gpqaX") is MATH  # not a variant: no "_" after the family name


# --- multiple choice ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("The answer is \\boxed{C}.", "C"),
        ("\\boxed{(C)}", "C"),
        ("\\boxed{c}", "C"),
        ("\\boxed{\\text{C) Paris}}", "C"),
        ("\\boxed{\\textbf{C}}", "C"),
        ("$\\boxed{C.}$", "C"),
        ("**Answer: (C)**", "C"),
        ("The correct option is C because ...", "C"),
        ("C", "C"),
        ("**(C)**", "C"),
        ("\\boxed{A} at first, but finally \\boxed{C}", "C"),
    ],
)
def test_choice_reads_the_letter(answer, expected):
    assert grade(closed(answer), "C", CHOICE) == (True, expected)


@pytest.mark.parametrize(
    "answer, final",
    [
        ("\\boxed{B}", "B"),  # wrong
        ("The answer is B.", "B"),  # wrong, stated
        ("\\boxed{42}", None),  # malformed: the last box holds no letter
        ("\\boxed{C is wrong, so B}", "C"),  # a box is read by its leading letter
        ("I think it is the capital of France.", None),  # no letter at all
        ("\\boxed{", None),  # unbalanced
        ("", None),
    ],
)
def test_choice_wrong_and_malformed(answer, final):
    correct, got = grade(closed(answer), "B" if final == "C" else "C", CHOICE)
    assert got == final
    assert correct is False


def test_choice_inside_unclosed_reasoning_never_counts():
    m = measure("The answer is \\boxed{C}. Wait, let me check again and again", gold="C", grader=CHOICE)
    assert m.correct is False and m.final_answer is None and m.flags["unclosed"] and m.flags["no_answer"]
    assert m.flags["answer_found_not_given"]  # the right letter was written, never given


def test_choice_intermediate_answers_and_delayed_commitment():
    reasoning = "So the answer is (B). " + "Let me double check this carefully. " * 20
    m = measure(reasoning + "</think>\\boxed{B}", gold="B", grader=CHOICE)
    assert m.correct and m.flags["delayed_commitment"]
    assert ChoiceGrader().intermediate_answers("x \\boxed{A} y The answer is: **D**") == [(2, "A"), (18, "D")]
    assert ChoiceGrader().same_answer("(b)", "B") and not ChoiceGrader().same_answer("B", "nonsense")
    assert letter_of("Z") is None and letter_of("A and B") == "A"


def test_gpqa_options_are_shuffled_with_a_seed_from_the_question():
    doc = {"Question": "Which particle is a lepton?", "Correct Answer": "electron ",
           "Incorrect Answer 1": "proton", "Incorrect Answer 2": "neutron [title] x", "Incorrect Answer 3": "pion"}  # fmt: skip
    first = gpqa_doc(doc)
    assert first == gpqa_doc(dict(doc))  # same question, same order
    assert sorted(first["qr_choices"]) == sorted(["electron", "proton", "neutron. x", "pion"])
    assert first["qr_choices"]["ABCD".index(first["qr_gold"])] == "electron"
    # Not Python's per-process string hash: the seed is the same in a fresh interpreter.
    code = "from qr_metrics.choice import shuffle_seed; print(shuffle_seed('Which particle is a lepton?'))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert int(fresh.stdout) == shuffle_seed("Which particle is a lepton?")
    golds = {gpqa_doc({**doc, "Question": f"Question {i}?"})["qr_gold"] for i in range(40)}
    assert golds == set("ABCD")  # the correct option is not always in one place


def test_labelled_docs_are_relettered_by_position():
    arc = {"question": "Q?", "choices": {"text": ["a", "b", "c", "d"], "label": ["1", "2", "3", "4"]}, "answerKey": "3"}
    assert labelled_doc(arc) == {"qr_question": "Q?", "qr_choices": ["a", "b", "c", "d"], "qr_gold": "C"}
    csqa = {"question": " Q? ", "choices": {"label": list("ABCDE"), "text": list("vwxyz")}, "answerKey": "E"}
    assert labelled_doc(csqa)["qr_gold"] == "E" and labelled_doc(csqa)["qr_question"] == "Q?"


# --- yes / no -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, gold, correct, final",
    [
        ("\\boxed{Yes}", "yes", True, "yes"),
        ("\\boxed{\\text{no}}", "no", True, "no"),
        ("\\boxed{True}", True, True, "yes"),
        ("No, because the Sun is a star.", "no", True, "no"),
        ("The answer is: yes", "yes", True, "yes"),
        ("\\boxed{no}", "yes", False, "no"),
        ("\\boxed{maybe}", "yes", False, None),
        ("It depends on the season.", "no", False, None),
    ],
)
def test_yes_no(answer, gold, correct, final):
    assert grade(closed(answer), gold, YES_NO) == (correct, final)


def test_yes_no_inside_unclosed_reasoning_never_counts():
    assert grade("So yes, \\boxed{yes}, but", "yes", YesNoGrader()) == (False, None)


# --- numbers (GSM8K) and AIME -----------------------------------------------------------


@pytest.mark.parametrize(
    "answer, correct",
    [
        ("\\boxed{1003}", True),
        ("\\boxed{1,003}", True),
        ("\\boxed{\\$1003}", True),
        ("\\boxed{1003 \\text{ apples}}", True),
        ("\\boxed{1003.0}", True),
        ("\\boxed{1004}", False),
        ("\\boxed{}", False),
        ("I am not sure.", False),
    ],
)
def test_gsm8k_numbers(answer, correct):
    assert grade(closed(answer), "1003", NUMBER)[0] is correct
    assert grade(answer, "1003", NUMBER) == (False, None)  # unclosed: never graded


def test_aime_integer_answers_from_logged_int_targets():
    aime = grader_for_task("qr_aime24")
    assert grade(closed("\\boxed{077}"), 77, aime)[0]  # Maxwell-Jia/AIME_2024 Answer is an int
    assert grade(closed("\\boxed{76}"), "77", aime)[0] is False


# --- tool calls -----------------------------------------------------------------------

WEATHER_GOLD = json.dumps({"ground_truth": [{"weather.get": {"city": ["Paris", "Paris, France"], "unit": ["celsius", ""],
                                                             "days": [3], "precise": [True, ""]}}]})  # fmt: skip


@pytest.mark.parametrize(
    "answer",
    [
        '```json\n{"name": "weather.get", "arguments": {"city": "Paris", "days": 3}}\n```',
        '<tool_call>\n{"name": "weather.get", "arguments": {"city": "paris, france", "days": 3, "unit": "celsius"}}\n</tool_call>',
        '<tool_call>{"name": "weather_get", "arguments": {"city": "Paris", "days": 3.0}}',  # unclosed last tag
        '```\n{"type": "function", "function": {"name": "weather.get", "arguments": "{\\"city\\": \\"Paris\\", \\"days\\": 3}"}}\n```',
        '```json\n[{"name": "weather.get", "parameters": {"city": "Paris", "days": 3, "precise": true}}]\n```',
        '```python\nweather.get(city="Paris", days=3)\n```',
        '```python\n[weather.get(city="Paris", days=3)]\n```',
        'I will call {"name": "weather.get", "arguments": {"city": "Paris", "days": 3}} now.',
    ],
)
def test_tool_call_accepted_forms(answer):
    correct, final = grade(closed(answer), WEATHER_GOLD, TOOL_CALL)
    assert correct, final


@pytest.mark.parametrize(
    "answer, final_is_none",
    [
        ('```json\n{"name": "weather.get", "arguments": {"city": "Rome", "days": 3}}\n```', False),  # wrong value
        ('```json\n{"name": "weather.get", "arguments": {"city": "Paris"}}\n```', False),  # missing required
        ('```json\n{"name": "weather.get", "arguments": {"city": "Paris", "days": 3, "x": 1}}\n```', False),  # unknown
        ('```json\n{"name": "weather.get", "arguments": {"city": "Paris", "days": "3"}}\n```', False),  # type
        ('```json\n{"name": "weather.get", "arguments": {"city": "Paris", "days": 3, "precise": 1}}\n```', False),
        ('```json\n{"name": "forecast", "arguments": {"city": "Paris", "days": 3}}\n```', False),  # wrong name
        ('```json\n[{"name": "weather.get", "arguments": {"city": "Paris", "days": 3}}, '
         '{"name": "weather.get", "arguments": {"city": "Paris", "days": 3}}]\n```', False),  # two calls
        ('```json\n{"name": "weather.get", "arguments": {"city": "Paris", "days": 3\n```', True),  # broken JSON
        ('```python\nweather.get("Paris", 3)\n```', True),  # positional arguments
        ('{"name": "weather.get", "description": "x", "parameters": {"type": "dict", "properties": {}}}', True),
        ("I would call the weather function for Paris.", True),
    ],
)
def test_tool_call_wrong_and_malformed(answer, final_is_none):
    correct, final = grade(closed(answer), WEATHER_GOLD, ToolCallGrader())
    assert correct is False
    assert (final is None) is final_is_none


def test_tool_call_inside_unclosed_reasoning_never_counts():
    answer = '```json\n{"name": "weather.get", "arguments": {"city": "Paris", "days": 3}}\n```'
    m = measure("I should answer with:\n" + answer, gold=WEATHER_GOLD, grader=TOOL_CALL)
    assert m.correct is False and m.final_answer is None and m.flags["answer_found_not_given"]


def test_tool_call_matching_rules():
    assert value_matches(3, 3.0) and value_matches(3.0, 3) and not value_matches(True, 1)
    assert value_matches("New York, NY", "new york ny") and not value_matches("Boston", "new york")
    assert value_matches([1, 2], [1, 2]) and not value_matches([2, 1], [1, 2])
    nested = [{"f": {"options": [{"color": ["red"], "size": [10, ""]}]}}]
    assert call_matches([{"name": "f", "arguments": {"options": {"color": "Red"}}}], nested)
    assert not call_matches([{"name": "f", "arguments": {"options": {"color": "red", "x": 1}}}], nested)
    assert parse_calls('{"name": "f", "arguments": {}}') == [{"name": "f", "arguments": {}}]
    assert TOOL_CALL.same_answer(
        '[{"name": "f", "arguments": {"a": 1, "b": 2}}]', '[{"arguments": {"b": 2, "a": 1}, "name": "f"}]'
    )


def test_bfcl_documents_keep_single_calls():
    functions = [{"name": "f", "description": "d", "parameters": {"type": "dict", "properties": {}}}]
    turns = [[{"role": "system", "content": "sys"}, {"role": "user", "content": "Do f."}]]
    row = {"id": "live_simple_3-1-0", "multi_turn": False, "functions": json.dumps(functions),
           "turns": json.dumps(turns), "ground_truth": json.dumps([{"f": {}}])}  # fmt: skip
    assert is_single_call(row)
    assert not is_single_call({**row, "id": "parallel_3"})
    assert not is_single_call({**row, "ground_truth": json.dumps([{"f": {}}, {"f": {}}])})
    assert is_single_call({**row, "id": "x", "test_category": "multiple"})
    doc = bfcl_doc(row)
    assert doc["qr_question"] == "Do f." and json.loads(doc["qr_tools"]) == functions
    assert json.loads(doc["qr_gold"]) == {"ground_truth": [{"f": {}}]}


# --- code -----------------------------------------------------------------------------

HUMANEVAL = {
    "prompt": 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n',
    "test": "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n",
    "entry_point": "total",
}
HUMANEVAL_GOLD = humaneval_doc(HUMANEVAL)["qr_gold"]
MBPP_GOLD = mbpp_doc({"test_list": ["assert twice(2) == 4", "assert twice(0) == 0"], "test_setup_code": ""})["qr_gold"]


@pytest.fixture
def code_grader(monkeypatch):
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    return CodeGrader(limits=SandboxLimits(timeout_s=1)).confirmed()


@pytest.mark.parametrize(
    "answer, correct",
    [
        ("```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```", True),  # uses the prompt's import
        ("Body only:\n```python\n    return sum(xs)\n```", True),  # continues the prompt
        ("```py\ndef total(xs):\n    return sum(xs)\n```\nDone.", True),
        ("```python\ndef total(xs):\n    return 0\n```", False),
        ("```python\ndef total(xs):\n    return sum(xs\n```", False),  # syntax error
        ("```python\ndef total(xs):\n    while True:\n        pass\n```", False),  # time limit
        ("def total(xs):\n    return sum(xs)", False),  # no fenced block: no answer
    ],
)
def test_humaneval_answers(code_grader, answer, correct):
    assert grade(closed(answer), HUMANEVAL_GOLD, code_grader)[0] is correct


def test_mbpp_answers_and_unclosed(code_grader):
    good = "```python\ndef twice(x):\n    return 2 * x\n```"
    assert grade(closed(good), MBPP_GOLD, code_grader) == (True, "def twice(x):\n    return 2 * x\n")
    assert grade(closed(good.replace("2 * x", "x + 1")), MBPP_GOLD, code_grader)[0] is False
    m = measure("Draft:\n" + good, gold=MBPP_GOLD, grader=code_grader)  # unclosed reasoning
    assert m.correct is False and m.final_answer is None and m.flags["answer_found_not_given"]


def test_code_runs_only_when_confirmed(monkeypatch):
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    with pytest.raises(PermissionError, match="confirm_run_unsafe_code"):
        measure(closed("```python\ndef twice(x):\n    return 3 * x\n```"), gold=MBPP_GOLD, grader=CodeGrader())
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")  # how qr-eval analyze is allowed to re-grade
    assert grade(closed("```python\ndef twice(x):\n    return 2 * x\n```"), MBPP_GOLD, CodeGrader())[0]


def test_code_drafts_in_the_reasoning():
    blocks = [f"```python\nprint({i})\n```" for i in range(MAX_DRAFTS + 3)]
    reasoning = "\n".join(blocks + ["```text\nnot code\n```", blocks[-1]])
    drafts = CODE.intermediate_answers(reasoning)
    assert len({code for _, code in drafts}) == MAX_DRAFTS  # the most recent distinct drafts
    assert drafts[-1][1] == "print(10)\n" and [at for at, _ in drafts] == sorted(at for at, _ in drafts)
    assert CODE.same_answer("def f():\n    return 1\n\n", "def f():   \n    return 1")
