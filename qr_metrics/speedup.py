"""Per-token decoding speedup measured from repeated timings (DESIGN.md section 3).

The effective speedup divides a per-token speedup by the inflation ratio. When nobody gives
that speedup, it is measured from the side file's ``decode_s_per_token``: seconds per
decoding step of a model, one value per generation batch (every record of a batch carries its
batch's value). Wall-clock time of one batch is noisy (other processes, caches, a 0.2 M-param
model on a busy CPU read 0.22, 2.64 and 1.04 in three identical runs), so one number is not a
measurement. The rule here:

- a *timing* is one batch: its seconds per token and the tokens the model decoded in it
  (:func:`decode_timings` groups a run's side records into batches);
- speedup = reference seconds per token / low-bit seconds per token, each the token-weighted
  mean over its timings (the figure the run reader reports as ``decode_s_per_token``);
- its interval: ``scipy.stats.bootstrap`` over the two sets of timings, each resampled
  independently (BCa where defined, else percentile), with the leaderboard's confidence,
  resamples and seed;
- it is *shown* only with at least ``min_timings`` timings of each model and an interval that
  excludes 1 (the effect exceeds the timing noise); otherwise it is *withheld* and
  ``withheld`` says why (``one timing``, ``too few timings``, ``too noisy``, ``no interval``:
  fewer than 2 resamples, or timings that do not vary, which are copies, not repeats).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

from .sidecar import SideRecord
from .stats import DEFAULT_BOOTSTRAP, BootstrapConfig, Interval

__all__ = ["MIN_TIMINGS", "DecodeTimings", "MeasuredSpeedup", "decode_timings", "measured_speedup", "timings_from"]

MIN_TIMINGS = 3
"""Timings (batches) of each model below which a measured speedup is withheld: an interval
from one or two batch timings says nothing about the next run's."""


@dataclass(frozen=True)
class DecodeTimings:
    """One model's timings: per batch, seconds per token and tokens decoded."""

    seconds_per_token: tuple[float, ...]
    tokens: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def mean(self) -> float:
        """Token-weighted mean seconds per token over the batches."""
        s, n = np.asarray(self.seconds_per_token), np.asarray(self.tokens, dtype=float)
        return float((s * n).sum() / n.sum())


@dataclass(frozen=True)
class MeasuredSpeedup:
    """A per-token speedup measured from timings.

    ``speedup``: estimate with its interval (``low``/``high`` ``None`` when none exists;
    ``speedup`` itself ``None`` when a model's times are all 0).
    ``withheld``: ``None`` when the speedup may be shown, else why not. ``n_reference`` /
    ``n_lowbit``: the timings (batches) each side had.
    """

    speedup: Interval | None
    n_reference: int
    n_lowbit: int
    withheld: str | None

    @property
    def shown(self) -> bool:
        return self.withheld is None


def decode_timings(records: Iterable[SideRecord]) -> dict[str, DecodeTimings]:
    """Per model (``lowbit``, ``reference``): the batch timings of some side records.

    A batch is the set of records that carry the same ``decode_s_per_token`` and ``wall_s``
    (the adapters write one batch's timings on each of its records; two batches that read
    the same floats to the last bit are taken as one). A batch's tokens for a model are the
    sum of its records' ``tokens``; a model that decoded no token in a batch, or has no time
    there, has no timing from it.
    """
    batches: dict[tuple, dict[str, list]] = {}
    for record in records:
        key = (tuple(sorted(record.decode_s_per_token.items())), tuple(sorted(record.wall_s.items())))
        batch = batches.setdefault(key, {})
        for model, per_token in record.decode_s_per_token.items():
            n = record.tokens.get(model, 0)
            if per_token is not None and n:
                entry = batch.setdefault(model, [per_token, 0])
                entry[1] += n
    out: dict[str, tuple[list[float], list[int]]] = {}
    for batch in batches.values():
        for model, (per_token, n) in batch.items():
            seconds, tokens = out.setdefault(model, ([], []))
            seconds.append(float(per_token))
            tokens.append(int(n))
    return {model: DecodeTimings(tuple(s), tuple(n)) for model, (s, n) in sorted(out.items())}


