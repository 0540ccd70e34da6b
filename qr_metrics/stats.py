"""Paired statistics of a candidate run against its baseline (DESIGN.md section 3).

Pure functions over plain numpy arrays, shaped after ``scipy.stats``: they take arrays and
return frozen result objects with named fields; every interval is an
``Interval(estimate, low, high)``.

Inputs, for one task, are arrays aligned over PAIRS (one pair = the same task, doc_id and
repeat in both runs): ``item`` (an id per pair; the repeats of one item share it),
``base_len`` / ``cand_len`` (reasoning length in one unit, >= 0) and optionally
``base_correct`` / ``cand_correct`` (booleans; pass ``None`` when correctness is unknown).

Statistics
    ratio_of_means        sum(cand_len) / sum(base_len) over pairs (the headline).
    both_correct_ratio    the same over the pairs that both runs answer correctly.
    paired_geomean_ratio  exp(mean over items of log(cand_i / base_i)), where cand_i and
                          base_i are the item's lengths pooled over its repeats. Items whose
                          pooled length is 0 in either run have no log ratio: they are
                          excluded and counted (``n_geomean_excluded``, plus a note).
    accuracy              share of correct pairs per run, and the paired ``delta``
                          (candidate - baseline); McNemar's exact test on discordant pairs.
    macro_ratio           mean over tasks of the per-task ratio_of_means.

Intervals
    Paired bootstrap that resamples ITEMS (the repeats of an item stay together), with the
    item indices that ``scipy.stats.bootstrap`` would draw (one draw shared by every
    statistic of a comparison). Over several tasks (``stratified_comparison``) each task is
    drawn once, as its own comparison draws it, and the overall statistics and
    ``macro_ratio`` add up the tasks' resampled totals: a bootstrap stratified by task, which
    matches a benchmark whose task sizes are fixed, at the cost of one draw per item instead
    of three. Every statistic here is a function of per-item sums, so a resample is a vector
    of item counts ``w`` and its column sums are ``w @ A`` for the per-item table ``A``: one
    ``bincount`` per resample and one matrix product per batch, with no loop over items.
    The indices are drawn here, not inside ``scipy.stats.bootstrap``: scipy would gather
    them from the sample (``sample[..., i]``) and hand over a copy, about as costly as the
    counting itself and of no use to it. The draw is scipy's own call, made per batch as
    scipy makes it (``rng.integers(0, n, (batch, n))`` on ``default_rng(seed)``), and a test
    pins every resample's totals to scipy's. scipy's BCa jackknife refits the statistic on n
    leave-one-out samples of size n - 1 (quadratic). The BCa interval is computed here with
    scipy's formulas (bias correction z0 from the distribution, acceleration from the
    jackknife) but with the leave-one-item-out values taken from running sums (totals minus
    the item), which is linear in the number of items.
    Results equal scipy's own ``bootstrap(..., method="BCa")`` for the same data and seed.

Degenerate cases (never a silent NaN; each is explained in ``notes``)
    - zero baseline total length: ``ValueError`` naming the cause (ratio undefined).
    - one item (or, over several tasks, one item in every task): estimates are given,
      intervals have ``low = high = None``.
    - fewer than 2 resamples (``n_resamples=1``): no interval either; one value is not a
      distribution.
    - a bootstrap distribution that is constant (e.g. cand = 2 * base on every item): the
      interval collapses to the estimate.
    - a statistic that is undefined in some resamples (a resample with no both-correct
      pair, or with zero baseline length): those resamples are dropped and counted; the
      interval is conditional on the statistic being defined. Undefined in all: no interval.
    - BCa undefined (the estimate lies outside the bootstrap distribution, a leave-one-out
      value is undefined, or the jackknife values are all equal): percentile interval.
    - no pair answered correctly by both runs (or their baseline length is 0):
      ``both_correct_ratio`` is ``None``.
    - McNemar's test with no discordant pair: p = 1.0.

Budget exhaustion (right-censoring) is the caller's business: these functions see lengths
only. The caller reports both runs' exhaustion rates beside the ratios and says that a
ratio is then a lower bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats
from scipy.special import ndtr, ndtri

from .params import check, is_int

__all__ = [
    "AccuracyComparison",
    "BootstrapConfig",
    "InflationRatios",
    "Interval",
    "MacroRatio",
    "PairedComparison",
    "StratifiedComparison",
    "accuracy_comparison",
    "inflation_ratios",
    "macro_ratio",
    "mcnemar_exact",
    "paired_comparison",
    "stratified_comparison",
]

# Auto batch: item indices drawn per batch of resamples (int64, so 4 MiB; the float64 counts
# as much). Blocks 4 times smaller or 16 times larger were slower, 4 times larger under 5%
# faster. The batch sets the shape of each matrix product, hence the last bit of non-integer
# totals (the geomean's log ratios): changing it changes results in that bit.
_BATCH_ELEMENTS = 1 << 19
# Relative spread under which a bootstrap distribution counts as constant (float rounding).
_CONSTANT_RTOL = 1e-12
MAX_RESAMPLES = 1_000_000
"""The most bootstrap resamples allowed: the resampled totals take ``n_resamples`` x up to
9 float64 columns per task (72 MB per task at this bound)."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BootstrapConfig:
    """How bootstrap intervals are computed.

    confidence: two-sided confidence level, in (0, 1).
    n_resamples: bootstrap resamples, in [1, ``MAX_RESAMPLES``]; an interval needs at least
        2 (with fewer, intervals are ``None`` with a note).
    method: ``"BCa"`` (bias-corrected and accelerated, falls back to percentile where it is
        undefined, with a note) or ``"percentile"``; case-insensitive.
    seed: seed of ``numpy.random.default_rng``; results are reproducible for a given seed,
        number of items and ``batch``.
    batch: resamples drawn at once (memory is about ``batch * n_items * 16`` bytes); ``None``
        picks a cache-friendly size from the number of items.
    """

    confidence: float = 0.95
    n_resamples: int = 10_000
    method: str = "BCa"
    seed: int = 0
    batch: int | None = None

    def __post_init__(self) -> None:
        check(
            "BootstrapConfig",
            _is_real(self.confidence) and 0.0 < self.confidence < 1.0,
            "confidence",
            self.confidence,
            "a number in (0, 1)",
        )
        check(
            "BootstrapConfig",
            is_int(self.n_resamples) and 1 <= self.n_resamples <= MAX_RESAMPLES,
            "n_resamples",
            self.n_resamples,
            f"an integer in [1, {MAX_RESAMPLES}]",
        )
        canonical = {"bca": "BCa", "percentile": "percentile"}
        method = canonical.get(self.method.lower()) if isinstance(self.method, str) else None
        check("BootstrapConfig", method is not None, "method", self.method, "'BCa' or 'percentile'")
        object.__setattr__(self, "method", method)
        check("BootstrapConfig", is_int(self.seed) and self.seed >= 0, "seed", self.seed, "an integer >= 0")
        check(
            "BootstrapConfig",
            self.batch is None or (is_int(self.batch) and self.batch >= 1),
            "batch",
            self.batch,
            "None or an integer >= 1",
        )


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


