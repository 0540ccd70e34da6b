"""Checkpoint selection: gate every candidate, price it, pick the cheapest that passes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from qr_metrics.runs import InputError, Run
from qr_metrics.units import UNITS

from ..options import DEFAULT_OPTIONS, Measurer, Options
from .checks import GateResult, gate
from .policy import GatePolicy


@dataclass(frozen=True)
class Candidate:
    """One candidate of a selection: its gate result and its cost.

    cost = bits x mean reasoning length (in the comparison's unit) over the candidate's
    samples that pair with the baseline: the serving cost of a checkpoint, in bit-weighted
    reasoning units per sample.
    """

    name: str
    bits: float
    mean_length: float
    result: GateResult

    @property
    def cost(self) -> float:
        return self.bits * self.mean_length

    @property
    def passed(self) -> bool:
        return self.result.passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bits": self.bits,
            "mean_length": self.mean_length,
            "cost": self.cost,
            "passed": self.passed,
            "checks": [c.as_dict() for c in self.result.checks],
            "warnings": list(self.result.comparison.warnings),
        }


def cheapest(candidates: Sequence[Candidate]) -> Candidate | None:
    """The passing candidate with the lowest cost; fewer bits break ties between equal
    costs only, then the order given. None when none passes."""
    passing = [c for c in candidates if c.passed]
    if not passing:
        return None
    lowest = min(c.cost for c in passing)
    tied = [c for c in passing if math.isclose(c.cost, lowest, rel_tol=1e-12, abs_tol=0.0)]
    fewest = min(c.bits for c in tied)
    return next(c for c in tied if c.bits == fewest)


@dataclass(frozen=True)
class Selection:
    """Every candidate's checks and cost, and the one chosen (None when none passes)."""

    baseline: str
    policy: GatePolicy
    unit: str
    candidates: tuple[Candidate, ...]

    @property
    def selected(self) -> Candidate | None:
        return cheapest(self.candidates)

    def as_dict(self) -> dict[str, Any]:
        chosen = self.selected
        return {
            "selected": None if chosen is None else chosen.name,
            "baseline": self.baseline,
            "unit": self.unit,
            "cost": f"bits x mean {UNITS[self.unit].label} per sample",
            "policy": self.policy.as_dict(),
            "candidates": [c.as_dict() for c in self.candidates],
        }


def select_checkpoint(
    baseline: Run,
    candidates: Sequence[Run],
    policy: GatePolicy,
    options: Options = DEFAULT_OPTIONS,
    measurer: Measurer | None = None,
) -> Selection:
    """Gate every candidate against ``baseline`` and price it (``Candidate.cost``), every
    one in the same unit (``Measurer.unit`` over all the runs); ``options.allow_missing`` as
    in :func:`gate`."""
    names = [c.name for c in candidates]
    for run in candidates:
        if names.count(run.name) > 1:
            raise InputError(run.source, f"two candidates are named {run.name!r}: set 'name' in their run.json")
        if run.bits is None or not run.bits > 0:
            raise InputError(
                run.source, f"candidate {run.name!r} has no bits: set 'bits' (a number > 0) in its run.json", field="bits"
            )
    measurer = measurer or Measurer(options)  # the baseline is measured once
    unit = measurer.unit([baseline, *candidates], [(baseline, run) for run in candidates]).name
    priced = []
    for run in candidates:
        result = gate(baseline, run, policy, replace(options, unit=unit), measurer)
        priced.append(Candidate(run.name, float(run.bits), result.comparison.overall.mean_length.candidate, result))
    return Selection(baseline.name, policy, unit, tuple(priced))
