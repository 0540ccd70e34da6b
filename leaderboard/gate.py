"""The CI gate and checkpoint selection (DESIGN.md sections 3 and 5).

``GatePolicy`` holds the thresholds, checked once when built (vLLM ``SamplingParams``
style); ``evaluate`` turns one ``compare`` result into named checks; ``gate`` and
``select_checkpoint`` run the comparisons. A check whose figure the data cannot give (no
interval, correctness unknown, a pathology the runs cannot tell) FAILS with a reason: a
gate never passes what it could not verify.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from qr_metrics.params import ParameterError
from qr_metrics.pathologies import NEEDS, PATHOLOGIES
from qr_metrics.stats import DEFAULT_BOOTSTRAP, BootstrapConfig

from .report import interval
from .runs import InputError, Run
from .units import UNITS

RATIOS = ("ratio_of_means", "both_correct_ratio", "paired_geomean_ratio", "macro_ratio")
"""Which overall inflation ratio ``max_inflation`` bounds (default: the headline)."""

POLICY_THRESHOLDS = ("max_inflation", "max_accuracy_drop", "max_rates", "min_budget_auc")
"""The policy keys that set a check (a policy needs at least one)."""
POLICY_KEYS = (*POLICY_THRESHOLDS, "ratio", "confidence")


class PolicyError(ParameterError):
    """An invalid policy value; ``field`` names it (``max_rates.loop`` for a nested key)."""

    def __init__(self, field: str, value: object, allowed: str):
        super().__init__("GatePolicy", field, value, allowed)


def _real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class GatePolicy:
    """What a candidate must satisfy against its baseline.

    max_inflation: the upper confidence bound of the overall inflation ratio (``ratio``)
        must be <= this (a number > 0), or None for no check.
    max_accuracy_drop: the upper confidence bound of (baseline - candidate) accuracy, as a
        share (0.06 = 6 points), must be <= this (in [0, 1]), or None.
    max_rates: pathology name -> the candidate's overall rate (share of samples) must be
        <= this (in [0, 1]); names from ``qr_metrics.pathologies.PATHOLOGIES``.
    min_budget_auc: the candidate's overall area under accuracy-under-budget (a point
        estimate in [0, 1], budgets up to the runs' shared limit) must be >= this, or None.
    ratio: which ratio ``max_inflation`` bounds, one of ``RATIOS``.
    confidence: confidence level of the intervals, in (0, 1); None: the command's
        ``--confidence`` (default 0.95). A ``--confidence`` flag overrides the file.
    Every bound is inclusive: a figure exactly at its threshold passes.
    """

    max_inflation: float | None = None
    max_accuracy_drop: float | None = None
    max_rates: Mapping[str, float] = field(default_factory=dict)
    min_budget_auc: float | None = None
    ratio: str = "ratio_of_means"
    confidence: float | None = None

    def __post_init__(self) -> None:
        if self.max_inflation is not None and not (_real(self.max_inflation) and self.max_inflation > 0):
            raise PolicyError("max_inflation", self.max_inflation, "a number > 0 or null")
        if self.max_accuracy_drop is not None and not (
            _real(self.max_accuracy_drop) and 0 <= self.max_accuracy_drop <= 1
        ):
            raise PolicyError(
                "max_accuracy_drop", self.max_accuracy_drop, "a share in [0, 1] (0.06 = 6 points) or null"
            )
        if not isinstance(self.max_rates, Mapping):
            raise PolicyError("max_rates", self.max_rates, "a mapping of pathology name to rate")
        for name, rate in self.max_rates.items():
            if name not in PATHOLOGIES:
                raise PolicyError(f"max_rates.{name}", name, f"a pathology name, one of {list(PATHOLOGIES)}")
            if not (_real(rate) and 0 <= rate <= 1):
                raise PolicyError(f"max_rates.{name}", rate, "a rate in [0, 1]")
        ordered = {name: float(self.max_rates[name]) for name in PATHOLOGIES if name in self.max_rates}
        object.__setattr__(self, "max_rates", ordered)
        if self.min_budget_auc is not None and not (_real(self.min_budget_auc) and 0 <= self.min_budget_auc <= 1):
            raise PolicyError("min_budget_auc", self.min_budget_auc, "a number in [0, 1] or null")
        if self.ratio not in RATIOS:
            raise PolicyError("ratio", self.ratio, f"one of {list(RATIOS)}")
        if self.confidence is not None and not (_real(self.confidence) and 0 < self.confidence < 1):
            raise PolicyError("confidence", self.confidence, "a number in (0, 1) or null")

    @property
    def has_thresholds(self) -> bool:
        return (
            self.max_inflation is not None
            or self.max_accuracy_drop is not None
            or bool(self.max_rates)
            or self.min_budget_auc is not None
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_policy(path: str | Path) -> GatePolicy:
    """A policy from a small YAML file whose keys are ``POLICY_KEYS``, for example::

        max_inflation: 1.2
        max_accuracy_drop: 0.06
        max_rates: {loop: 0.02, unclosed: 0.05}

    Errors are ``InputError`` naming the file, the line and the key.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(path, f"cannot read the policy file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text (byte {error.start + 1})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputError(path, f"malformed YAML ({problem})", None if mark is None else mark.line + 1) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping of policy keys {list(POLICY_KEYS)}", 1)
    lines = _key_lines(node)
    for key in data:
        if key not in POLICY_KEYS:
            raise InputError(path, f"unknown key; allowed: {list(POLICY_KEYS)}", lines.get(str(key)), str(key))
    if "max_rates" in data and data["max_rates"] is None:
        data["max_rates"] = {}
    try:
        return GatePolicy(**data)
    except PolicyError as error:
        line = lines.get(error.field, lines.get(error.field.split(".")[0]))
        raise InputError(path, error.problem, line, error.field) from None


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    """1-based line of every mapping key, nested keys as ``parent.child``."""
    import yaml

    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = f"{prefix}{key.value}"
            lines[name] = key.start_mark.line + 1
            lines.update(_key_lines(value, f"{name}."))
    return lines