def measured_speedup(
    reference: DecodeTimings,
    lowbit: DecodeTimings,
    config: BootstrapConfig = DEFAULT_BOOTSTRAP,
    min_timings: int = MIN_TIMINGS,
) -> MeasuredSpeedup:
    """Reference over low-bit seconds per token, with its bootstrap interval and the
    verdict of the rule in the module docstring."""
    if reference.n == 0 or lowbit.n == 0 or sum(reference.tokens) == 0 or sum(lowbit.tokens) == 0:
        raise ValueError("measured_speedup needs at least one timing with decoded tokens of each model")
    counts = f"{reference.n} reference and {lowbit.n} low-bit batch timing(s)"
    if reference.mean == 0 or lowbit.mean == 0:
        return MeasuredSpeedup(None, reference.n, lowbit.n,
                               f"no time: a model's decode seconds per token are all 0 ({counts})")
    estimate = reference.mean / lowbit.mean
    fewest = min(reference.n, lowbit.n)
    if fewest < min_timings:
        why = "one timing" if fewest == 1 else "too few timings"
        return MeasuredSpeedup(Interval(estimate, None, None), reference.n, lowbit.n,
                               f"{why} ({counts}; an interval needs {min_timings} of each)")
    low, high = _bootstrap(reference, lowbit, config)
    speedup = Interval(estimate, low, high)
    if low is None or high is None:
        why = f"{config.n_resamples} resample(s)" if config.n_resamples < 2 else "no finite bootstrap interval"
        return MeasuredSpeedup(speedup, reference.n, lowbit.n, f"no interval ({counts}; {why})")
    if low == high:  # identical timings: copied numbers, not repeated measurements
        return MeasuredSpeedup(Interval(estimate, None, None), reference.n, lowbit.n,
                               f"no interval: the timings do not vary ({counts})")
    if low <= 1.0 <= high:
        level = f"{100 * config.confidence:g}%"
        return MeasuredSpeedup(
            speedup, reference.n, lowbit.n,
            f"too noisy: {estimate:.2f} with {level} interval [{low:.2f}, {high:.2f}] includes 1 "
            f"({counts}): the timing noise exceeds the effect",
        )  # fmt: skip
    return MeasuredSpeedup(speedup, reference.n, lowbit.n, None)


def _bootstrap(reference: DecodeTimings, lowbit: DecodeTimings, config: BootstrapConfig):
    """(low, high) of the ratio of token-weighted means, the two sets of timings resampled
    independently; (None, None) when no interval exists (fewer than 2 resamples, or no
    finite one)."""
    if config.n_resamples < 2:
        return None, None
    r_s, r_n = _arrays(reference)
    l_s, l_n = _arrays(lowbit)

    def ratio(i: np.ndarray, j: np.ndarray, axis: int = -1) -> np.ndarray:
        i, j = i.astype(int), j.astype(int)
        ref = (r_s[i] * r_n[i]).sum(axis) / r_n[i].sum(axis)
        low = (l_s[j] * l_n[j]).sum(axis) / l_n[j].sum(axis)
        return ref / low

    methods = [config.method] + (["percentile"] if config.method == "BCa" else [])
    for method in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a degenerate BCa is answered by the percentile interval
            result = stats.bootstrap(
                (np.arange(len(r_s)), np.arange(len(l_s))), ratio, paired=False, vectorized=True,
                n_resamples=config.n_resamples, confidence_level=config.confidence, method=method,
                rng=np.random.default_rng(config.seed),
            )  # fmt: skip
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return low, high
    return None, None


def _arrays(timings: DecodeTimings) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(timings.seconds_per_token, dtype=float), np.asarray(timings.tokens, dtype=float)


def timings_from(seconds_per_token: Sequence[float], tokens: Sequence[int] | None = None) -> DecodeTimings:
    """Timings from plain sequences (every batch weighted equally without ``tokens``)."""
    tokens = [1] * len(seconds_per_token) if tokens is None else list(tokens)
    if len(tokens) != len(seconds_per_token):
        raise ValueError("seconds_per_token and tokens differ in length")
    return DecodeTimings(tuple(float(s) for s in seconds_per_token), tuple(int(n) for n in tokens))