DEFAULT_BOOTSTRAP = BootstrapConfig()


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval; ``low``/``high`` are ``None`` when no
    interval can be computed (the result's ``notes`` say why)."""

    estimate: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class InflationRatios:
    """CoT token inflation of a candidate against its baseline, for one task.

    ``both_correct_ratio`` is ``None`` when correctness was not given or no pair is answered
    correctly by both runs; ``paired_geomean_ratio`` is ``None`` when no item has a non-zero
    length in both runs. ``n_both_correct_pairs`` is ``None`` when correctness was not given.
    """

    ratio_of_means: Interval
    both_correct_ratio: Interval | None
    paired_geomean_ratio: Interval | None
    n_items: int
    n_pairs: int
    n_both_correct_pairs: int | None
    n_geomean_excluded: int
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return _as_dict(self)


@dataclass(frozen=True)
class AccuracyComparison:
    """Accuracy of both runs and their paired difference, for one task.

    Accuracies are shares of correct pairs. McNemar's exact test counts discordant PAIRS
    (``n_base_only``: baseline right, candidate wrong; ``n_cand_only``: the reverse), so with
    repeats it treats the repeats of an item as independent and its p-value is then
    optimistic; the bootstrap interval of ``delta`` resamples items and has no such problem.
    """

    baseline: Interval
    candidate: Interval
    delta: Interval
    mcnemar_p: float
    n_base_only: int
    n_cand_only: int
    n_items: int
    n_pairs: int
    notes: tuple[str, ...] = ()

    @property
    def n_discordant(self) -> int:
        return self.n_base_only + self.n_cand_only

    def as_dict(self) -> dict:
        return _as_dict(self)


@dataclass(frozen=True)
class PairedComparison:
    """Everything :func:`paired_comparison` computes from one draw of resamples."""

    inflation: InflationRatios
    accuracy: AccuracyComparison | None

    def as_dict(self) -> dict:
        return {
            "inflation": self.inflation.as_dict(),
            "accuracy": None if self.accuracy is None else self.accuracy.as_dict(),
        }


@dataclass(frozen=True)
class MacroRatio:
    """Mean over tasks of the per-task ratio_of_means, with a stratified bootstrap interval."""

    ratio: Interval
    task_ratios: tuple[float, ...]
    n_items: tuple[int, ...]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return _as_dict(self)


def _as_dict(result) -> dict:
    out = asdict(result)
    out["notes"] = list(out["notes"])
    if "n_discordant" in type(result).__dict__:
        out["n_discordant"] = result.n_discordant
    for key in ("task_ratios", "n_items"):
        if isinstance(out.get(key), tuple):
            out[key] = list(out[key])
    return out


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _Pairs:
    item_index: np.ndarray  # per pair, the item's position in 0..n_items-1 (sorted ids)
    n_items: int
    base_len: np.ndarray | None
    cand_len: np.ndarray | None
    base_correct: np.ndarray | None
    cand_correct: np.ndarray | None

    def per_item(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.item_index, weights=values, minlength=self.n_items)


def _pairs(item, base_len=None, cand_len=None, base_correct=None, cand_correct=None, where="") -> _Pairs:
    item = np.asarray(item)
    if item.ndim != 1:
        raise ValueError(f"{where}item must be 1-D (one id per pair), got shape {item.shape}")
    n = item.size
    if n == 0:
        raise ValueError(f"{where}no pairs: the arrays are empty")
    _, item_index = np.unique(item, return_inverse=True)
    item_index = item_index.reshape(-1)

    def lengths(name, values):
        if values is None:
            return None
        arr = np.asarray(values, dtype=np.float64)
        _same_shape(name, arr, n, where)
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
        if bad.size:
            raise ValueError(
                f"{where}{name}[{bad[0]}]={arr[bad[0]].item()!r} is invalid: lengths must be finite and >= 0"
            )
        return arr

    if (base_correct is None) != (cand_correct is None):
        raise ValueError(f"{where}base_correct and cand_correct must be given together (or both None)")
    return _Pairs(
        item_index=item_index,
        n_items=int(item_index.max()) + 1,
        base_len=lengths("base_len", base_len),
        cand_len=lengths("cand_len", cand_len),
        base_correct=None if base_correct is None else _correct("base_correct", base_correct, n, where),
        cand_correct=None if cand_correct is None else _correct("cand_correct", cand_correct, n, where),
    )


def _correct(name: str, values, n: int, where: str = "") -> np.ndarray:
    arr = np.asarray(values)
    _same_shape(name, arr, n, where)
    if arr.dtype != np.bool_:
        ok = np.isin(arr, (0, 1)) if arr.dtype.kind in "iuf" else np.zeros(n, dtype=bool)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{where}{name}[{bad}]={arr[bad].item()!r} is invalid: must be a boolean (or 0/1)")
        arr = arr.astype(bool)
    return arr


def _same_shape(name: str, arr: np.ndarray, n: int, where: str) -> None:
    if arr.shape != (n,):
        raise ValueError(f"{where}{name} has shape {arr.shape}, expected ({n},) like item")


# ----------------------------------------------------------------------------- bootstrap core


@dataclass(frozen=True)
class _Stat:
    """A statistic that is a function of the column totals of the per-item table."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]  # totals (..., k) -> values (...)
    undefined: str  # why a resample can leave it undefined, for the note


def _batch_size(config: BootstrapConfig, n_items: int) -> int:
    if config.batch is not None:
        return config.batch
    return max(1, min(config.n_resamples, _BATCH_ELEMENTS // max(n_items, 1)))


def _draw_totals(table: np.ndarray, config: BootstrapConfig) -> np.ndarray:
    """The column totals of ``table`` in every bootstrap resample of its rows (items),
    ``(n_resamples, k)``, from ``config.seed``: a task's draw depends on its number of items
    only, whichever comparison asks for it. A table of one item is its own only resample.

    The item indices are scipy's (module docstring); each row's counts are one bincount
    while the row is in cache, and a batch's totals one matrix product."""
    n = table.shape[0]
    if n < 2:
        return np.broadcast_to(table.sum(axis=0), (config.n_resamples, table.shape[1]))
    rng = np.random.default_rng(config.seed)
    batch = _batch_size(config, n)
    totals = np.empty((config.n_resamples, table.shape[1]))
    counts = np.empty((min(batch, config.n_resamples), n))
    for start in range(0, config.n_resamples, batch):
        block = counts[: min(batch, config.n_resamples - start)]
        for row, drawn in zip(block, _draw_items(rng, n, len(block))):
            row[:] = np.bincount(drawn, minlength=n)
        np.matmul(block, table, out=totals[start : start + len(block)])
    return totals


def _draw_items(rng: np.random.Generator, n: int, batch: int) -> np.ndarray:
    """One batch of resamples of ``n`` items, ``(batch, n)``: the call that
    ``scipy.stats.bootstrap`` makes per batch (``_bootstrap_resample``), pinned to it by a test."""
    return rng.integers(0, n, (batch, n))


def _linear_bootstrap(table: np.ndarray, statistics: Sequence[_Stat], config: BootstrapConfig, notes: list):
    """Estimates and intervals of statistics of the column totals of a per-item table,
    and the resampled totals (None for one item) that a stratified overall sums."""
    table = np.ascontiguousarray(table, dtype=np.float64)
    n = table.shape[0]
    totals = table.sum(axis=0)
    if n < 2:
        return _no_intervals(statistics, totals, notes), None
    draws = _draw_totals(table, config)
    return _intervals(statistics, totals, draws, [totals[None, :] - table], config, notes), draws


def _no_intervals(statistics: Sequence[_Stat], totals, notes: list, why: str = "only 1 item") -> list[Interval]:
    for s in statistics:
        notes.append(f"{s.name}: {why}, so no bootstrap interval")
    with np.errstate(divide="ignore", invalid="ignore"):
        return [Interval(float(s.fn(totals)), None, None) for s in statistics]


def _intervals(statistics: Sequence[_Stat], totals, draws, leave_one_out, config: BootstrapConfig, notes: list):
    """Each statistic's estimate (from ``totals``) and interval (from the resampled totals
    ``draws``); ``leave_one_out``: per independently resampled stratum, the totals without
    each of its items (running sums, linear in the number of items) for BCa's jackknife."""
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in statistics:
            jackknives = [s.fn(left) for left in leave_one_out]
            out.append(_interval(s, float(s.fn(totals)), s.fn(draws), jackknives, config, notes))
    return out


def _interval(stat: _Stat, estimate: float, dist: np.ndarray, jackknives, config, notes: list) -> Interval:
    finite = np.isfinite(dist)
    if not finite.all():
        dropped = int(dist.size - np.count_nonzero(finite))
        if dropped == dist.size:
            notes.append(f"{stat.name}: undefined in every resample ({stat.undefined}), so no interval")
            return Interval(estimate, None, None)
        notes.append(
            f"{stat.name}: undefined in {dropped} of {dist.size} resamples ({stat.undefined}); "
            f"the interval uses the other {dist.size - dropped}"
        )
        dist = dist[finite]
    if dist.size < 2:  # one value is no distribution: never a zero-width interval
        notes.append(f"{stat.name}: only 1 resample, so no interval (an interval needs at least 2)")
        return Interval(estimate, None, None)
    spread = float(dist.max() - dist.min())
    if spread <= _CONSTANT_RTOL * max(1.0, abs(estimate)):
        notes.append(f"{stat.name}: every resample gives the same value, so the interval is the estimate")
        return Interval(estimate, estimate, estimate)
    alpha = (1.0 - config.confidence) / 2.0
    if config.method == "BCa":
        levels, why = _bca_levels(estimate, dist, jackknives, alpha)
        if levels is None:
            notes.append(f"{stat.name}: BCa undefined ({why}); percentile interval used")
        else:
            return _quantile_interval(estimate, dist, levels)
    return _quantile_interval(estimate, dist, (alpha, 1.0 - alpha))


def _quantile_interval(estimate: float, dist: np.ndarray, levels) -> Interval:
    low, high = stats.quantile(dist, np.asarray(levels, dtype=dist.dtype), axis=-1)
    return Interval(estimate, float(low), float(high))


def _bca_levels(estimate: float, dist: np.ndarray, jackknives, alpha: float):
    """The two BCa quantile levels, as scipy's ``_bca_interval`` computes them.

    ``jackknives``: one array of leave-one-out values per independently resampled sample
    (one for a comparison, one per task for the stratified macro ratio).
    Returns (levels, None) or (None, why).
    """
    below = np.count_nonzero(dist < estimate) + np.count_nonzero(dist <= estimate)
    z0 = ndtri(below / (2 * dist.size))
    if not np.isfinite(z0):
        return None, "the estimate lies outside the bootstrap distribution"
    num = den = 0.0
    for jk in jackknives:
        if jk.size < 2:
            continue
        if not np.isfinite(jk).all():
            return None, "a leave-one-item-out value is undefined"
        m = float(jk.size)
        u = (m - 1) * (jk.mean() - jk)
        num += np.sum(u**3) / m**3
        den += np.sum(u**2) / m**2
    if den == 0:
        return None, "the leave-one-item-out values are all equal"
    a_hat = num / den**1.5 / 6
    z_alpha = float(ndtri(alpha))
    levels = []
    for z in (z_alpha, -z_alpha):
        shifted = z0 + z
        levels.append(ndtr(z0 + shifted / (1 - a_hat * shifted)))
    if not np.isfinite(levels).all():
        return None, "the acceleration is out of range"
    return tuple(levels), None


# ----------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class _Design:
    """A comparison's per-item table (columns by name), its statistics and what the data allowed."""

    names: tuple[str, ...]
    table: np.ndarray
    statistics: tuple[_Stat, ...]
    notes: list
    n_both_correct: int | None
    both_correct_ok: bool
    geomean_ok: bool
    geomean_excluded: int | None


def _design(pairs: _Pairs, inflation: bool, accuracy: bool) -> _Design:
    """The columns depend only on which data is given (lengths, correctness), so that tasks'
    resampled totals add up column by column; the statistics on what the data allows."""
    notes: list[str] = []
    columns: dict[str, np.ndarray] = {}
    has_correct = pairs.base_correct is not None
    n_bc = geo_excluded = None
    bc_ok = geo_ok = False
    if inflation:
        base_total = float(pairs.base_len.sum())
        if base_total == 0:
            raise ValueError(
                f"baseline mean reasoning length is 0 over {pairs.base_len.size} pairs: "
                "ratio_of_means is undefined (check the unit and the reasoning tags of the baseline run)"
            )
        columns["cand"], columns["base"] = pairs.per_item(pairs.cand_len), pairs.per_item(pairs.base_len)
        if has_correct:
            both = pairs.base_correct & pairs.cand_correct
            n_bc = int(both.sum())
            columns["both_cand"] = pairs.per_item(np.where(both, pairs.cand_len, 0.0))
            columns["both_base"] = pairs.per_item(np.where(both, pairs.base_len, 0.0))
            if n_bc == 0:
                notes.append("both_correct_ratio: no pair is answered correctly by both runs")
            elif float(pairs.base_len[both].sum()) == 0:
                notes.append("both_correct_ratio: baseline length is 0 on every both-correct pair")
            else:
                bc_ok = True
        usable = (columns["cand"] > 0) & (columns["base"] > 0)
        geo_excluded = int(pairs.n_items - usable.sum())
        if geo_excluded:
            notes.append(
                f"paired_geomean_ratio: {geo_excluded} of {pairs.n_items} items excluded "
                "(zero length in a run, so no log ratio)"
            )
        geo_ok = bool(usable.any())
        log_ratio = np.zeros(pairs.n_items)
        log_ratio[usable] = np.log(columns["cand"][usable]) - np.log(columns["base"][usable])
        columns["log_ratio"], columns["usable"] = log_ratio, usable.astype(np.float64)
    if accuracy:
        columns["n"] = pairs.per_item(np.ones(pairs.item_index.size))
        columns["base_ok"] = pairs.per_item(pairs.base_correct.astype(np.float64))
        columns["cand_ok"] = pairs.per_item(pairs.cand_correct.astype(np.float64))
    at = {name: j for j, name in enumerate(columns)}

    def ratio(name, top, bottom, undefined):
        t, b = at[top], at[bottom]
        return _Stat(name, lambda s: s[..., t] / s[..., b], undefined)

    statistics = []
    if inflation:
        statistics.append(ratio("ratio_of_means", "cand", "base", "zero baseline length in the resample"))
        if bc_ok:
            statistics.append(ratio("both_correct_ratio", "both_cand", "both_base",
                                    "no both-correct pair with a baseline length in the resample"))
        if geo_ok:
            c_log, c_use = at["log_ratio"], at["usable"]
            statistics.append(_Stat("paired_geomean_ratio", lambda s: np.exp(s[..., c_log] / s[..., c_use]),
                                    "no item with non-zero lengths in the resample"))
    if accuracy:
        c_n, c_b, c_c = at["n"], at["base_ok"], at["cand_ok"]
        never = "cannot happen: every item has a pair"
        statistics.append(_Stat("baseline_accuracy", lambda s: s[..., c_b] / s[..., c_n], never))
        statistics.append(_Stat("candidate_accuracy", lambda s: s[..., c_c] / s[..., c_n], never))
        statistics.append(_Stat("accuracy_delta", lambda s: (s[..., c_c] - s[..., c_b]) / s[..., c_n], never))
    return _Design(tuple(columns), np.column_stack(list(columns.values())), tuple(statistics), notes,
                   n_bc, bc_ok, geo_ok, geo_excluded)


def _results(pairs: _Pairs, design: _Design, intervals: list[Interval], inflation: bool, accuracy: bool):
    intervals = dict(zip((s.name for s in design.statistics), intervals))
    notes = design.notes

    def notes_for(prefixes):
        return tuple(n for n in notes if n.split(":", 1)[0] in prefixes)

    n_pairs = int(pairs.item_index.size)
    infl = acc = None
    if inflation:
        infl = InflationRatios(
            ratio_of_means=intervals["ratio_of_means"],
            both_correct_ratio=intervals.get("both_correct_ratio") if design.both_correct_ok else None,
            paired_geomean_ratio=intervals.get("paired_geomean_ratio") if design.geomean_ok else None,
            n_items=pairs.n_items,
            n_pairs=n_pairs,
            n_both_correct_pairs=design.n_both_correct,
            n_geomean_excluded=design.geomean_excluded,
            notes=notes_for({"ratio_of_means", "both_correct_ratio", "paired_geomean_ratio"}),
        )
    if accuracy:
        base_only = int(np.count_nonzero(pairs.base_correct & ~pairs.cand_correct))
        cand_only = int(np.count_nonzero(~pairs.base_correct & pairs.cand_correct))
        acc = AccuracyComparison(
            baseline=intervals["baseline_accuracy"],
            candidate=intervals["candidate_accuracy"],
            delta=intervals["accuracy_delta"],
            mcnemar_p=_mcnemar(base_only, cand_only),
            n_base_only=base_only,
            n_cand_only=cand_only,
            n_items=pairs.n_items,
            n_pairs=n_pairs,
            notes=notes_for({"baseline_accuracy", "candidate_accuracy", "accuracy_delta"}),
        )
    return infl, acc


def _compare(pairs: _Pairs, config: BootstrapConfig, inflation: bool, accuracy: bool):
    design = _design(pairs, inflation, accuracy)
    intervals, _ = _linear_bootstrap(design.table, design.statistics, config, design.notes)
    return _results(pairs, design, intervals, inflation, accuracy)


def paired_comparison(
    item, base_len, cand_len, base_correct=None, cand_correct=None, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> PairedComparison:
    """Inflation ratios and (when correctness is given) the accuracy comparison of one task,
    all from one shared draw of item resamples."""
    pairs = _pairs(item, base_len, cand_len, base_correct, cand_correct)
    infl, acc = _compare(pairs, config, inflation=True, accuracy=base_correct is not None)
    return PairedComparison(inflation=infl, accuracy=acc)


@dataclass(frozen=True)
class StratifiedComparison:
    """Every task's comparison, the overall one and the macro ratio, from one draw per task."""

    tasks: tuple[PairedComparison, ...]
    overall: PairedComparison
    macro: MacroRatio


def stratified_comparison(tasks: Sequence, config: BootstrapConfig = DEFAULT_BOOTSTRAP) -> StratifiedComparison:
    """``tasks``: one ``(item, base_len, cand_len, base_correct, cand_correct)`` per task
    (correctness ``None`` when unknown; item ids need only be unique within their task).

    Each task's comparison is :func:`paired_comparison`'s, draw for draw. The overall one
    (over all pairs, with correctness when every task has it) and the macro ratio reuse those
    draws: a resample of the whole set is one resample of each task, so its column totals are
    the sums of the tasks' resampled totals. That is a bootstrap stratified by task, the
    resampling that matches a benchmark whose task sizes are fixed; BCa's jackknife leaves
    out one item at a time within each task (scipy's formula for several samples). A task
    of one item is held fixed.
    """
    if len(tasks) == 0:
        raise ValueError("stratified_comparison needs at least one task")
    parts = [_pairs(*task, where=f"tasks[{t}]: ") for t, task in enumerate(tasks)]
    graded = all(p.base_correct is not None for p in parts)
    designs, draws, per_task = [], [], []
    for p in parts:
        design = _design(p, True, p.base_correct is not None)
        intervals, drawn = _linear_bootstrap(design.table, design.statistics, config, design.notes)
        designs.append(design)
        draws.append(_draw_totals(design.table, config) if drawn is None else drawn)
        per_task.append(PairedComparison(*_results(p, design, intervals, True, p.base_correct is not None)))
    ratio_columns = [(d.names.index("cand"), d.names.index("base")) for d in designs]
    macro = _macro(
        [d.table[:, c] for d, c in zip(designs, ratio_columns)],
        [draw[:, c] for draw, c in zip(draws, ratio_columns)],
        config,
    )
    if len(parts) == 1:  # the overall is that task
        return StratifiedComparison(tuple(per_task), per_task[0], macro)
    offsets = np.cumsum([0] + [p.n_items for p in parts[:-1]])
    pooled = _Pairs(
        item_index=np.concatenate([p.item_index + o for p, o in zip(parts, offsets)]),
        n_items=sum(p.n_items for p in parts),
        base_len=np.concatenate([p.base_len for p in parts]),
        cand_len=np.concatenate([p.cand_len for p in parts]),
        base_correct=np.concatenate([p.base_correct for p in parts]) if graded else None,
        cand_correct=np.concatenate([p.cand_correct for p in parts]) if graded else None,
    )
    design = _design(pooled, True, graded)
    columns = [[d.names.index(name) for name in design.names] for d in designs]
    totals = design.table.sum(axis=0)
    if all(p.n_items < 2 for p in parts):  # every task held fixed: the resamples cannot vary
        intervals = _no_intervals(design.statistics, totals, design.notes, "every task has only 1 item")
    else:
        drawn = sum(draw[:, c] for draw, c in zip(draws, columns))
        leave_one_out = [totals[None, :] - d.table[:, c] for d, c in zip(designs, columns) if d.table.shape[0] >= 2]
        intervals = _intervals(design.statistics, totals, drawn, leave_one_out, config, design.notes)
    overall = PairedComparison(*_results(pooled, design, intervals, True, graded))
    return StratifiedComparison(tuple(per_task), overall, macro)


def inflation_ratios(
    item, base_len, cand_len, base_correct=None, cand_correct=None, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> InflationRatios:
    """CoT token inflation ratios of one task (module docstring: definitions, degenerate
    cases). Correctness is optional; without it ``both_correct_ratio`` is ``None``."""
    pairs = _pairs(item, base_len, cand_len, base_correct, cand_correct)
    return _compare(pairs, config, inflation=True, accuracy=False)[0]


def accuracy_comparison(
    item, base_correct, cand_correct, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> AccuracyComparison:
    """Accuracy of both runs, the paired delta (candidate - baseline) with an item bootstrap
    interval, and McNemar's exact p-value over discordant pairs."""
    if base_correct is None or cand_correct is None:
        raise ValueError("accuracy_comparison needs base_correct and cand_correct")
    pairs = _pairs(item, base_correct=base_correct, cand_correct=cand_correct)
    return _compare(pairs, config, inflation=False, accuracy=True)[1]


def mcnemar_exact(base_correct, cand_correct) -> float:
    """Two-sided exact McNemar p-value: a binomial test (p = 1/2) on the discordant pairs.

    Discordant pairs are counted over pairs (repeats count separately). No discordant pair
    gives 1.0.
    """
    base = np.asarray(base_correct)
    if base.ndim != 1:
        raise ValueError(f"base_correct must be 1-D (one value per pair), got shape {base.shape}")
    base = _correct("base_correct", base, base.size)
    cand = _correct("cand_correct", cand_correct, base.size)
    return _mcnemar(int(np.count_nonzero(base & ~cand)), int(np.count_nonzero(~base & cand)))


def _mcnemar(base_only: int, cand_only: int) -> float:
    n = base_only + cand_only
    if n == 0:
        return 1.0
    return float(stats.binomtest(cand_only, n, 0.5, alternative="two-sided").pvalue)


# ----------------------------------------------------------------------------- macro ratio


def macro_ratio(tasks: Sequence, config: BootstrapConfig = DEFAULT_BOOTSTRAP) -> MacroRatio:
    """Mean over tasks of each task's ratio_of_means.

    ``tasks``: a sequence of ``(item, base_len, cand_len)`` triples, one per task. The
    interval comes from a bootstrap stratified by task: each task's items are resampled as
    :func:`paired_comparison` resamples them (the same draw), and a task with a single item
    is held fixed (its only resample is itself).
    """
    if len(tasks) == 0:
        raise ValueError("macro_ratio needs at least one task")
    tables = []
    for t, task in enumerate(tasks):
        if len(task) != 3:
            raise ValueError(f"tasks[{t}] must be (item, base_len, cand_len), got {len(task)} values")
        pairs = _pairs(*task, where=f"tasks[{t}]: ")
        tables.append(np.column_stack([pairs.per_item(pairs.cand_len), pairs.per_item(pairs.base_len)]))
    return _macro(tables, [_draw_totals(table, config) for table in tables], config)


def _macro(tables: list[np.ndarray], draws: list[np.ndarray], config: BootstrapConfig) -> MacroRatio:
    """The macro ratio from each task's per-item (cand, base) table and its resampled totals."""
    ratios, n_items = [], []
    for t, table in enumerate(tables):
        total = table.sum(axis=0)
        if total[1] == 0:
            raise ValueError(
                f"tasks[{t}]: baseline mean reasoning length is 0: ratio_of_means is undefined"
            )
        ratios.append(float(total[0] / total[1]))
        n_items.append(table.shape[0])
    n_tasks = len(tables)
    estimate = float(np.mean(ratios))
    notes: list[str] = []
    varying = [t for t in range(n_tasks) if n_items[t] >= 2]
    fixed = [t for t in range(n_tasks) if n_items[t] < 2]
    if fixed:
        notes.append(f"macro_ratio: tasks {fixed} have one item and are held fixed in the bootstrap")
    stat = _Stat("macro_ratio", None, "zero baseline length in a task's resample")
    if not varying:
        notes.append("macro_ratio: every task has one item, so no bootstrap interval")
        ratio = Interval(estimate, None, None)
    else:
        total_ratio = sum(ratios)
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = sum(draw[:, 0] / draw[:, 1] for draw in draws) / n_tasks
            jackknives = []
            for t in varying:
                left = tables[t].sum(axis=0)[None, :] - tables[t]
                jackknives.append((total_ratio - ratios[t] + left[:, 0] / left[:, 1]) / n_tasks)
            ratio = _interval(stat, estimate, dist, jackknives, config, notes)
    return MacroRatio(ratio=ratio, task_ratios=tuple(ratios), n_items=tuple(n_items), notes=tuple(notes))
