"""Which run each leaderboard row is compared with (``--baseline``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from qr_metrics.runs import InputError, OptionError, Run, read_run

FULL_PRECISION = frozenset(
    {"bf16", "bfloat16", "fp16", "float16", "f16", "half", "fp32", "float32", "f32", "float", "full"}
)
"""Precision labels (case-insensitive) that mark a run as its model's full-precision baseline."""


def is_full_precision(precision: str | None) -> bool:
    return precision is not None and precision.strip().lower() in FULL_PRECISION


def resolve_baselines(
    runs: Sequence[Run], spec: str | Run | None = None, name: Callable[[str], str] = str
) -> tuple[list[Run], dict[str, tuple[Run | None, str, str | None]]]:
    """The rows and, per run name, ``(baseline run or None, role, note)``; ``name`` is how
    messages name an option (``Options.name``).

    ``spec``: ``None`` or ``"auto"`` (the full-precision run of the same ``model``),
    ``"precision=LABEL"`` (the run of the same model with that precision label), or the
    name of one of ``runs``, the path of a run or a ``Run`` (the baseline of every row; a
    run outside ``runs`` becomes a row too). Roles: ``baseline``, ``candidate``, ``no_baseline``.
    """
    runs = list(runs)
    _unique_names(runs)
    if isinstance(spec, Run):
        return _against_one(runs, spec)
    spec = (spec or "auto").strip()
    plan: dict[str, tuple[Run | None, str, str | None]] = {}
    if spec == "auto" or spec.startswith("precision="):
        label = None if spec == "auto" else spec.split("=", 1)[1]
        if label == "":
            raise OptionError("baseline", "precision= needs a label, e.g. precision=bf16")
        for run in runs:
            if run.model is None:
                plan[run.name] = (None, "no_baseline", "no baseline: the run has no model (set 'model' in its run.json)")
                continue
            matches = [
                r for r in runs
                if r.model == run.model and (is_full_precision(r.precision) if label is None else r.precision == label)
            ]
            wanted = "full-precision run" if label is None else f"run with precision {label!r}"
            if len(matches) > 1:
                names = ", ".join(repr(r.name) for r in matches)
                raise OptionError(
                    "baseline", f"model {run.model!r} has {len(matches)} candidate baselines ({names}): "
                    f"pass {name('baseline')} NAME or {name('baseline')} precision=LABEL"
                )
            if not matches:
                plan[run.name] = (None, "no_baseline", f"no baseline: no {wanted} of model {run.model!r} among the runs")
            elif matches[0] is run:
                plan[run.name] = (run, "baseline", None)
            else:
                plan[run.name] = (matches[0], "candidate", None)
        return runs, plan
    named = [r for r in runs if r.name == spec]
    if named:
        return _against_one(runs, named[0])
    if Path(spec).exists():
        return _against_one(runs, read_run(spec))
    raise OptionError("baseline", f"{spec!r} is not 'auto', 'precision=LABEL', a run's name or a run's path")


def _against_one(runs: list[Run], reference: Run) -> tuple[list[Run], dict[str, tuple[Run | None, str, str | None]]]:
    """Every row against ``reference``, which becomes the first row unless a row is read from its files."""
    same = [r for r in runs if r.source.resolve() == reference.source.resolve()]
    if same:
        reference = same[0]
    else:
        runs.insert(0, reference)
        _unique_names(runs)
    return runs, {run.name: (reference, "baseline" if run is reference else "candidate", None) for run in runs}


def _unique_names(runs: Sequence[Run]) -> None:
    seen: set[str] = set()
    for run in runs:
        if run.name in seen:
            raise InputError(run.source, f"two runs are named {run.name!r}: set 'name' in their run.json")
        seen.add(run.name)
