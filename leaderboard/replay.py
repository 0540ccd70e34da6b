"""What loop rescue would have done to logged traces (``qr-eval replay``).

Each trace the loop detector flags is cut where its repetitive tail starts (``loop_onset``,
the position the live adapters cut at) and the rescue decision the adapters take
(``qr_metrics.rescue_choice.choose_rescue``) picks the answer to commit: the last intermediate
answer written before the cut, graded against the gold with the task's grader. Offline
there is no model to write an answer, so a flagged trace with no intermediate answer is
left as it was (its length and correctness unchanged; an unclosed one stays wrong): the
live ``commit`` policy would let the model answer it, so the figures are a lower bound on
what the policy wins. Rescues the adapters make at the budget (no loop) are not replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qr_metrics.counts import count_steps, count_words
from qr_metrics.graders import grader_for_task
from qr_metrics.params import DEFAULT_PARAMS, MeasureParams
from qr_metrics.rescue_choice import choose_rescue
from qr_metrics.segments import split_reasoning
from qr_metrics.measured import MeasuredSample
from qr_metrics.runs import InputError, OptionError, Run
from qr_metrics.stats import BootstrapConfig, inflation_ratios
from qr_metrics.units import TOKENS

from .compare import compatibility_issues, pair_lengths, pair_samples
from .results import statistics_header
from .options import DEFAULT_OPTIONS, Measurer, Options

POLICIES = ("commit",)
"""Rescue policies replay can apply offline (a fallback needs the reference model)."""


@dataclass(frozen=True)
class Replayed:
    """A measured sample with the policy applied: its reasoning ``length`` (in the replay's
    unit) and ``correct`` afterwards, and the ``answer`` committed (None: not rescued)."""

    measured: MeasuredSample
    length: int
    correct: bool | None
    answer: str | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.measured.flags.get("loop"))


def replay_sample(
    measured: MeasuredSample, field: str, policy: str = "commit", params: MeasureParams = DEFAULT_PARAMS
) -> Replayed:
    """Cut a flagged trace at its loop onset and commit the last answer written before it;
    ``field`` is the length count replayed (a unit's field: the reasoning's tokens, words or
    steps before the cut, or the completion's words before it); ``params``: the tags the
    trace was measured with."""
    unchanged = Replayed(measured, measured.counts[field], measured.correct)
    if not unchanged.flagged:
        return unchanged
    completion = measured.sample.completion
    # A flagged trace has reasoning, and where it starts does not depend on the prompt.
    start = split_reasoning(completion, params).reasoning_start
    kept = completion[start : measured.loop_onset_char]
    grader = grader_for_task(measured.sample.task)
    answer = choose_rescue(policy, kept, grader).answer
    if answer is None:
        return unchanged
    gold = measured.sample.gold
    if field == TOKENS.field:
        length = measured.loop_onset
    elif field == "completion_words":
        length = count_words(completion[: measured.loop_onset_char])
    else:
        length = (count_steps if field == "steps" else count_words)(kept)
    return Replayed(measured, length, None if gold is None else grader.is_correct(answer, gold), answer)


def replay_run(
    run: Run,
    baseline: Run | None = None,
    options: Options = DEFAULT_OPTIONS,
    measurer: Measurer | None = None,
    policy: str = "commit",
) -> dict[str, Any]:
    """The documented ``qr-eval replay --json`` object.

    The unit: ``Measurer.unit`` over the run and the baseline. With ``baseline``, each task's
    inflation ratio before and after the rescue.
    """
    if policy not in POLICIES:
        raise OptionError("policy", f"must be one of {list(POLICIES)}, got {policy!r}")
    measurer = measurer or Measurer(options)
    config = options.bootstrap
    runs, pairs = ([run], []) if baseline is None else ([baseline, run], [(baseline, run)])
    unit = measurer.unit(runs, pairs)
    measured = measurer(run)
    base_measured = None if baseline is None else measurer(baseline)
    field = unit.field
    if unit is TOKENS:
        _require_token_onsets(run, measured, options)
    replayed = [replay_sample(m, field, policy, measurer.params(run)) for m in measured]
    by_task: dict[str, list[Replayed]] = {}
    for r in replayed:
        by_task.setdefault(r.measured.sample.task, []).append(r)
    tasks = {task: _task_block(items, field) for task, items in sorted(by_task.items())}
    warnings: list[str] = []
    if baseline is not None:
        warnings = compatibility_issues(baseline, run)
        pairing = pair_samples(base_measured, measured)
        if pairing.only_baseline or pairing.only_candidate:
            warnings.append(
                f"{pairing.only_baseline} baseline and {pairing.only_candidate} replayed sample(s) "
                "have no partner and are left out of the inflation ratios"
            )
        after = {r.measured.sample.key: r.length for r in replayed}
        for task, block in tasks.items():
            pairs = pairing.pairs.get(task)
            block["inflation"] = None if not pairs else _inflation(pairs, after, field, config, baseline)
    return {
        **statistics_header(unit, config),
        "policy": policy,
        "run": {"name": run.name, "source": str(run.source)},
        "baseline": None if baseline is None else {"name": baseline.name, "source": str(baseline.source)},
        "warnings": warnings,
        "tasks": tasks,
    }


def _require_token_onsets(run: Run, measured: list[MeasuredSample], options: Options) -> None:
    """A cut in tokens needs the onset in tokens, which only a tokenizer gives."""
    missing = sum(m.loop_onset is None for m in measured if m.flags.get("loop"))
    if missing:
        raise InputError(
            run.source,
            f"{missing} looping sample(s) have no loop onset in tokens; pass {options.name('tokenizer')} or use "
            f"{options.name('unit')} words",
        )


def _share(values: list[bool | None]) -> float | None:
    """Share of True, or None when any value is unknown (before and after cover the same samples)."""
    return None if any(v is None for v in values) else float(np.mean(values))


def _task_block(items: list[Replayed], field: str) -> dict[str, Any]:
    before = np.array([r.measured.counts[field] for r in items], dtype=float)
    after = np.array([r.length for r in items], dtype=float)
    return {
        "n": len(items),
        "loops": sum(r.flagged for r in items),
        "rescued": sum(r.answer is not None for r in items),
        "accuracy": {"before": _share([r.measured.correct for r in items]), "after": _share([r.correct for r in items])},
        "saved": int(before.sum() - after.sum()),
        "mean_length": {"before": float(before.mean()), "after": float(after.mean())},
        "inflation": None,
    }


def _inflation(pairs, after: dict, field: str, config: BootstrapConfig, baseline: Run) -> dict[str, Any]:
    """ratio_of_means against the baseline with the candidate's lengths before and after."""
    item, base_len, before = pair_lengths(pairs, field)
    cut = np.array([after[c.sample.key] for _, c in pairs], dtype=float)
    try:
        ratios = [inflation_ratios(item, base_len, cand, config=config).ratio_of_means for cand in (before, cut)]
    except ValueError as error:  # an undefined ratio, e.g. a zero-length baseline
        raise InputError(baseline.source, f"{field}: {error}") from None
    return {"n_pairs": len(pairs), "before": ratios[0].as_dict(), "after": ratios[1].as_dict()}
