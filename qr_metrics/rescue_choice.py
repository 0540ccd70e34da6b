"""What loop rescue does with a trace cut at a loop or at the budget: a pure decision.

The adapters apply it while generating (``qr_adapters``); ``qr-eval replay`` applies the
same decision to logged traces, so the estimate from logs and the live rescue agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graders import Grader

RESCUE_MODES = ("off", "commit", "fallback", "commit_then_fallback")
"""The values of the ``rescue=`` model argument."""


@dataclass(frozen=True)
class RescueChoice:
    """What to do with a cut trace: ``commit`` (with ``answer`` when the reasoning already
    wrote one) or ``fallback`` (hand it to the reference model)."""

    kind: str
    answer: str | None = None


def choose_rescue(mode: str, reasoning: str, grader: Grader) -> RescueChoice | None:
    """The rescue for a trace whose reasoning, up to the cut, is ``reasoning``; None when off.

    The answer committed is the last intermediate answer the grader finds in the reasoning.
    """
    if mode == "off":
        return None
    if mode == "fallback":
        return RescueChoice("fallback")
    found = grader.intermediate_answers(reasoning)
    answer = found[-1][1] if found else None
    if mode == "commit_then_fallback" and answer is None:
        return RescueChoice("fallback")
    return RescueChoice("commit", answer)