def policy_with(policy: GatePolicy, **overrides: Any) -> GatePolicy:
    """``policy`` with the given non-None fields replaced (command-line flags over a file);
    ``max_rates`` entries are merged key by key."""
    changes = {k: v for k, v in overrides.items() if v is not None and k != "max_rates"}
    if overrides.get("max_rates"):
        changes["max_rates"] = {**policy.max_rates, **overrides["max_rates"]}
    return replace(policy, **changes)


# ----------------------------------------------------------------------------- checks


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


def evaluate(comparison: dict[str, Any], policy: GatePolicy) -> list[Check]:
    """The policy's checks on one ``compare_runs`` result (its ``overall`` block)."""
    overall = comparison["overall"]
    level = f"{100 * comparison['confidence']:g}%"
    checks = []
    if policy.max_inflation is not None:
        value = overall.get(policy.ratio)
        figure = None if value is None else value.get("high")
        if value is None:
            detail = f"{policy.ratio} unknown (no pair it can use)"
        elif figure is None:
            notes = value.get("notes") or overall.get("notes") or []  # macro_ratio carries its own
            detail = f"{policy.ratio} {value['estimate']:.3f} has no interval ({_no_interval(notes, policy.ratio)})"
        else:
            detail = f"{policy.ratio} {interval(value, 3)}"
        if overall.get("ratio_is_lower_bound"):
            detail += "; lower bound: the candidate hit its generation budget"
        checks.append(
            Check(
                "inflation",
                f"inflation ({policy.ratio}), {level} upper bound",
                "ratio",
                figure,
                policy.max_inflation,
                figure is not None and figure <= policy.max_inflation,
                detail,
            )
        )
    if policy.max_accuracy_drop is not None:
        accuracy = overall.get("accuracy")
        low = None if accuracy is None else accuracy["delta"].get("low")
        figure = None if low is None else 0.0 - low
        if accuracy is None:
            detail = "accuracy unknown: the runs do not say which samples are correct"
        else:
            delta = accuracy["delta"]
            detail = (
                f"accuracy {100 * accuracy['baseline']:.1f}% → {100 * accuracy['candidate']:.1f}%, "
                f"drop {_points(0.0 - delta['estimate'])}"
            )
            if low is None:
                detail += f" (no interval: {_no_interval(overall.get('notes') or [], 'accuracy_delta')})"
            else:
                detail += f", {level} upper bound {_points(figure)}"
        checks.append(
            Check(
                "accuracy_drop",
                f"accuracy drop, {level} upper bound",
                "points",
                figure,
                policy.max_accuracy_drop,
                figure is not None and figure <= policy.max_accuracy_drop,
                detail,
            )
        )
    for name, limit in policy.max_rates.items():
        rates = overall["pathology_rates"][name]
        figure = rates["candidate"]
        if figure is None:
            detail = f"{name} rate unknown: needs {NEEDS[name]}"
        else:
            base = rates["baseline"]
            detail = f"{name}: candidate {100 * figure:.1f}% of samples" + (
                "" if base is None else f", baseline {100 * base:.1f}%"
            )
        checks.append(
            Check(name, f"{name} rate", "share", figure, limit, figure is not None and figure <= limit, detail)
        )
    if policy.min_budget_auc is not None:
        curves = overall["budget_accuracy"]
        figure = None if curves["candidate"] is None else curves["candidate"]["auc"]
        if figure is None:
            detail = "budget AUC unknown: the runs do not say which samples are correct"
        else:
            base = curves["baseline"]
            detail = f"candidate {figure:.3f}" + ("" if base is None else f", baseline {base['auc']:.3f}")
            detail += f" (budgets up to {curves['candidate']['limit']:g} {UNITS[comparison['unit']].label})"
        checks.append(
            Check(
                "budget_auc", "budget AUC (accuracy under a thinking budget)", "auc", figure,
                policy.min_budget_auc, figure is not None and figure >= policy.min_budget_auc, detail,
            )
        )
    return checks


