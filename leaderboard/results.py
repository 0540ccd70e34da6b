"""What ``compare`` returns: result objects with named fields (scipy's shape), rendered to
the documented ``--json`` object once, by ``as_json``. The gate, selection and the
leaderboard read the fields, never the JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qr_metrics.pathologies import FlagRate
from qr_metrics.stats import AccuracyComparison, BootstrapConfig, Interval, MacroRatio
from qr_metrics.units import Unit


@dataclass(frozen=True)
class Sides:
    """One figure of both runs."""

    baseline: Any
    candidate: Any

    def as_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "candidate": self.candidate}


@dataclass(frozen=True)
class RateSides:
    """A pathology's ``FlagRate`` in both runs: the rate over the samples whose flag is known,
    and how many are known."""

    baseline: FlagRate
    candidate: FlagRate

    def as_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline.rate, "candidate": self.candidate.rate,
                "known": {"baseline": self.baseline.known, "candidate": self.candidate.known}}


@dataclass(frozen=True)
class PairedFigures:
    """Everything compare reports over one set of pairs (a task, or all of them).

    ``reasoning``: both runs' ``figures.reasoning_figures`` (budget curve, efficiency,
    reflection markers, repeats), on one budget axis.
    """

    n_pairs: int
    n_items: int
    mean_length: Sides
    ratio_of_means: Interval
    both_correct_ratio: Interval | None
    paired_geomean_ratio: Interval | None
    ratio_is_lower_bound: bool
    pathology_rates: dict[str, RateSides]
    accuracy: AccuracyComparison | None
    reasoning: Sides
    reflection_marker_ratio: float | None
    notes: tuple[str, ...]

    @property
    def budget_exhausted(self) -> RateSides:
        return self.pathology_rates["budget_exhausted"]

    def as_json(self) -> dict[str, Any]:
        acc = self.accuracy
        return {
            "n_pairs": self.n_pairs,
            "n_items": self.n_items,
            "mean_length": self.mean_length.as_json(),
            "ratio_of_means": self.ratio_of_means.as_dict(),
            "both_correct_ratio": interval_json(self.both_correct_ratio),
            "paired_geomean_ratio": interval_json(self.paired_geomean_ratio),
            "ratio_is_lower_bound": self.ratio_is_lower_bound,
            "budget_exhausted": self.budget_exhausted.as_json(),
            "accuracy": None if acc is None else {
                "baseline": acc.baseline.estimate, "candidate": acc.candidate.estimate, "delta": acc.delta.as_dict(),
                "mcnemar_p": acc.mcnemar_p, "n_discordant": acc.n_discordant,
            },
            "pathology_rates": {name: rates.as_json() for name, rates in self.pathology_rates.items()},
            **{name: {"baseline": self.reasoning.baseline[name], "candidate": self.reasoning.candidate[name]}
               for name in self.reasoning.baseline},
            "reflection_marker_ratio": self.reflection_marker_ratio,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Comparison:
    """A candidate run against its baseline: per task, overall, and the macro ratio."""

    unit: Unit
    bootstrap: BootstrapConfig
    baseline: str
    baseline_source: Path
    candidate: str
    candidate_source: Path
    n_pairs: int
    only_baseline: int
    only_candidate: int
    warnings: tuple[str, ...]
    tasks: dict[str, PairedFigures]
    overall: PairedFigures
    macro_ratio: MacroRatio

    def as_json(self) -> dict[str, Any]:
        """The documented ``qr-eval compare --json`` object."""
        macro = {**self.macro_ratio.ratio.as_dict(), "notes": list(self.macro_ratio.notes)}
        return {
            **statistics_header(self.unit, self.bootstrap),
            "baseline": {"name": self.baseline, "source": str(self.baseline_source)},
            "candidate": {"name": self.candidate, "source": str(self.candidate_source)},
            "n_pairs": self.n_pairs,
            "only_baseline": self.only_baseline,
            "only_candidate": self.only_candidate,
            "warnings": list(self.warnings),
            "tasks": {task: figures.as_json() for task, figures in self.tasks.items()},
            "overall": {**self.overall.as_json(), "macro_ratio": macro},
        }


def statistics_header(unit: Unit, config: BootstrapConfig) -> dict[str, Any]:
    """The unit and bootstrap settings every statistics JSON output starts with."""
    return {
        "unit": unit.name,
        "unit_field": unit.field,
        "confidence": config.confidence,
        "method": config.method,
        "n_resamples": config.n_resamples,
        "seed": config.seed,
    }


def interval_json(value: Interval | None) -> dict | None:
    """An interval's JSON (``estimate``, ``low``, ``high``), or None."""
    return None if value is None else value.as_dict()
