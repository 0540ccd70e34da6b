"""The adapters' side file: what a generation's text alone cannot tell (DESIGN.md section 2).

One JSON object per request, written by ``qr-hf`` (and ``qr-vllm``) and joined to lm-eval's
samples by the run reader. The schema lives here, beside the measurement, because both the
writer (``qr_adapters``) and the reader (``qr_leaderboard``) depend on it and on nothing of
each other. ``SideRecord.from_json`` validates a record once and names the bad field.

Fields:
    task, doc_id, repeat: the sample's key in lm-eval's output (``repeat`` counts the
        requests for the same document, in order).
    prompt_hash: SHA-256 of the prompt string, lm-eval's ``prompt_hash`` of the sample.
    max_gen_toks: the generation budget of the request.
    completion_tokens: token ids in the completion lm-eval received.
    reasoning_tokens: those inside the reasoning segment (after an opening tag the completion
        writes, before the last closing tag; all of them when unclosed), as
        ``qr_metrics.segments.segment_token_counts`` counts them; null when a tag is not one id.
    answer_tokens: those after the last closing tag (0 when unclosed; all of them when the
        reasoning was never opened); null when a tag is not one id, or in a side file
        written before the field existed. The tags count only in ``completion_tokens``.
    tokens: ids of the completion written by each model, ``{"lowbit": n, "reference": m}``
        (planning tokens are the reference's; a committed answer's template is neither).
    plan_tokens: ids the reference wrote before handing over (0 without planning).
    finish_reason: how the low-bit model's generation ended: ``stop`` (eos or a stop
        sequence), ``length`` (the budget) or ``loop`` (the loop detector stopped it).
    final_finish_reason: how the completion lm-eval received ends after any rescue:
        ``stop`` or ``length``; it is what ``budget_exhausted`` reads.
    rescue: the rescue events, in order, each a :class:`RescueEvent`.
    wall_s: wall-clock seconds per phase (``plan``, ``generate``, ``rescue``) of the
        batch the request ran in.
    decode_s_per_token: measured seconds per decoding step per model (``lowbit``,
        ``reference``) in that batch: a phase's generate time over its steps.
"""

from __future__ import annotations

import reprlib
from dataclasses import asdict, dataclass, field
from typing import Any

from .counts import MAX_COUNT, is_count
from .documents import doc_id_key

FINISH_REASONS = ("stop", "length", "loop")
FINAL_FINISH_REASONS = ("stop", "length")
RESCUE_KINDS = ("commit", "fallback")
TRIGGERS = ("loop", "length")
MODELS = ("lowbit", "reference")
PHASES = ("plan", "generate", "rescue")


@dataclass(frozen=True)
class RescueEvent:
    """One rescue: what triggered it, where the trace was cut and what replaced the rest.

    kind: ``commit`` (close the reasoning and answer) or ``fallback`` (the reference
        model continued).
    trigger: ``loop`` (the detector fired) or ``length`` (the budget ran out in reasoning).
    position: completion token index where the trace was cut (the loop onset, or the
        budget end).
    period: the loop's period in tokens (None for ``length``).
    answer: the intermediate answer committed, if one was found before the cut.
    tokens_cut: generated ids discarded after the cut.
    """

    kind: str
    trigger: str
    position: int
    period: int | None = None
    answer: str | None = None
    tokens_cut: int = 0


@dataclass(frozen=True)
class SideRecord:
    task: str
    doc_id: Any
    repeat: int
    prompt_hash: str
    max_gen_toks: int
    completion_tokens: int
    reasoning_tokens: int | None
    tokens: dict[str, int]
    plan_tokens: int
    finish_reason: str
    final_finish_reason: str
    rescue: list[RescueEvent] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)
    decode_s_per_token: dict[str, float | None] = field(default_factory=dict)
    answer_tokens: int | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        """Same form as ``Sample.key`` in the run reader."""
        return (self.task, doc_id_key(self.doc_id), self.repeat)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> "SideRecord":
        """Validate one decoded JSON line; ``RecordError`` names the first bad field."""
        if not isinstance(obj, dict):
            raise RecordError("record", "expected a JSON object")
        unknown = sorted(set(obj) - set(cls.__dataclass_fields__))
        if unknown:
            raise RecordError(unknown[0], "unknown field")
        _need(obj, "task", isinstance(obj.get("task"), str) and obj.get("task"), "a non-empty string")
        try:
            doc_id_key(obj.get("doc_id"))
        except ValueError as error:
            raise RecordError("doc_id", str(error)) from None
        for name in ("repeat", "max_gen_toks", "completion_tokens", "plan_tokens"):
            _need(obj, name, is_count(obj.get(name)), "an integer in [0, 2**53]")
        for name in ("reasoning_tokens", "answer_tokens"):
            value = obj.get(name)
            _need(obj, name, value is None or is_count(value), "null or an integer in [0, 2**53]")
        _need(obj, "prompt_hash", isinstance(obj.get("prompt_hash"), str), "a string")
        tokens = obj.get("tokens")
        _need(obj, "tokens", isinstance(tokens, dict) and set(tokens) <= set(MODELS)
              and all(is_count(v) for v in tokens.values()), f"an object of {list(MODELS)} -> counts")
        _need(obj, "finish_reason", obj.get("finish_reason") in FINISH_REASONS, f"one of {list(FINISH_REASONS)}")
        _need(obj, "final_finish_reason", obj.get("final_finish_reason") in FINAL_FINISH_REASONS,
              f"one of {list(FINAL_FINISH_REASONS)}")
        events = obj.get("rescue", [])
        _need(obj, "rescue", isinstance(events, list) and all(_event_ok(e) for e in events),
              f"a list of events with kind in {list(RESCUE_KINDS)} and trigger in {list(TRIGGERS)}")
        for name, keys in (("wall_s", PHASES), ("decode_s_per_token", MODELS)):
            value = obj.get(name, {})
            _need(obj, name, isinstance(value, dict) and set(value) <= set(keys)
                  and all(v is None or _seconds(v) for v in value.values()),
                  f"an object of {list(keys)} -> seconds")
        return cls(**{**obj, "rescue": [RescueEvent(**e) for e in events]})


def _seconds(value: Any) -> bool:  # finite, and small enough for a float (not NaN)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _event_ok(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and set(event) <= set(RescueEvent.__dataclass_fields__)
        and event.get("kind") in RESCUE_KINDS
        and event.get("trigger") in TRIGGERS
        and is_count(event.get("position"))
        and is_count(event.get("tokens_cut", 0))
    )


class RecordError(ValueError):
    """A side-file record's bad ``field`` and what is wrong with it (``problem``), kept apart
    so that a reader can name the field on its own: ``field: problem``."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def _need(obj: dict, name: str, ok: Any, allowed: str) -> None:
    if not ok:
        raise RecordError(name, f"must be {allowed}, got {reprlib.repr(obj.get(name))}")