def _no_interval(notes: list[str], name: str) -> str:
    """Why statistic ``name`` has no interval, from the notes (``name: why, so no interval``)."""
    for note in notes:
        label, _, why = note.partition(": ")
        if label == name and ", so no " in why:
            return why.split(", so no ")[0]
    return "too few items"


def _points(share: float) -> str:
    return f"{100 * share:.1f} pts"


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one candidate."""

    baseline: str
    candidate: str
    policy: GatePolicy
    checks: tuple[Check, ...]
    comparison: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self, comparison: bool = True) -> dict[str, Any]:
        result = {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "passed": self.passed,
            "unit": self.comparison["unit"],
            "confidence": self.comparison["confidence"],
            "policy": self.policy.as_dict(),
            "checks": [c.as_dict() for c in self.checks],
            "warnings": list(self.comparison["warnings"]),
        }
        if comparison:
            result["comparison"] = self.comparison
        return result


def gate(
    baseline: Run,
    candidate: Run,
    policy: GatePolicy,
    unit: str | None = None,
    config: BootstrapConfig = DEFAULT_BOOTSTRAP,
    tokenizer: str | None = None,
    strict: bool = False,
    progress: bool = True,
    cache: dict | None = None,
    allow_missing: bool = False,
) -> GateResult:
    """Compare ``candidate`` with ``baseline`` and check it against ``policy``.

    ``policy.confidence``, when set, replaces ``config.confidence``; ``cache`` shares
    measurements between calls (``compare.measure_cached``). A sample in one run only is an
    ``InputError`` unless ``allow_missing``: a gate must not pass a checkpoint that was not
    evaluated on the whole set.
    """
    from .compare import compare_runs

    if not policy.has_thresholds:
        raise InputError("policy", f"no thresholds: set one of {', '.join(POLICY_THRESHOLDS)}")
    if policy.confidence is not None:
        config = replace(config, confidence=policy.confidence)
    comparison = compare_runs(
        baseline, candidate, unit=unit, config=config, tokenizer=tokenizer, strict=strict, progress=progress,
        cache=cache, allow_missing=allow_missing,
    )
    return GateResult(baseline.name, candidate.name, policy, tuple(evaluate(comparison, policy)), comparison)


# ----------------------------------------------------------------------------- selection


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
            "warnings": list(self.result.comparison["warnings"]),
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
    unit: str | None = None,
    config: BootstrapConfig = DEFAULT_BOOTSTRAP,
    tokenizer: str | None = None,
    strict: bool = False,
    progress: bool = True,
    allow_missing: bool = False,
) -> Selection:
    """Gate every candidate against ``baseline`` and price it (``Candidate.cost``), every
    one in the same unit (``compare.resolve_unit`` over all the runs); ``allow_missing`` as
    in :func:`gate`."""
    from .compare import resolve_unit

    names = [c.name for c in candidates]
    for run in candidates:
        if names.count(run.name) > 1:
            raise InputError(run.source, f"two candidates are named {run.name!r}: set 'name' in their run.json")
        if run.bits is None or not run.bits > 0:
            raise InputError(
                run.source, f"candidate {run.name!r} has no bits: set 'bits' (a number > 0) in its run.json", field="bits"
            )
    priced = []
    cache: dict = {}  # the baseline is measured once
    pairs = [(baseline, run) for run in candidates]
    unit = resolve_unit([baseline, *candidates], unit, tokenizer, pairs, progress, cache).name
    for run in candidates:
        result = gate(baseline, run, policy, unit, config, tokenizer, strict, progress, cache, allow_missing)
        priced.append(Candidate(run.name, float(run.bits), result.comparison["overall"]["mean_length"]["candidate"], result))
    return Selection(baseline.name, policy, unit, tuple(priced))
