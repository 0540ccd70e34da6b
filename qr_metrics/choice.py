"""Generative multiple choice and yes/no questions: documents, answer reading, grading.

Multiple-choice tasks (GPQA Diamond, CommonsenseQA, ARC-Challenge) show lettered options
and ask for the letter within ``\\boxed{}``. ``process_*`` turn a hub dataset into the three
columns the prompt and the grader use: ``qr_question``, ``qr_choices`` (option texts, in the
order shown) and ``qr_gold`` (the correct letter). GPQA's options are shuffled with a seed
taken from the question text, so every run, machine and re-analysis sees the same order.

Reading a letter (``ChoiceGrader.final_answer``), in the answer segment only:

1. the last ``\\boxed{}`` decides when there is one: its content, stripped of ``\\text{}``-like
   wrappers, ``$``, ``*`` and brackets, must be one option letter A-J (``C``, ``(C)``,
   ``C) Paris``, ``\\text{C.}``; a single lower-case letter counts too); anything else in
   the last box is no answer;
2. else the last stated answer: "answer is C", "Answer: **(C)**", "correct option is C";
3. else an answer segment that is nothing but a letter ("C", "(C)", "**C**").

Yes/no questions (StrategyQA) read "yes"/"no" (or "true"/"false") the same way, and also
accept an answer segment that starts with "Yes"/"No" followed by punctuation.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from .answers import boxed_answers

LETTERS = "ABCDEFGHIJ"

_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
_DECORATION = " \t\n$*_`'\"."
_LEADING_LETTER = re.compile(r"^[(\[]?\s*([A-J])\s*[)\]]?(?=$|[\s.:,;)\]-])")
_STATED_LETTER = re.compile(
    r"(?i:\banswer|\bcorrect (?:option|choice))\s*(?i:is|would be|should be)?\s*:?\s*[*_$]*\s*"
    r"(?:\\(?:text|textbf)\{)?[(\[]?([A-J])[)\]]?(?![\w])"
)
_STATED_YES_NO = re.compile(r"(?i)\banswer\s*(?:is|would be|should be)?\s*:?\s*[*_$]*\s*(yes|no|true|false)\b")
_LEADING_YES_NO = re.compile(r"(?i)^[*_\s]*(yes|no)[*_]*\s*[.,!:;]")
_YES_NO = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}


def _unwrap(text: str) -> str:
    for _ in range(3):  # nested wrappers: \textbf{\text{C}}
        text = _WRAPPER.sub(r"\1", text)
    return text.strip(_DECORATION)


def only_letter(text: str) -> str | None:
    """The letter when ``text`` is nothing but one ("C", "(c)", "**C**", "\\text{C}"), else None."""
    bare = _unwrap(text).strip("()[] ")
    return bare.upper() if len(bare) == 1 and bare.upper() in LETTERS else None


def letter_of(text: str) -> str | None:
    """The option letter a short answer names ("C", "(C)", "C) Paris", "\\text{C}"), or None."""
    text = _unwrap(text)
    match = _LEADING_LETTER.match(text)
    return match.group(1) if match else only_letter(text)


def yes_no_of(text: str) -> str | None:
    """"yes" or "no" for a short answer that says so (also "true"/"false"), else None."""
    return _YES_NO.get(_unwrap(text).strip("()[]!?,;: ").lower())


class _ShortAnswerGrader:
    """Reading a short answer, as the module docstring says: the last ``\\boxed{}``, else the
    last stated answer, else the whole answer segment (``whole``)."""

    stated: re.Pattern

    @staticmethod
    def read(text: str) -> str | None:
        """The answer a short text names, or None."""
        raise NotImplementedError

    def stated_answer(self, match: re.Match) -> str:
        return match.group(1)

    def whole(self, answer_segment: str) -> str | None:
        return self.read(answer_segment)

    def final_answer(self, answer_segment: str) -> str | None:
        boxed = boxed_answers(answer_segment)
        if boxed:
            return self.read(boxed[-1][1])
        stated = [self.stated_answer(m) for m in self.stated.finditer(answer_segment)]
        return stated[-1] if stated else self.whole(answer_segment)

    def intermediate_answers(self, reasoning: str) -> list[tuple[int, str]]:
        found = [(at, answer) for at, content in boxed_answers(reasoning) if (answer := self.read(content))]
        found += [(m.start(), self.stated_answer(m)) for m in self.stated.finditer(reasoning)]
        return sorted(found)

    def same_answer(self, first: str, second: str) -> bool:
        return self.read(first) == self.read(second) is not None

    def is_correct(self, prediction: str, gold: Any) -> bool:
        return self.read(str(prediction)) == self.read(str(gold)) is not None


class ChoiceGrader(_ShortAnswerGrader):
    """An option letter; correct when it is the gold letter."""

    stated = _STATED_LETTER
    read = staticmethod(letter_of)
    whole = staticmethod(only_letter)


class YesNoGrader(_ShortAnswerGrader):
    """"yes" or "no" (a segment may also start with "Yes."); correct when it is the gold."""

    stated = _STATED_YES_NO
    read = staticmethod(yes_no_of)

    def stated_answer(self, match: re.Match) -> str:
        return _YES_NO[match.group(1).lower()]

    def whole(self, answer_segment: str) -> str | None:
        leading = _LEADING_YES_NO.match(answer_segment)
        return yes_no_of(answer_segment) or (leading.group(1).lower() if leading else None)

    def is_correct(self, prediction: str, gold: Any) -> bool:
        expected = ("yes" if gold else "no") if isinstance(gold, bool) else yes_no_of(str(gold))
        return yes_no_of(str(prediction)) == expected is not None


# --- documents ------------------------------------------------------------------------


def _choice_doc(question: str, choices: list[str], correct: int) -> dict[str, Any]:
    return {"qr_question": question.strip(), "qr_choices": list(choices), "qr_gold": LETTERS[correct]}


def _gpqa_text(text: str | None) -> str:
    """GPQA's own clean-up of option texts (as lm-eval's gpqa tasks do)."""
    if text is None:
        return " "
    return text.strip().replace(" [title]", ". ").replace("  ", " ")


def shuffle_seed(text: str) -> int:
    """A seed fixed by ``text`` alone (not by Python's per-process string hash)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def gpqa_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """One GPQA row (``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``) as lettered options."""
    options = [_gpqa_text(doc["Correct Answer"])] + [_gpqa_text(doc[f"Incorrect Answer {i}"]) for i in (1, 2, 3)]
    order = list(range(len(options)))
    random.Random(shuffle_seed(doc["Question"])).shuffle(order)
    return _choice_doc(doc["Question"], [options[i] for i in order], order.index(0))


def labelled_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A CommonsenseQA / ARC row (``question``, ``choices: {label, text}``, ``answerKey``).

    Options keep the dataset's order and are relettered A, B, ... by position (some ARC rows
    are labelled 1-4).
    """
    labels = [str(label).strip() for label in doc["choices"]["label"]]
    return _choice_doc(doc["question"], doc["choices"]["text"], labels.index(str(doc["answerKey"]).strip()))


def process_gpqa(dataset):
    return dataset.map(gpqa_doc)


def process_labelled(dataset):
    return dataset.map(labelled_doc)
