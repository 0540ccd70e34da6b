"""The state of the rows of one generation call, and the side-file records written from it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from qr_metrics.documents import prompt_hash
from qr_metrics.params import DEFAULT_PARAMS, MeasureParams
from qr_metrics.segments import prompt_opens_reasoning, segment_token_counts
from qr_metrics.sidecar import RescueEvent, SideRecord

from ..model_args import RescueParams


@dataclass
class Trace:
    """One request's completion as it is assembled, and what happened to it."""

    prompt: list[int]
    opened: bool
    task: str = ""
    ids: list[int] = field(default_factory=list)
    plan: int = 0
    lowbit: int = 0
    reference: int = 0
    finish: str = "length"
    final: str = "length"
    done: bool = False  # ended during planning
    loop: tuple[int, int] | None = None  # (onset, period) in completion ids
    events: list[RescueEvent] = field(default_factory=list)

    def keep(self, cut: int) -> None:
        """Drop ids after ``cut`` (before any rescue: the ids are the plan, then the low-bit's)."""
        self.ids = self.ids[:cut]
        self.lowbit = max(0, cut - self.plan)
        self.plan = min(self.plan, cut)

    def low_bit_ended(self, new: list[int], ended: bool, loop: tuple[int, int] | None, stopped_at_loop: bool) -> None:
        """Record the low-bit phase: its ids, and whether it stopped, ran out or looped."""
        self.ids, self.lowbit = self.ids + new, len(new)
        self.loop = loop
        if stopped_at_loop:
            self.finish = "loop"
        elif ended:
            self.finish = self.final = "stop"
            self.loop = None
        else:
            self.finish = self.final = "length"


@dataclass
class Batch:
    """The rows of one generation call, with their phase timings."""

    rows: list[Trace]
    prompts: list[str]
    keys: list[tuple[str, Any, int]]
    budget: int
    wall: dict[str, float] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0]))
    measure: MeasureParams = DEFAULT_PARAMS  # the reasoning tags the records count by

    @classmethod
    def start(cls, prompts: list[str], prompt_ids: list[list[int]], keys: list[tuple], budget: int,
              params: RescueParams) -> "Batch":
        rows = [Trace(ids, prompt_opens_reasoning(text, params.measure), key[0])
                for text, ids, key in zip(prompts, prompt_ids, keys)]
        return cls(rows, list(prompts), list(keys), budget, measure=params.measure)

    def timing(self, phase: str | None, model: str, seconds: float, steps: int) -> None:
        """Add a generate call's time to its phase (None: counted by the caller) and model."""
        if phase is not None:
            self.wall[phase] = self.wall.get(phase, 0.0) + seconds
        total = self.steps[model]
        total[0], total[1] = total[0] + seconds, total[1] + max(steps, 0)

    def records(self, encode: Callable[[str], list[int]]) -> list[dict[str, Any]]:
        """The side-file records of the batch (``qr_metrics.sidecar``); ``encode`` is the
        tokenizer's (no special tokens), for the reasoning tags' ids."""
        open_ids, close_ids = encode(self.measure.think_open), encode(self.measure.think_close)
        per_token = {m: (s / n if n else None) for m, (s, n) in self.steps.items()}
        records = []
        for row, (task, doc_id, repeat), prompt in zip(self.rows, self.keys, self.prompts):
            reasoning, answer = segment_token_counts(row.ids, open_ids, close_ids, row.opened)
            records.append(SideRecord(
                task=task, doc_id=doc_id, repeat=repeat, prompt_hash=prompt_hash(prompt),
                max_gen_toks=self.budget, completion_tokens=len(row.ids),
                reasoning_tokens=reasoning, answer_tokens=answer,
                tokens={"lowbit": row.lowbit, "reference": row.reference + row.plan},
                plan_tokens=row.plan, finish_reason=row.finish, final_finish_reason=row.final,
                rescue=row.events, wall_s=dict(self.wall), decode_s_per_token=per_token,
            ).as_json())
        return records
