"""What loop rescue does with a trace cut at a loop or at the budget: a pure decision.

The adapters apply it while generating (``qr_adapters``); ``qr-eval replay`` applies the
same decision to logged traces, so the estimate from logs and the live rescue agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graders import Grader

MODES = ("off", "commit", "fallback", "commit_then_fallback")


@dataclass(frozen=True)
class Rescue:
    """What to do with a cut trace: ``commit`` (with ``answer`` when the reasoning already
    wrote one) or ``fallback`` (hand it to the reference model)."""

    kind: str
    answer: str | None = None


def choose_rescue(mode: str, reasoning: str, grader: Grader) -> Rescue | None:
    """The rescue for a trace whose reasoning, up to the cut, is ``reasoning``; None when off.

    The answer committed is the last intermediate answer the grader finds in the reasoning.
    """
    if mode == "off":
        return None
    if mode == "fallback":
        return Rescue("fallback")
    found = grader.intermediate_answers(reasoning)
    answer = found[-1][1] if found else None
    if mode == "commit_then_fallback" and answer is None:
        return Rescue("fallback")
    return Rescue("commit", answer)
