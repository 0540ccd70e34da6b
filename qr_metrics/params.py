"""Every threshold of the measurement, in one validated object.

Modelled on vLLM's ``SamplingParams``: a frozen dataclass checked once in
``__post_init__``, whose error names the parameter, its value and the allowed range.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from numbers import Integral


@dataclass(frozen=True)
class MeasureParams:
    """Thresholds for segmenting traces and detecting pathologies (DESIGN.md section 3).

    Reasoning tags:
        think_open / think_close: the tags around the reasoning segment.
    Exact loops (a periodic tail of the token sequence):
        loop_min_period, loop_max_period: block lengths searched, in tokens.
        loop_min_copies: copies of the block the periodic run must cover (>= 3).
        loop_window: the run must show those copies within the last this-many tokens.
        loop_tail_slack: tokens after the periodic run still counted as its tail (a budget
            that cuts the last copy mid-token, re-tokenised text that merges it differently).
    Near loops (copies that differ by a word):
        near_loop_sentences: how many trailing sentences are inspected.
        near_loop_max_distinct: at most this many distinct (normalised) sentences among them.
    Repetition:
        repetition_threshold: share of repeated (normalised) reasoning sentences at or above
            which the trace is flagged ``repetition``.
    Delayed commitment:
        commit_min_share: the model went on for more than this share of its reasoning after
            it first wrote its final answer.
    Reflection:
        reflection_markers: self-correction phrases counted in the reasoning (whole words,
            any case; a longer phrase counts once, "but wait" not also as "wait").
    Thinking budget:
        budget_points: the accuracy-under-budget curve is reported at this many evenly
            spaced budgets above 0 (its area is computed exactly, not from these points).
    """

    think_open: str = "<think>"
    think_close: str = "</think>"
    loop_min_period: int = 4
    loop_max_period: int = 256
    loop_min_copies: int = 3
    loop_window: int = 1024
    loop_tail_slack: int = 2
    near_loop_sentences: int = 12
    near_loop_max_distinct: int = 3
    repetition_threshold: float = 0.5
    commit_min_share: float = 0.25
    reflection_markers: tuple[str, ...] = ("wait", "but wait", "alternatively", "let me double-check", "hmm")
    budget_points: int = 20

    def __post_init__(self) -> None:
        check("MeasureParams", bool(self.think_open), "think_open", self.think_open, "a non-empty string")
        check("MeasureParams", bool(self.think_close), "think_close", self.think_close, "a non-empty string")
        check("MeasureParams", self.loop_min_period >= 1, "loop_min_period", self.loop_min_period, ">= 1")
        check(
            "MeasureParams",
            self.loop_max_period >= self.loop_min_period,
            "loop_max_period",
            self.loop_max_period,
            f">= loop_min_period ({self.loop_min_period})",
        )
        check("MeasureParams", self.loop_min_copies >= 3, "loop_min_copies", self.loop_min_copies, ">= 3")
        check(
            "MeasureParams",
            self.loop_window >= self.loop_max_period * self.loop_min_copies,
            "loop_window",
            self.loop_window,
            f">= loop_max_period * loop_min_copies ({self.loop_max_period * self.loop_min_copies})",
        )
        check("MeasureParams", self.loop_tail_slack >= 0, "loop_tail_slack", self.loop_tail_slack, ">= 0")
        check(
            "MeasureParams", self.near_loop_sentences >= 3, "near_loop_sentences", self.near_loop_sentences, ">= 3"
        )
        check(
            "MeasureParams",
            1 <= self.near_loop_max_distinct < self.near_loop_sentences,
            "near_loop_max_distinct",
            self.near_loop_max_distinct,
            f"in [1, near_loop_sentences) = [1, {self.near_loop_sentences})",
        )
        check(
            "MeasureParams",
            0.0 < self.repetition_threshold <= 1.0,
            "repetition_threshold",
            self.repetition_threshold,
            "in (0, 1]",
        )
        check(
            "MeasureParams",
            0.0 <= self.commit_min_share < 1.0,
            "commit_min_share",
            self.commit_min_share,
            "in [0, 1)",
        )
        markers = self.reflection_markers
        check(
            "MeasureParams",
            isinstance(markers, (list, tuple)) and all(isinstance(m, str) and m.strip() for m in markers),
            "reflection_markers",
            markers,
            "a list of non-empty strings",
        )
        object.__setattr__(self, "reflection_markers", tuple(markers))  # a JSON list arrives as a list
        check("MeasureParams", self.budget_points >= 1, "budget_points", self.budget_points, ">= 1")

    @classmethod
    def from_mapping(cls, values: dict) -> "MeasureParams":
        """Build from user input (``--metadata``, a policy file), refusing unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown measurement parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


class ParameterError(ValueError):
    """``Owner.field=value is invalid: must be allowed`` (``field=value ...`` without an owner:
    a model argument); ``field``, ``value`` and ``allowed`` let a command line name its own
    flag or file key instead (``problem``)."""

    def __init__(self, owner: str | None, field: str, value: object, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        where = f"{owner}.{field}" if owner else field
        super().__init__(f"{where}={value!r} is invalid: must be {allowed}")

    @property
    def problem(self) -> str:
        """The message without the owner and field: ``-5 is invalid: must be ...``."""
        return f"{self.value!r} is invalid: must be {self.allowed}"


def check(
    owner: str | None, ok: bool, name: str, value: object, allowed: str, error: type[ParameterError] = ParameterError
) -> None:
    """Raise ``error(owner, name, value, allowed)`` unless ``ok``: the one way every parameter
    object of qr-eval (``MeasureParams``, ``BootstrapConfig``, ``SandboxLimits``, the adapters'
    ``RescueParams``, ...) refuses a value, so their messages read alike."""
    if not ok:
        raise error(owner, name, value, allowed)


def is_int(value: object) -> bool:
    """True for an integer: a Python ``int`` or a numpy integer (any ``numbers.Integral``),
    never a boolean (``True`` is no count)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


DEFAULT_PARAMS = MeasureParams()
