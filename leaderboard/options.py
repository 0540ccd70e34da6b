"""What every verb that measures shares: one ``Options`` object and one ``Measurer``.

``Options`` holds what the command line sets besides the runs (vLLM ``SamplingParams``
style: one object, not seven keyword arguments per function). ``Measurer`` measures each run
once per command, with one tokenizer policy, one rule for the measurement parameters and
one progress setting; ``Measurer.unit`` picks the length unit (``qr_metrics.units``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, Sequence

from qr_metrics.counts import same_tokenizer, tokenizer_problem
from qr_metrics.measured import MeasuredSample, measure_run
from qr_metrics.params import DEFAULT_PARAMS, MeasureParams, ParameterError
from qr_metrics.runs import InputError, OptionError, Run
from qr_metrics.runs.records import read_yaml
from qr_metrics.stats import DEFAULT_BOOTSTRAP, BootstrapConfig
from qr_metrics.units import TOKENS, UNITS, Unit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How runs are measured and compared.

    unit: a ``UNITS`` name, or None for the best unit every sample has.
    bootstrap: the intervals' settings.
    tokenizer: recount every run's tokens with this tokenizer (None: each run's own).
    strict: refuse runs that differ in tasks, budget, sampling or tokenizer.
    allow_missing: samples in one run only are excluded (True) or an error (False); None:
        an error under ``strict`` only (a gate passes False: never on part of the set).
    params: measurement parameters for every run; None: each run's logged ones
        (``Run.measure_params``), else the defaults.
    progress: show progress bars on stderr.
    flags: how messages name an option (``{"tokenizer": "--tokenizer"}``): a command line
        passes its flags; library code names no flag, and without one names the parameter.
    """

    unit: str | None = None
    bootstrap: BootstrapConfig = DEFAULT_BOOTSTRAP
    tokenizer: str | None = None
    strict: bool = False
    allow_missing: bool | None = None
    params: MeasureParams | None = None
    progress: bool = True
    flags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unit is not None and self.unit not in UNITS:
            raise OptionError("unit", f"must be one of {list(UNITS)}, got {self.unit!r}")

    def name(self, option: str) -> str:
        """What a message calls ``option``: its flag (``flags``), else the parameter's name."""
        return self.flags.get(option, option)


DEFAULT_OPTIONS = Options()


def load_measure_params(path: str | Path) -> MeasureParams:
    """``MeasureParams`` from a YAML (or JSON) file of its keys, e.g. ``think_close: "</reason>"``;
    errors name the file and the key."""
    path = Path(path)
    data, _ = read_yaml(path, "the measurement parameters")
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping of MeasureParams keys {[f.name for f in fields(MeasureParams)]}")
    return _params(data, path)


def _params(values: dict, where: Path | str) -> MeasureParams:
    try:
        return MeasureParams.from_mapping(values)
    except ParameterError as error:
        raise InputError(where, error.problem, field=error.field) from None
    except (TypeError, ValueError) as error:  # an unknown key, a value of the wrong type
        raise InputError(where, str(error)) from None


