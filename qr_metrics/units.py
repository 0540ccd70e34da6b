"""Length units: the one definition every verb uses (``--unit``, its default, its labels).

A unit names the per-sample count that lengths are read from, and says what that count
counted. Unless ``--unit`` names one, a verb measures in the best unit every sample has,
in the order of ``UNITS`` (``qr_leaderboard.options.Measurer.unit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Unit:
    name: str
    """The ``--unit`` value, and the ``unit`` of every output."""
    field: str
    """The per-sample count lengths are read from (``unit_field``)."""
    label: str
    """What was counted, for headers and notes: ``reasoning words``, ``completion words``."""

    @property
    def short(self) -> str:
        """The label without "reasoning", the segment lengths count unless they say otherwise."""
        return self.label.removeprefix("reasoning ")


UNITS = {
    unit.name: unit
    for unit in (
        Unit("tokens", "reasoning_tokens", "reasoning tokens"),
        Unit("words", "words", "reasoning words"),
        Unit("steps", "steps", "reasoning steps"),
        Unit("completion_words", "completion_words", "completion words"),
    )
}
"""``--unit`` choices, best first: tokens of the evaluated model's tokenizer, then what the
completion text gives without one, then the words of the whole completion, which is all
that count-only data (a per-sample CSV's word count) may hold."""

TOKENS = UNITS["tokens"]

COUNT_FIELDS = ("reasoning_tokens", "answer_tokens", "completion_tokens", "words", "steps", "completion_words")
"""Every per-sample count: the tokens of the reasoning, the answer and the completion (with a
tokenizer), the reasoning's ``words`` and ``steps`` (what ``qr_metrics.measure`` counts), and
the whole completion's words (what count-only data such as a per-sample CSV holds)."""


def best_unit(counts: Iterable[Mapping[str, Any]]) -> Unit | None:
    """The first unit of ``UNITS`` whose count every mapping holds (samples' counts, or
    ``analyze`` summaries keyed by count); None when no unit is common to all."""
    counts = list(counts)
    return next((unit for unit in UNITS.values() if all(unit.field in c for c in counts)), None)
