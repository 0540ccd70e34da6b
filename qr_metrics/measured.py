"""Every sample of a ``Run`` measured with :func:`qr_metrics.measure.measure`.

The leaderboard's verbs and the lm-eval tasks' in-harness baseline ratio measure runs with
this one function, so a figure means the same wherever it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from .counts import count_words, tokenizer_problem
from .efficiency import token_efficiency
from .graders import grader_for_task
from .measure import SampleMeasurement, measure
from .params import DEFAULT_PARAMS, MeasureParams
from .pathologies import PATHOLOGIES
from .runs import Run, Sample
from .segments import prompt_opens_reasoning
from .sidecar import SideRecord


@dataclass(frozen=True)
class MeasuredSample:
    """A sample, its counts, and what ``measure`` found in its text (None for a count-only
    sample: then correctness is the record's and every flag is unknown)."""

    sample: Sample
    counts: dict[str, int]
    measurement: SampleMeasurement | None = None

    @property
    def correct(self) -> bool | None:
        return self.sample.correct if self.measurement is None else self.measurement.correct

    @property
    def flags(self) -> dict[str, bool | None]:
        """Pathology flags; None where the data cannot tell."""
        return dict.fromkeys(PATHOLOGIES) if self.measurement is None else self.measurement.flags

    @property
    def loop_kind(self) -> str | None:
        return None if self.measurement is None else self.measurement.loop_kind

    @property
    def loop_onset(self) -> int | None:
        return None if self.measurement is None else self.measurement.loop_onset

    @property
    def loop_onset_char(self) -> int | None:
        return None if self.measurement is None else self.measurement.loop_onset_char

    @property
    def first_correct(self) -> dict[str, int] | None:
        """Reasoning length before the correct answer was first written (``SampleMeasurement``)."""
        return None if self.measurement is None else self.measurement.first_correct

    @property
    def reflection_markers(self) -> int | None:
        return None if self.measurement is None else self.measurement.reflection_markers

    def efficiency(self, unit: str) -> tuple[int, float] | None:
        """Reflection length (after the first correct answer) and token efficiency in
        ``unit``; None for a sample not correct or without that count."""
        first = self.first_correct
        if first is None or unit not in first or unit not in self.counts:
            return None
        total = self.counts[unit]
        return max(0, total - first[unit]), token_efficiency(first[unit], total)

    def as_record(self) -> dict[str, Any]:
        """The ``--per-sample`` JSON Lines record."""
        s = self.sample
        spent = {unit: self.efficiency(unit) for unit in self.first_correct or {}}
        spent = {unit: figures for unit, figures in spent.items() if figures is not None}
        return {
            "task": s.task,
            "doc_id": s.doc_id,
            "repeat": s.repeat,
            "correct": self.correct,
            "counts": self.counts,
            "flags": self.flags,
            "loop_kind": self.loop_kind,
            "loop_onset": self.loop_onset,
            "loop_onset_char": self.loop_onset_char,
            "first_correct": self.first_correct,
            "reflection": {unit: reflection for unit, (reflection, _) in spent.items()} or None,
            "token_efficiency": {unit: efficiency for unit, (_, efficiency) in spent.items()} or None,
            "reflection_markers": self.reflection_markers,
        }


def measure_run(
    run: Run, tokenizer: str | None = None, params: MeasureParams = DEFAULT_PARAMS, progress: bool = True
) -> list[MeasuredSample]:
    """Measure each sample; ``tokenizer`` overrides the run's own (None: the run's, if any).
    A tokenizer that does not load counts nothing (the verbs say why when they pick a unit)."""
    tokenizer = tokenizer or run.tokenizer
    if tokenizer is not None and tokenizer_problem(tokenizer) is not None:
        tokenizer = None
    return [
        measure_sample(sample, tokenizer, params)
        for sample in tqdm(run.samples, desc=f"measuring {run.name}", unit="sample", disable=not progress)
    ]


def measure_sample(sample: Sample, tokenizer: str | None, params: MeasureParams = DEFAULT_PARAMS) -> MeasuredSample:
    """One sample's figures. Token counts from the side file win over re-tokenising: they are
    the generator's own ids, counted by the same definition (``segment_token_counts``)."""
    if sample.completion is None:  # precomputed counts only: no flags can be derived
        return MeasuredSample(sample, dict(sample.counts))
    opened = prompt_opens_reasoning(sample.prompt, params) if sample.prompt else True
    m = measure(
        sample.completion,
        gold=sample.gold,
        correct=sample.correct,
        grader=grader_for_task(sample.task),
        tokenizer=tokenizer,
        max_gen_toks=sample.max_gen_toks,
        finish_reason=sample.finish_reason,
        opened_by_prompt=opened,
        params=params,
    )
    counts = {**sample.counts, **m.counts, **exact_counts(sample.side)}
    counts["completion_words"] = count_words(sample.completion)  # what a per-sample CSV counts
    return MeasuredSample(sample, counts, m)


def exact_counts(side: SideRecord | None) -> dict[str, int]:
    """The side file's token counts, those it has (an old side file has no answer count)."""
    if side is None:
        return {}
    counts = {"completion_tokens": side.completion_tokens}
    for name in ("reasoning_tokens", "answer_tokens"):
        if getattr(side, name) is not None:
            counts[name] = getattr(side, name)
    return counts
