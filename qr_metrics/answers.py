"""Answers written in a trace, and math equivalence through math-verify."""

from __future__ import annotations

import re
from functools import lru_cache

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_IS_PATTERN = r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(\$[^$\n]{1,120}\$|[^\n.;,]{1,80})"
_ANSWER_IS = re.compile(_ANSWER_IS_PATTERN)
_ANSWER_IS_ANY_CASE = re.compile(_ANSWER_IS_PATTERN, re.IGNORECASE)
_LATEX_NOISE = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\ |\^\{?\\circ\}?|\s+")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}")


def _braced(text: str, open_brace: int) -> str | None:
    """The content of the brace group opening at ``open_brace``, or None when unbalanced."""
    depth = 0
    for i in range(open_brace, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : i]
    return None


def boxed_answers(text: str) -> list[tuple[int, str]]:
    """Every complete ``\\boxed{...}`` in ``text`` as (char offset, content), in order."""
    found = []
    for match in _BOXED.finditer(text):
        content = _braced(text, match.end() - 1)
        if content is not None and content.strip():
            found.append((match.start(), content.strip()))
    return found


def stated_answers(text: str) -> list[tuple[int, str]]:
    """Answers announced in prose ("the answer is 5"), as (char offset, answer)."""
    # A case-sensitive pattern over the lowercased text is several times faster than an
    # IGNORECASE one; lowercasing keeps offsets except for rare characters.
    lowered = text.lower()
    if len(lowered) != len(text):
        return _answers_in(text, _ANSWER_IS_ANY_CASE.finditer(text))
    return _answers_in(text, _matches_at_answer_word(lowered))


def _answers_in(text: str, matches) -> list[tuple[int, str]]:
    found = []
    for match in matches:
        answer = text[match.start(1) : match.end(1)].strip().strip("$").strip()
        if answer:
            found.append((match.start(), answer))
    return found


def _matches_at_answer_word(lowered: str):
    """What ``_ANSWER_IS.finditer(lowered)`` yields, tried only where "answer" occurs.

    A regex scan costs about as much per character as the text is long; ``str.find`` skips
    to the few places a match can start ("final " or "the " before the word), in order.
    """
    pos = lowered.find("answer")
    done = 0  # finditer goes on after the end of each match
    while pos != -1:
        match = None
        for start in (pos - len("final "), pos - len("the ")):
            if start >= done:
                match = _ANSWER_IS.match(lowered, start)
                if match:
                    break
        if match:
            yield match
            done = match.end()
        pos = lowered.find("answer", max(pos + 1, done))


def intermediate_answers(reasoning: str) -> list[tuple[int, str]]:
    """Answers the model wrote while still reasoning (boxed or stated), by position."""
    return sorted(boxed_answers(reasoning) + stated_answers(reasoning))


def extract_final_answer(answer: str) -> str | None:
    """The last ``\\boxed{}`` of the answer segment, else the last stated answer."""
    boxed = boxed_answers(answer)
    if boxed:
        return boxed[-1][1]
    stated = stated_answers(answer)
    return stated[-1][1] if stated else None


def normalize_answer(answer: str) -> str:
    """Cheap canonical form for telling whether two written answers are the same text."""
    answer = _TEXT_WRAPPER.sub(r"\1", answer)
    answer = answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return _LATEX_NOISE.sub("", answer).strip("$.").lower()


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    from math_verify import LatexExtractionConfig, parse

    text = gold if "$" in gold or "\\boxed" in gold else f"${gold}$"
    return parse(text, extraction_config=[LatexExtractionConfig()])


def _parse_prediction(prediction: str):
    from math_verify import parse

    return parse(f"${prediction}$")


def math_equal(prediction: str, gold: str) -> bool:
    """math-verify equivalence: gold parsed as LaTeX, the prediction as LaTeX or expression."""
    if normalize_answer(prediction) == normalize_answer(gold):
        return True
    parsed_gold = _parse_gold(gold)
    parsed_prediction = _parse_prediction(prediction)
    if not parsed_gold or not parsed_prediction:
        return False
    from math_verify import verify

    return bool(verify(parsed_gold, parsed_prediction))


def fallback_answer(answer: str) -> str | None:
    """math-verify's own extraction from an answer that has no boxed or stated answer."""
    from math_verify import parse

    parsed = parse(answer)
    return parsed[-1] if parsed and isinstance(parsed[-1], str) else None
