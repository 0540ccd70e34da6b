"""The model arguments for loop rescue and FP16 planning, validated once for every backend.

``qr-hf``, ``qr-vllm`` and ``qr-completions`` take the same ones; :class:`RescueParams` reads
them from lm-eval's model arguments (``rescue=commit,check_every=4,...``). What the adapters do
with them is ``qr_adapters.control``; the choice between commit and fallback is
``qr_metrics.rescue_choice.choose_rescue``, which ``qr-eval replay`` applies to logged traces too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

from qr_metrics.params import MeasureParams, ParameterError, check, is_int
from qr_metrics.rescue_choice import RESCUE_MODES

from .errors import ModelArgumentError

_argument = partial(check, None, error=ModelArgumentError)
"""``_argument(ok, name, value, allowed)``: a bad model argument unless ``ok``."""

LOOP_FIELDS = ("loop_min_period", "loop_max_period", "loop_min_copies")
"""Loop-detector parameters a user may set as model arguments (see ``MeasureParams``)."""


@dataclass(frozen=True)
class RescueParams:
    """What the adapters do about loops and budgets (model arguments of ``qr-hf``/``qr-vllm``).

    rescue: ``off``; ``commit`` (cut at the loop onset, close the reasoning and give the last
        intermediate answer, or let the low-bit model write a short answer when none was
        written); ``fallback`` (the reference model continues from the onset within the
        remaining budget); ``commit_then_fallback`` (commit when an answer exists, else fall
        back). A budget that runs out inside the reasoning is rescued the same way, with the
        end of the budget as the cut; a fallback there has the reference write the answer
        after the closed reasoning, within ``answer_tokens``.
    reference: the full-precision model (same tokenizer) for planning and fallback.
    plan_tokens: the reference writes the first N reasoning tokens; the low-bit model goes on.
    check_every: run the loop detector every N generated tokens (1: every token).
    min_reasoning_tokens: no rescue fires before the trace holds this many tokens.
    answer_tokens: budget for an answer written after a forced close.
    close_text: appended to close the reasoning (``\\n</think>\\n\\n``).
    commit_template: the committed answer, ``{answer}`` replaced by the intermediate answer.
    measure: the loop detector's and segmentation's thresholds (``MeasureParams``).
    """

    rescue: str = "off"
    reference: Any = None  # a path or hub id; a model object through the Python API
    plan_tokens: int = 0
    check_every: int = 8
    min_reasoning_tokens: int = 64
    answer_tokens: int = 64
    close_text: str = "\n</think>\n\n"
    commit_template: str = "The final answer is $\\boxed{{{answer}}}$."
    measure: MeasureParams = MeasureParams()

    def __post_init__(self) -> None:
        _argument(self.rescue in RESCUE_MODES, "rescue", self.rescue, f"one of {', '.join(RESCUE_MODES)}")
        for name in ("plan_tokens", "min_reasoning_tokens"):
            value = getattr(self, name)
            _argument(is_int(value) and value >= 0, name, value, "an integer >= 0")
        for name in ("check_every", "answer_tokens"):
            value = getattr(self, name)
            _argument(is_int(value) and value >= 1, name, value, "an integer >= 1")
        _argument(
            self.reference is not None or not self.uses_reference,
            "plan_tokens" if self.plan_tokens > 0 else "rescue",
            self.plan_tokens if self.plan_tokens > 0 else self.rescue,
            "used with reference=<full-precision model>",
        )
        _argument(self.measure.think_close in self.close_text, "close_text", self.close_text,
               f"a text holding the closing tag {self.measure.think_close!r}")
        _argument("{answer}" in self.commit_template, "commit_template", self.commit_template,
               "a text holding {answer}")

    @property
    def active(self) -> bool:
        """Whether generation must be watched (a rescue mode) or split (planning)."""
        return self.rescue != "off" or self.plan_tokens > 0

    @property
    def uses_reference(self) -> bool:
        """Whether the reference model is needed (planning or a fallback); else it is not loaded."""
        return self.plan_tokens > 0 or self.rescue in ("fallback", "commit_then_fallback")

    def warn_if_reference_unused(self) -> None:
        """A reference nothing uses is not loaded: say so rather than ignore it silently."""
        if self.reference is not None and not self.uses_reference:
            logging.getLogger("qr_adapters").warning(
                "reference=%s is not loaded: only rescue=fallback|commit_then_fallback and plan_tokens use it",
                self.reference)

    @classmethod
    def pop_model_args(cls, kwargs: dict[str, Any]) -> "RescueParams":
        """Take this class's arguments out of a backend's model arguments (the rest go on)."""
        names = [f.name for f in fields(cls) if f.name != "measure"] + list(LOOP_FIELDS)
        return cls.from_model_args({k: kwargs.pop(k) for k in names if k in kwargs})

    @classmethod
    def from_model_args(cls, args: dict[str, Any]) -> "RescueParams":
        """Build from lm-eval model arguments (``rescue=commit,check_every=4,...``)."""
        own = {f.name for f in fields(cls)} - {"measure"}
        loop = {k: args[k] for k in LOOP_FIELDS if k in args}
        try:
            measure = MeasureParams(**loop)
        except ParameterError as error:
            raise ModelArgumentError(error.field, error.value, error.allowed) from None
        return cls(measure=measure, **{k: v for k, v in args.items() if k in own})
