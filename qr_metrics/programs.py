"""Code generation (HumanEval, MBPP): documents and grading by running the tests.

The answer is the last ```python block of the answer segment, else its last untagged block,
else its last fenced block (``code_sandbox.extract_code``; a block cut open by the budget
counts). No block, no answer. Drafts in the reasoning are its Python or untagged blocks.

The program run for one sample is: the task's prelude (HumanEval: the prompt itself, i.e.
imports, helper functions and the stub with its docstring, which the model's definition then
replaces; MBPP: ``test_setup_code``), the model's code, the tests, and for HumanEval
``check(ENTRY_POINT)``. When the model's block is only an indented body (no
``def ENTRY_POINT``), it continues the HumanEval prompt instead. The sample is correct when
that program exits 0 inside ``code_sandbox.run_program`` (a separate supervised process
per sample with time, memory and process limits, see ``SandboxLimits``).

Running model code must be allowed: inside lm-eval the code tasks say ``unsafe_code: true``,
so lm-eval refuses them before generating anything unless ``--confirm_run_unsafe_code`` is
given, and the task then grades with ``CodeGrader.confirmed()``. Anywhere else (``qr-eval
analyze`` re-grading a logged run) grading requires ``HF_ALLOW_CODE_EVAL=1``, as lm-eval's
own code metric does; without it ``is_correct`` raises ``PermissionError``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from .code_sandbox import SandboxLimits, check_code, extract_code
from .fences import PYTHON_TAGS, fenced_blocks

MAX_DRAFTS = 8
"""Distinct code blocks of the reasoning kept as intermediate answers (the most recent),
bounding how many programs ``answer_found_not_given`` may run per sample."""


def _normalised(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())


def program_parts(code: str, gold: dict[str, Any]) -> tuple[str, str, str | None]:
    """(code to run before the tests, tests, entry point) for one answer and its gold."""
    prelude = gold.get("prelude") or ""
    entry_point = gold.get("entry_point") or None
    first = next((line for line in code.splitlines() if line.strip()), "")
    is_body = (
        entry_point is not None
        and first[:1] in (" ", "\t")
        and re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M) is None
    )
    joined = prelude.rstrip("\n") + "\n" + code if is_body else prelude.rstrip("\n") + "\n\n" + code
    return joined, gold.get("tests") or "", entry_point


@lru_cache(maxsize=2048)
def _passes(code: str, gold_json: str, limits: SandboxLimits, confirmed: bool) -> bool:
    program, tests, entry_point = program_parts(code, json.loads(gold_json))
    return check_code(program, tests, entry_point, limits, confirm_run_unsafe_code=confirmed).passed


@dataclass(frozen=True)
class CodeGrader:
    """Runs the answer's code against the task's tests (module docstring)."""

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    confirm_run_unsafe_code: bool = False

    def confirmed(self) -> CodeGrader:
        """This grader, allowed to run model code (the caller saw the user's confirmation)."""
        return replace(self, confirm_run_unsafe_code=True)

    def final_answer(self, answer_segment: str) -> str | None:
        return extract_code(answer_segment)

    def intermediate_answers(self, reasoning: str) -> list[tuple[int, str]]:
        drafts = [(b.start, b.body) for b in fenced_blocks(reasoning) if b.tag in PYTHON_TAGS and b.body.strip()]
        recent = list(dict.fromkeys(_normalised(code) for _, code in reversed(drafts)))[:MAX_DRAFTS]
        return [(at, code) for at, code in drafts if _normalised(code) in recent]

    def same_answer(self, first: str, second: str) -> bool:
        return _normalised(first) == _normalised(second)

    def is_correct(self, prediction: str, gold: Any) -> bool:
        spec = json.loads(gold) if isinstance(gold, str) else gold
        return _passes(prediction, json.dumps(spec, sort_keys=True), self.limits, self.confirm_run_unsafe_code)


# --- documents ------------------------------------------------------------------------


def humaneval_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """``qr_gold`` for a HumanEval row (``prompt``, ``test``, ``entry_point``)."""
    gold = {"prelude": doc["prompt"], "tests": doc["test"], "entry_point": doc["entry_point"]}
    return {"qr_gold": json.dumps(gold, ensure_ascii=False)}


def mbpp_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """``qr_gold`` for an MBPP row (``test_setup_code``, ``test_list``)."""
    gold = {"prelude": doc.get("test_setup_code") or "", "tests": "\n".join(doc["test_list"]), "entry_point": None}
    return {"qr_gold": json.dumps(gold, ensure_ascii=False)}


def process_humaneval(dataset):
    return dataset.map(humaneval_doc)


def process_mbpp(dataset):
    return dataset.map(mbpp_doc)
