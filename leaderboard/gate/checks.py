"""The gate's checks: one ``compare`` result against a ``GatePolicy``, each check named, with
its figure, threshold and the reason it passed or failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from qr_metrics.pathologies import NEEDS
from qr_metrics.runs import InputError, Run

from ..compare import compare_runs
from ..options import DEFAULT_OPTIONS, Measurer, Options
from ..render.formats import interval, percent
from ..results import Comparison, PairedFigures, RateSides, Sides
from .policy import POLICY_THRESHOLDS, GatePolicy


@dataclass(frozen=True)
class Check:
    """One named check: its figure (None when unknown), threshold and outcome.

    kind: ``"ratio"`` (figures are ratios), ``"share"`` (rates in [0, 1], shown in %) or
    ``"points"`` (accuracy differences as shares, shown in percentage points), or ``"auc"``
    (an area in [0, 1] that must be at least the threshold; every other kind is at most).
    """

    name: str
    label: str
    kind: str
    figure: float | None
    threshold: float
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(comparison: Comparison, policy: GatePolicy) -> list[Check]:
    """The policy's checks on one comparison (its ``overall`` figures)."""
    overall = comparison.overall
    level = f"{percent(comparison.bootstrap.confidence, None)}%"
    checks = []
    if policy.max_inflation is not None:
        checks.append(_inflation(comparison, policy, level))
    if policy.max_accuracy_drop is not None:
        checks.append(_accuracy_drop(overall, policy, level))
    for name, limit in policy.max_rates.items():
        checks.append(_rate(name, overall.pathology_rates[name], limit))
    if policy.min_budget_auc is not None:
        checks.append(_budget_auc(comparison, policy))
    return checks


def _inflation(comparison: Comparison, policy: GatePolicy, level: str) -> Check:
    overall = comparison.overall
    macro = policy.ratio == "macro_ratio"
    value = comparison.macro_ratio.ratio if macro else getattr(overall, policy.ratio)
    figure = None if value is None else value.high
    if value is None:
        detail = f"{policy.ratio} unknown (no pair it can use)"
    elif figure is None:
        notes = (comparison.macro_ratio.notes if macro else ()) or overall.notes  # macro_ratio carries its own
        detail = f"{policy.ratio} {value.estimate:.3f} has no interval ({_no_interval(notes, policy.ratio)})"
    else:
        detail = f"{policy.ratio} {interval(value.as_dict(), 3)}"
    if overall.ratio_is_lower_bound:
        detail += "; lower bound: the candidate hit its generation budget"
    return Check("inflation", f"inflation ({policy.ratio}), {level} upper bound", "ratio", figure,
                 policy.max_inflation, figure is not None and figure <= policy.max_inflation, detail)


def _accuracy_drop(overall: PairedFigures, policy: GatePolicy, level: str) -> Check:
    accuracy = overall.accuracy
    low = None if accuracy is None else accuracy.delta.low
    figure = None if low is None else 0.0 - low
    if accuracy is None:
        detail = "accuracy unknown: the runs do not say which samples are correct"
    else:
        detail = (f"accuracy {percent(accuracy.baseline.estimate)}% → {percent(accuracy.candidate.estimate)}%, "
                  f"drop {percent(0.0 - accuracy.delta.estimate)} pts")
        if low is None:
            detail += f" (no interval: {_no_interval(overall.notes, 'accuracy_delta')})"
        else:
            detail += f", {level} upper bound {percent(figure)} pts"
    return Check("accuracy_drop", f"accuracy drop, {level} upper bound", "points", figure, policy.max_accuracy_drop,
                 figure is not None and figure <= policy.max_accuracy_drop, detail)


def _rate(name: str, rates: RateSides, limit: float) -> Check:
    """A pathology rate, checked as if every sample whose flag is unknown had it."""
    rate = rates.candidate
    figure = rate.at_most
    if figure is None:
        detail = f"{name} rate unknown: needs {NEEDS[name]}"
    else:
        detail = f"{name}: candidate {percent(rate.rate)}% of samples"
        if rate.known < rate.n:
            detail = (f"{name}: candidate {percent(rate.rate)}% of the {rate.known} of {rate.n} samples whose flag is "
                      f"known, at most {percent(figure)}% if the {rate.n - rate.known} unknown have it")
        base = rates.baseline.rate
        detail += "" if base is None else f", baseline {percent(base)}%"
    return Check(name, f"{name} rate", "share", figure, limit, figure is not None and figure <= limit, detail)


def _budget_auc(comparison: Comparison, policy: GatePolicy) -> Check:
    curves = Sides(*(side["budget_accuracy"] for side in (comparison.overall.reasoning.baseline,
                                                           comparison.overall.reasoning.candidate)))
    figure = None if curves.candidate is None else curves.candidate["auc"]
    if figure is None:
        detail = "budget AUC unknown: the runs do not say which samples are correct"
    else:
        detail = f"candidate {figure:.3f}" + ("" if curves.baseline is None else f", baseline {curves.baseline['auc']:.3f}")
        detail += f" (budgets up to {curves.candidate['limit']:g} {comparison.unit.label})"
    return Check("budget_auc", "budget AUC (accuracy under a thinking budget)", "auc", figure, policy.min_budget_auc,
                 figure is not None and figure >= policy.min_budget_auc, detail)


def _no_interval(notes: list[str], name: str) -> str:
    """Why statistic ``name`` has no interval, from the notes (``name: why, so no interval``)."""
    for note in notes:
        label, _, why = note.partition(": ")
        if label == name and ", so no " in why:
            return why.split(", so no ")[0]
    return "too few items"


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one candidate: the policy's checks on the comparison."""

    policy: GatePolicy
    checks: tuple[Check, ...]
    comparison: Comparison

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self, comparison: bool = True) -> dict[str, Any]:
        result = {
            "baseline": self.comparison.baseline,
            "candidate": self.comparison.candidate,
            "passed": self.passed,
            "unit": self.comparison.unit.name,
            "confidence": self.comparison.bootstrap.confidence,
            "policy": self.policy.as_dict(),
            "checks": [c.as_dict() for c in self.checks],
            "warnings": list(self.comparison.warnings),
        }
        if comparison:
            result["comparison"] = self.comparison.as_json()
        return result


def gate(
    baseline: Run,
    candidate: Run,
    policy: GatePolicy,
    options: Options = DEFAULT_OPTIONS,
    measurer: Measurer | None = None,
) -> GateResult:
    """Compare ``candidate`` with ``baseline`` and check it against ``policy``.

    ``policy.confidence``, when set, replaces the options' confidence. A sample in one run
    only is an ``InputError`` unless ``options.allow_missing``: a gate must not pass a
    checkpoint that was not evaluated on the whole set.
    """
    if not policy.has_thresholds:
        raise InputError("policy", f"no thresholds: set one of {', '.join(POLICY_THRESHOLDS)}")
    if policy.confidence is not None:
        options = replace(options, bootstrap=replace(options.bootstrap, confidence=policy.confidence))
    options = replace(options, allow_missing=bool(options.allow_missing))
    comparison = compare_runs(baseline, candidate, options, measurer)
    return GateResult(policy, tuple(evaluate(comparison, policy)), comparison)
