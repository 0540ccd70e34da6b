"""The gate's policy: thresholds checked once when built (vLLM ``SamplingParams`` style),
from flags or a small YAML file."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from qr_metrics.params import ParameterError
from qr_metrics.pathologies import PATHOLOGIES
from qr_metrics.runs import InputError
from qr_metrics.runs.records import read_yaml

RATIOS = ("ratio_of_means", "both_correct_ratio", "paired_geomean_ratio", "macro_ratio")
"""Which overall inflation ratio ``max_inflation`` bounds (default: the headline)."""

POLICY_THRESHOLDS = ("max_inflation", "max_accuracy_drop", "max_rates", "min_budget_auc")
"""The policy keys that set a check (a policy needs at least one)."""
POLICY_KEYS = (*POLICY_THRESHOLDS, "ratio", "confidence")


class PolicyError(ParameterError):
    """An invalid policy value; ``field`` names it (``max_rates.loop`` for a nested key).
    ``nullable``: a policy file may also say null (no check), which a flag cannot;
    ``flag_problem`` is the problem as a flag's value."""

    def __init__(self, field: str, value: object, allowed: str, nullable: bool = False):
        self.flag_problem = f"{value!r} is invalid: must be {allowed}"
        super().__init__("GatePolicy", field, value, allowed + (" or null" if nullable else ""))


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
            raise PolicyError("max_inflation", self.max_inflation, "a number > 0", nullable=True)
        if self.max_accuracy_drop is not None and not (
            _real(self.max_accuracy_drop) and 0 <= self.max_accuracy_drop <= 1
        ):
            raise PolicyError(
                "max_accuracy_drop", self.max_accuracy_drop, "a share in [0, 1] (0.06 = 6 points)", nullable=True
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
            raise PolicyError("min_budget_auc", self.min_budget_auc, "a number in [0, 1]", nullable=True)
        if self.ratio not in RATIOS:
            raise PolicyError("ratio", self.ratio, f"one of {list(RATIOS)}")
        if self.confidence is not None and not (_real(self.confidence) and 0 < self.confidence < 1):
            raise PolicyError("confidence", self.confidence, "a number in (0, 1)", nullable=True)

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
    path = Path(path)
    data, lines = read_yaml(path, "the policy file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping of policy keys {list(POLICY_KEYS)}", 1)
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


def policy_with(policy: GatePolicy, **overrides: Any) -> GatePolicy:
    """``policy`` with the given non-None fields replaced (command-line flags over a file);
    ``max_rates`` entries are merged key by key."""
    changes = {k: v for k, v in overrides.items() if v is not None and k != "max_rates"}
    if overrides.get("max_rates"):
        changes["max_rates"] = {**policy.max_rates, **overrides["max_rates"]}
    return replace(policy, **changes)