class Measurer:
    """Measures runs for one command: each run once, however many comparisons use it."""

    def __init__(self, options: Options = DEFAULT_OPTIONS) -> None:
        self.options = options
        self._measured: dict[int, tuple[Run, list[MeasuredSample]]] = {}
        self._said: set[str] = set()

    def _notice(self, message: str) -> None:
        """One warning line on stderr, once per command however many comparisons meet it."""
        if message not in self._said:
            self._said.add(message)
            log.warning("%s", message)

    def params(self, run: Run) -> MeasureParams:
        """``options.params``, else the run's logged parameters, else the defaults."""
        if self.options.params is not None:
            return self.options.params
        return _params(run.measure_params, run.source) if run.measure_params else DEFAULT_PARAMS

    def __call__(self, run: Run) -> list[MeasuredSample]:
        cached = self._measured.get(id(run))
        if cached is None or cached[0] is not run:
            params = self.params(run)
            if params != DEFAULT_PARAMS:
                source = self.options.name("params") if self.options.params is not None else "its lm-eval metadata"
                changed = {f.name: getattr(params, f.name) for f in fields(params)
                           if getattr(params, f.name) != getattr(DEFAULT_PARAMS, f.name)}
                settings = ", ".join(f"{k}={v!r}" for k, v in changed.items())
                self._notice(f"measuring {run.name} with {settings} (from {source})")
            measured = measure_run(run, self.options.tokenizer, params, self.options.progress)
            cached = self._measured[id(run)] = (run, measured)
        return cached[1]

    def unit(self, runs: Sequence[Run], pairs: Sequence[tuple[Run, Run]] = ()) -> Unit:
        """The unit ``runs`` are measured in, the one rule of every verb (``UNITS``).

        ``options.unit``: that unit, or an ``InputError`` that names the fix when some sample
        lacks it. None: the best unit every sample has, said in one notice line (a warning)
        when it is not tokens. ``pairs``: runs compared with each other, whose token counts
        must come from one tokenizer (two names with the same vocabulary count alike);
        ``options.tokenizer`` recounts every run with one.
        """
        tokenizer = self.options.tokenizer
        problem = tokenizer and tokenizer_problem(tokenizer)
        if problem:
            where, what, remedy = _does_not_load(tokenizer, problem, self.options.name("tokenizer"), self.options)
            raise InputError(where, f"{what}; {remedy}")
        measured = [(run, self(run)) for run in runs]
        no_tokens = _token_problem(measured, pairs, tokenizer is not None, self.options)
        lacking = {u: _lacking(u, measured) for u in UNITS.values()}
        usable = [u for u, lack in lacking.items() if lack is None and not (u is TOKENS and no_tokens)]
        if self.options.unit is not None:
            asked = UNITS[self.options.unit]
            if asked in usable:
                return asked
            where, problem, remedy = no_tokens if asked is TOKENS and no_tokens else lacking[asked]
            other = next((u for u in usable if u is not asked), None)
            remedies = [r for r in (remedy, other and f"use {self.options.name('unit')} {other.name}") if r]
            raise InputError(where, problem + (f"; {' or '.join(remedies)}" if remedies else ""))
        if not usable:
            where, problem, _ = lacking[UNITS["completion_words"]]
            raise InputError(where, f"no length unit every sample has ({problem})")
        best = usable[0]
        if best is not TOKENS:  # tokens have a problem, which the notice gives
            where, problem, remedy = no_tokens
            self._notice(f"lengths in {best.label}, the best unit every sample has: {where}: {problem}"
                         + (f" ({remedy})" if remedy else ""))
        return best


_Problem = tuple[Path | str, str, str | None]
"""Why a unit cannot be used: where, what is missing, and the remedy (None: none but another unit)."""


def _lacking(unit: Unit, measured: list[tuple[Run, list[MeasuredSample]]]) -> _Problem | None:
    """Why some sample has no length in ``unit``, or None when every sample has one."""
    for run, samples in measured:
        missing = [m for m in samples if unit.field not in m.counts]
        if missing:
            count_only = [m for m in missing if m.sample.completion is None]
            what = f"{len(missing)} sample(s) have no {unit.field!r} count ({unit.label})"
            if count_only:
                held = sorted({field for m in count_only for field in m.counts})
                what += f": count-only data (no completion text), counts {', '.join(held)}"
            return run.source, what, None
    return None


def _token_problem(
    measured: list[tuple[Run, list[MeasuredSample]]], pairs, recounted: bool, options: Options
) -> _Problem | None:
    """Why lengths cannot be reasoning tokens, or None when they can; ``recounted``: one
    tokenizer (``options.tokenizer``) counted every run."""
    tokenizer = options.name("tokenizer")
    for run, samples in measured:
        missing = [m for m in samples if TOKENS.field not in m.counts]
        if not missing:
            continue
        problem = not recounted and run.tokenizer and tokenizer_problem(run.tokenizer)
        if problem:
            return _does_not_load(run.tokenizer, problem, run.source, options)
        if any(m.sample.completion is None for m in missing):
            return _lacking(TOKENS, [(run, samples)])
        what = f"{len(missing)} sample(s) have no {TOKENS.field!r} count: no tokenizer could be resolved"
        return run.source, what, f"pass {tokenizer} NAME_OR_PATH to count tokens"
    for baseline, candidate in [] if recounted else pairs:
        if not same_tokenizer(baseline.tokenizer, candidate.tokenizer):
            what = f"token counts come from different tokenizers ({baseline.tokenizer!r} vs {candidate.tokenizer!r})"
            return candidate.source, what, f"pass {tokenizer} to recount both runs with one"
    return None


def _does_not_load(name: str, problem: str, where: Path | str, options: Options) -> _Problem:
    what = f"tokenizer {name!r} does not load ({problem}): no token counts"
    return where, what, f"pass {options.name('tokenizer')} NAME_OR_PATH to count with one that loads"
