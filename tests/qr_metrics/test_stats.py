"""Paired statistics (qr_metrics.stats) against independently computed values."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr, ndtri

from qr_metrics.stats import (
    BootstrapConfig,
    Interval,
    accuracy_comparison,
    inflation_ratios,
    macro_ratio,
    mcnemar_exact,
    paired_comparison,
    stratified_comparison,
)
from qr_metrics.stats import _batch_size, _draw_totals

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "r1-distill-1.5b" / "per_sample"


def _data(n, seed=3, repeats=1):
    """Integer lengths (sums are exact, so ties compare equal in every implementation)."""
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(100, 100 + n), repeats)
    effect = np.repeat(rng.lognormal(0.0, 0.8, n), repeats)  # item difficulty, shared by repeats
    base = np.round(effect * rng.integers(200, 2000, n * repeats)).astype(float)
    cand = np.round(base * rng.lognormal(0.3, 0.4, n * repeats))
    base_ok = rng.random(n * repeats) < 0.8
    cand_ok = rng.random(n * repeats) < 0.6
    return item, base, cand, base_ok, cand_ok


# ----------------------------------------------------------------------------- point values


def test_ratios_by_hand():
    item = [0, 1, 2]
    base = [10.0, 20.0, 30.0]
    cand = [20.0, 20.0, 60.0]
    r = inflation_ratios(item, base, cand, [True, True, False], [True, False, True],
                         BootstrapConfig(n_resamples=200))
    assert r.ratio_of_means.estimate == pytest.approx(100 / 60)
    assert r.paired_geomean_ratio.estimate == pytest.approx(2 ** (2 / 3))
    assert r.both_correct_ratio.estimate == pytest.approx(2.0)  # only item 0 is both-correct
    assert (r.n_items, r.n_pairs, r.n_both_correct_pairs, r.n_geomean_excluded) == (3, 3, 1, 0)


def test_repeats_are_pooled_per_item_for_the_geomean():
    # item 7: cand 2+2 vs base 1+3 -> ratio 1; item 9: 8 vs 2 -> ratio 4; geomean = sqrt(1*4)
    r = inflation_ratios([7, 7, 9], [1.0, 3.0, 2.0], [2.0, 2.0, 8.0], config=BootstrapConfig(n_resamples=100))
    assert r.paired_geomean_ratio.estimate == pytest.approx(2.0)
    assert r.ratio_of_means.estimate == pytest.approx(12 / 6)
    assert (r.n_items, r.n_pairs) == (2, 3)
    assert r.both_correct_ratio is None and r.n_both_correct_pairs is None


def test_accuracy_by_hand():
    base = np.array([1, 1, 1, 1, 0, 0, 1, 0], dtype=bool)
    cand = np.array([1, 0, 0, 1, 0, 1, 0, 0], dtype=bool)
    a = accuracy_comparison(np.arange(8), base, cand, BootstrapConfig(n_resamples=500))
    assert a.baseline.estimate == pytest.approx(5 / 8)
    assert a.candidate.estimate == pytest.approx(3 / 8)
    assert a.delta.estimate == pytest.approx(-2 / 8)
    assert (a.n_base_only, a.n_cand_only, a.n_discordant) == (3, 1, 4)
    assert a.mcnemar_p == pytest.approx(0.625)  # 2 * (C(4,0) + C(4,1)) / 2**4
    assert a.delta.low <= a.delta.estimate <= a.delta.high


def _mcnemar_by_hand(b, c):
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b,c", [(9, 4), (0, 5), (3, 3), (0, 0), (40, 12), (1, 30)])
def test_mcnemar_against_binomial_sum(b, c):
    base = np.array([True] * b + [False] * c + [True] * 5 + [False] * 3)
    cand = np.array([False] * b + [True] * c + [True] * 5 + [False] * 3)
    assert mcnemar_exact(base, cand) == pytest.approx(_mcnemar_by_hand(b, c), rel=1e-12)


def test_macro_ratio_by_hand():
    tasks = [([0, 1], [10.0, 10.0], [20.0, 20.0]), ([0, 1, 2], [1.0, 2.0, 3.0], [3.0, 3.0, 3.0])]
    m = macro_ratio(tasks, BootstrapConfig(n_resamples=200))
    assert m.task_ratios == pytest.approx((2.0, 1.5))
    assert m.ratio.estimate == pytest.approx(1.75)
    assert m.n_items == (2, 3)


# ----------------------------------------------------------------------------- intervals vs references


def _scipy(data, statistic, method, n_resamples, batch, seed=0):
    ci = stats.bootstrap(data, statistic, paired=True, vectorized=True, method=method,
                         n_resamples=n_resamples, batch=batch, rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_intervals_equal_scipy_bootstrap_without_repeats(method):
    """One pair per item: scipy's own paired bootstrap (its quadratic BCa jackknife included)."""
    item, base, cand, bok, cok = _data(60)
    cfg = BootstrapConfig(n_resamples=3000, method=method, batch=250, seed=7)
    r = paired_comparison(item, base, cand, bok, cok, cfg)
    both = (bok & cok).astype(float)
    refs = {
        "ratio_of_means": (r.inflation.ratio_of_means, (cand, base), lambda c, b, axis: c.sum(axis) / b.sum(axis)),
        "both_correct": (r.inflation.both_correct_ratio, (cand, base, both),
                         lambda c, b, m, axis: (c * m).sum(axis) / (b * m).sum(axis)),
        "geomean": (r.inflation.paired_geomean_ratio, (cand, base),
                    lambda c, b, axis: np.exp(np.mean(np.log(c) - np.log(b), axis=axis))),
        "delta": (r.accuracy.delta, (cok.astype(float), bok.astype(float)),
                  lambda c, b, axis: np.mean(c - b, axis=axis)),
        "baseline": (r.accuracy.baseline, (bok.astype(float),), lambda b, axis: np.mean(b, axis=axis)),
    }
    for name, (ours, data, statistic) in refs.items():
        low, high = _scipy(data, statistic, method, 3000, 250, seed=7)
        assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-10), name
        assert ours.low <= ours.estimate <= ours.high, name
    assert r.inflation.notes == () and r.accuracy.notes == ()


def _loop_bootstrap(item, base, cand, bok, cok, n_resamples, batch, seed):
    """Plain resampling loop over items: draws blocks of item indices exactly as scipy does
    (``rng.integers(0, n, (batch, n))``), then recomputes each statistic from the PAIRS of
    the drawn items (repeats travel with their item)."""
    ids = np.unique(item)
    pairs_of = [np.flatnonzero(item == i) for i in ids]
    rng = np.random.default_rng(seed)
    out = {"ratio": [], "both": [], "geo": [], "delta": []}
    done = 0
    while done < n_resamples:
        rows = rng.integers(0, ids.size, (min(batch, n_resamples - done), ids.size))
        for row in rows:
            p = np.concatenate([pairs_of[k] for k in row])
            bc = bok[p] & cok[p]
            out["ratio"].append(cand[p].mean() / base[p].mean())
            out["both"].append(cand[p][bc].sum() / base[p][bc].sum())
            out["geo"].append(math.exp(np.mean([
                math.log(cand[pairs_of[k]].sum() / base[pairs_of[k]].sum()) for k in row])))
            out["delta"].append(cok[p].mean() - bok[p].mean())
        done += rows.shape[0]
    return {k: np.quantile(v, [0.025, 0.975]) for k, v in out.items()}


def test_percentile_equals_plain_loop_with_repeats():
    item, base, cand, bok, cok = _data(25, seed=11, repeats=3)
    shuffle = np.random.default_rng(0).permutation(item.size)  # pair order must not matter
    item, base, cand, bok, cok = (a[shuffle] for a in (item, base, cand, bok, cok))
    cfg = BootstrapConfig(n_resamples=600, method="percentile", batch=64, seed=5)
    r = paired_comparison(item, base, cand, bok, cok, cfg)
    ref = _loop_bootstrap(item, base, cand, bok, cok, 600, 64, 5)
    got = {
        "ratio": r.inflation.ratio_of_means,
        "both": r.inflation.both_correct_ratio,
        "geo": r.inflation.paired_geomean_ratio,
        "delta": r.accuracy.delta,
    }
    for name, interval in got.items():
        assert (interval.low, interval.high) == pytest.approx(tuple(ref[name]), rel=1e-10, abs=1e-12), name
    assert (r.inflation.n_items, r.inflation.n_pairs) == (25, 75)


def test_bca_with_repeats_equals_scipy_on_item_sums():
    """Resampling items = scipy's bootstrap of per-item sums (summed here by a Python loop)."""
    item, base, cand, _, _ = _data(40, seed=2, repeats=4)
    sums = {}
    for i, b, c in zip(item.tolist(), base.tolist(), cand.tolist()):
        sb, sc = sums.get(i, (0.0, 0.0))
        sums[i] = (sb + b, sc + c)
    per_item = np.array([sums[i] for i in sorted(sums)]).T  # (2, n_items): base, cand
    cfg = BootstrapConfig(n_resamples=2000, seed=1, batch=500)
    ours = inflation_ratios(item, base, cand, config=cfg).ratio_of_means
    ci = stats.bootstrap((per_item,), lambda x, axis: x[1].sum(axis) / x[0].sum(axis), axis=-1,
                         method="BCa", n_resamples=2000, batch=500, rng=np.random.default_rng(1)).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_resampling_items_differs_from_resampling_pairs():
    """Strong item effects: pair-level resampling would understate the uncertainty."""
    item, base, cand, _, _ = _data(30, seed=4, repeats=6)
    rng = np.random.default_rng(9)
    cand = np.round(cand * np.repeat(rng.lognormal(0.0, 0.6, 30), 6))  # item-level inflation
    cfg = BootstrapConfig(n_resamples=2000, method="percentile", batch=200)
    by_item = inflation_ratios(item, base, cand, config=cfg).ratio_of_means
    by_pair = inflation_ratios(np.arange(item.size), base, cand, config=cfg).ratio_of_means
    assert by_item.estimate == pytest.approx(by_pair.estimate)
    assert (by_item.high - by_item.low) > 1.5 * (by_pair.high - by_pair.low)


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_macro_ratio_is_a_bootstrap_stratified_by_task(method):
    """Each task resampled by scipy as its own comparison resamples it (same seed); the macro
    distribution is the mean of the tasks' ratio distributions; BCa by hand: z0 from that
    distribution, the acceleration from every task's leave-one-item-out loop."""
    tasks, dists = [], []
    for t, n in enumerate((30, 45, 20)):
        item, base, cand, _, _ = _data(n, seed=20 + t)
        tasks.append((item, base, cand))
        dists.append(stats.bootstrap((np.stack([cand, base]),), lambda x, axis: x[0].sum(axis) / x[1].sum(axis),
                                     axis=-1, vectorized=True, method="percentile", n_resamples=2000, batch=100,
                                     rng=np.random.default_rng(3)).bootstrap_distribution)
    cfg = BootstrapConfig(n_resamples=2000, method=method, seed=3, batch=100)
    m = macro_ratio(tasks, cfg)
    ratios = [c.sum() / b.sum() for _, b, c in tasks]
    estimate = np.mean(ratios)
    dist = np.mean(dists, axis=0)
    levels = [0.025, 0.975]
    if method == "BCa":
        z0 = ndtri((np.sum(dist < estimate) + np.sum(dist <= estimate)) / (2 * dist.size))
        num = den = 0.0
        for t, (_, b, c) in enumerate(tasks):
            jk = []
            for i in range(len(b)):
                keep = np.arange(len(b)) != i
                jk.append((sum(ratios) - ratios[t] + c[keep].sum() / b[keep].sum()) / 3)
            jk = np.array(jk)
            u = (len(jk) - 1) * (jk.mean() - jk)
            num += np.sum(u**3) / len(jk) ** 3
            den += np.sum(u**2) / len(jk) ** 2
        a = num / den**1.5 / 6
        levels = [ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (ndtri(0.025), -ndtri(0.025))]
    low, high = np.quantile(dist, levels)
    assert (m.ratio.low, m.ratio.high) == pytest.approx((low, high), rel=1e-10)
    assert m.ratio.estimate == pytest.approx(estimate)


def test_stratified_comparison_reuses_each_tasks_draw():
    """Per task: paired_comparison's result exactly. Overall: the statistics of the summed
    per-task resampled totals (each task drawn by scipy from the same seed), so a one-task
    overall is that task's own comparison."""
    cfg = BootstrapConfig(n_resamples=1500, method="percentile", seed=4, batch=250)
    tasks = [_data(n, seed=30 + t, repeats=r) for t, (n, r) in enumerate(((40, 1), (25, 3), (1, 2)))]
    result = stratified_comparison(tasks, cfg)
    for task, got in zip(tasks, result.tasks):
        assert got == paired_comparison(*task, cfg)
    sums = []
    for item, base, cand, bok, cok in tasks:
        per_item = {}
        for i, *values in zip(item.tolist(), cand, base, cok, bok):
            per_item[i] = [a + v for a, v in zip(per_item.get(i, [0.0] * 4), values)]
        table = np.array([per_item[i] for i in sorted(per_item)]).T  # cand, base, cand_ok, base_ok x items
        if table.shape[1] == 1:  # held fixed
            sums.append(np.repeat(table, 1500, axis=1))
            continue
        sums.append(stats.bootstrap((table,), lambda x, axis: x.sum(axis), axis=-1, vectorized=True,
                                    method="percentile", n_resamples=1500, batch=250,
                                    rng=np.random.default_rng(4)).bootstrap_distribution)
    cand_s, base_s, cok_s, bok_s = np.sum(sums, axis=0)
    n_pairs = sum(len(t[0]) for t in tasks)
    for got, dist in ((result.overall.inflation.ratio_of_means, cand_s / base_s),
                      (result.overall.accuracy.delta, (cok_s - bok_s) / n_pairs)):
        assert (got.low, got.high) == pytest.approx(tuple(np.quantile(dist, [0.025, 0.975])), rel=1e-10)
    assert result.overall.inflation.n_pairs == n_pairs
    macro = [c.sum() / b.sum() for _, b, c, _, _ in tasks]
    assert result.macro.ratio.estimate == pytest.approx(np.mean(macro))
    (single,) = stratified_comparison(tasks[:1], cfg).tasks
    assert stratified_comparison(tasks[:1], cfg).overall == single


def test_same_seed_same_result_and_shared_resamples():
    item, base, cand, bok, cok = _data(50)
    cfg = BootstrapConfig(n_resamples=500)
    full = paired_comparison(item, base, cand, bok, cok, cfg)
    assert full == paired_comparison(item, base, cand, bok, cok, cfg)
    # the same draw of items serves every statistic, whichever function asks for it
    assert accuracy_comparison(item, bok, cok, cfg) == full.accuracy
    assert inflation_ratios(item, base, cand, bok, cok, cfg) == full.inflation
    assert paired_comparison(item, base, cand, bok, cok, BootstrapConfig(n_resamples=500, seed=1)) != full


def test_jackknife_is_linear_in_items():
    """200k items: scipy's own BCa jackknife would need 200k refits of size 200k."""
    rng = np.random.default_rng(0)
    n = 200_000
    base = rng.integers(100, 5000, n).astype(float)
    r = inflation_ratios(np.arange(n), base, base * 1.5 + rng.integers(0, 50, n),
                         config=BootstrapConfig(n_resamples=50))
    assert r.ratio_of_means.low < r.ratio_of_means.estimate < r.ratio_of_means.high


# ----------------------------------------------------------------------------- degenerate cases


def test_single_item_has_estimates_but_no_interval():
    r = paired_comparison([5, 5], [100.0, 300.0], [300.0, 300.0], [True, True], [True, False],
                          BootstrapConfig(n_resamples=100))
    assert r.inflation.ratio_of_means == Interval(1.5, None, None)
    assert r.accuracy.delta == Interval(-0.5, None, None)
    assert any("only 1 item" in n for n in r.inflation.notes)
    assert any("only 1 item" in n for n in r.accuracy.notes)


def test_one_item_per_task_gives_no_overall_interval():
    """Each task is held fixed, so the stratified overall cannot vary: no interval, as for one
    item (not a zero-width "4.00 [4.00, 4.00]")."""
    tasks = [([0], [100.0], [400.0], [True], [True]), ([0], [50.0], [200.0], [True], [False])]
    overall = stratified_comparison(tasks, BootstrapConfig(n_resamples=100)).overall
    assert overall.inflation.ratio_of_means == Interval(4.0, None, None)
    assert overall.accuracy.delta == Interval(-0.5, None, None)
    assert any("every task has only 1 item" in n for n in overall.inflation.notes)


def test_one_resample_gives_no_interval():
    """One resample is one value, not a distribution: no zero-width interval."""
    item, base, cand, bok, cok = _data(30)
    r = paired_comparison(item, base, cand, bok, cok, BootstrapConfig(n_resamples=1))
    assert r.inflation.ratio_of_means.low is None and r.accuracy.delta.high is None
    assert any(n.startswith("ratio_of_means: only 1 resample") for n in r.inflation.notes)
    assert macro_ratio([(item, base, cand), (item, cand, base)], BootstrapConfig(n_resamples=1)).ratio.low is None


def test_resamples_are_bounded():
    from qr_metrics.stats import MAX_RESAMPLES

    assert BootstrapConfig(n_resamples=MAX_RESAMPLES).n_resamples == MAX_RESAMPLES
    bound = rf"n_resamples=100000000000000 is invalid: must be an integer in \[1, {MAX_RESAMPLES}\]"
    with pytest.raises(ValueError, match=bound):
        BootstrapConfig(n_resamples=10**14)


def test_constant_distribution_collapses_to_the_estimate():
    base = np.array([100.0, 250.0, 40.0, 900.0, 13.0])
    r = inflation_ratios(np.arange(5), base, 2 * base, config=BootstrapConfig(n_resamples=300))
    assert r.ratio_of_means == Interval(2.0, 2.0, 2.0)
    assert r.paired_geomean_ratio.low == r.paired_geomean_ratio.high == pytest.approx(2.0)
    assert any(n.startswith("ratio_of_means: every resample gives the same value") for n in r.notes)
    a = accuracy_comparison(np.arange(5), [True, False] * 2 + [True], [True, False] * 2 + [True])
    assert a.delta == Interval(0.0, 0.0, 0.0) and a.mcnemar_p == 1.0


def test_zero_baseline_is_an_error_naming_the_cause():
    with pytest.raises(ValueError, match="baseline mean reasoning length is 0"):
        inflation_ratios([0, 1, 2], [0.0, 0.0, 0.0], [5.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"tasks\[1\]: baseline mean"):
        macro_ratio([([0, 1], [1.0, 2.0], [1.0, 2.0]), ([0, 1], [0.0, 0.0], [1.0, 2.0])])


def test_no_both_correct_pair_gives_none_with_a_reason():
    r = inflation_ratios([0, 1, 2], [10.0, 20.0, 30.0], [1.0, 2.0, 3.0],
                         [True, False, True], [False, True, False], BootstrapConfig(n_resamples=100))
    assert r.both_correct_ratio is None and r.n_both_correct_pairs == 0
    assert any("no pair is answered correctly by both runs" in n for n in r.notes)


def test_sparse_both_correct_set_drops_undefined_resamples_and_falls_back():
    item, base, cand, _, _ = _data(20)
    bok = np.zeros(20, dtype=bool)
    bok[3] = True
    r = inflation_ratios(item, base, cand, bok, bok.copy(), BootstrapConfig(n_resamples=1000))
    bc = r.both_correct_ratio
    assert bc.estimate == pytest.approx(cand[3] / base[3])
    assert bc.low == bc.high == pytest.approx(bc.estimate)  # the one item, whenever it is drawn
    assert any("undefined in" in n and "resamples" in n for n in r.notes)
    assert not any(np.isnan(v) for v in (bc.low, bc.high))


def test_bca_falls_back_to_percentile_when_a_leave_one_out_is_undefined():
    item, base, cand, _, _ = _data(30)
    both = np.zeros(30, dtype=bool)
    both[[2, 9]] = True
    base = base.copy()
    base[9] = 0.0  # leaving item 2 out leaves a zero baseline: jackknife value undefined
    r = inflation_ratios(item, base, cand, both, both.copy(), BootstrapConfig(n_resamples=1000))
    assert r.both_correct_ratio.low < r.both_correct_ratio.high
    assert any(n.startswith("both_correct_ratio: BCa undefined") for n in r.notes)


def test_zero_lengths_are_excluded_from_the_geomean_and_counted():
    r = inflation_ratios([0, 1, 2, 3], [10.0, 0.0, 20.0, 5.0], [20.0, 7.0, 0.0, 20.0],
                         config=BootstrapConfig(n_resamples=200))
    assert r.n_geomean_excluded == 2
    assert r.paired_geomean_ratio.estimate == pytest.approx(math.sqrt(2 * 4))
    assert any("2 of 4 items excluded" in n for n in r.notes)
    none = inflation_ratios([0, 1], [10.0, 0.0], [0.0, 7.0], config=BootstrapConfig(n_resamples=50))
    assert none.paired_geomean_ratio is None and none.n_geomean_excluded == 2


# ----------------------------------------------------------------------------- validation and output


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0}, "confidence"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 10.5}, "n_resamples"),
        ({"method": "basic"}, "method"),
        ({"seed": -1}, "seed"),
        ({"batch": 0}, "batch"),
    ],
)
def test_config_errors_name_parameter_value_and_range(kwargs, name):
    (value,) = kwargs.values()
    with pytest.raises(ValueError, match=rf"BootstrapConfig\.{name}={value!r} is invalid: must be"):
        BootstrapConfig(**kwargs)


def test_config_method_is_case_insensitive():
    assert BootstrapConfig(method="bca").method == "BCa"
    assert BootstrapConfig(method="Percentile").method == "percentile"


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"cand_len has shape \(2,\), expected \(3,\)"):
        inflation_ratios([0, 1, 2], [1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"base_len\[1\]=-2.0 is invalid"):
        inflation_ratios([0, 1], [1.0, -2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="given together"):
        inflation_ratios([0, 1], [1.0, 2.0], [1.0, 2.0], base_correct=[True, False])
    with pytest.raises(ValueError, match=r"cand_correct\[0\]=2 is invalid"):
        accuracy_comparison([0, 1], [1, 0], [2, 0])
    with pytest.raises(ValueError, match=r"cand_correct\[1\]=2 is invalid"):
        mcnemar_exact([True, False], [1, 2])
    with pytest.raises(ValueError, match="no pairs"):
        inflation_ratios([], [], [])


def test_results_serialise_to_json():
    item, base, cand, bok, cok = _data(10)
    r = paired_comparison(item, base, cand, bok, cok, BootstrapConfig(n_resamples=100))
    d = json.loads(json.dumps(r.as_dict()))
    assert set(d["inflation"]["ratio_of_means"]) == {"estimate", "low", "high"}
    assert d["accuracy"]["n_discordant"] == r.accuracy.n_discordant
    assert Interval(1.0, 0.5, 2.0).as_dict() == {"estimate": 1.0, "low": 0.5, "high": 2.0}


# ----------------------------------------------------------------------------- real data


def _per_sample(config):
    path = FIXTURES / f"{config}_MATH-500.csv"
    if not path.exists():
        pytest.skip(f"real-data fixture {path} is absent")
    with path.open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["idx"]))
    return (np.array([int(r["idx"]) for r in rows]),
            np.array([float(r["word_count"]) for r in rows]),
            np.array([r["is_correct"] == "True" for r in rows]))


def test_real_math500_awq_w3_inflates_and_loses_accuracy():
    idx, base_len, base_ok = _per_sample("bf16")
    cidx, cand_len, cand_ok = _per_sample("awq-w3g128")
    assert (idx == cidx).all()
    r = paired_comparison(idx, base_len, cand_len, base_ok, cand_ok)
    ratio = r.inflation.ratio_of_means
    assert ratio.estimate == pytest.approx(11326.956 / 2983.298, rel=1e-9)
    assert round(ratio.estimate, 2) == 3.80
    assert 1.0 < ratio.low < ratio.estimate < ratio.high
    assert r.accuracy.baseline.estimate == pytest.approx(0.850)
    assert r.accuracy.candidate.estimate == pytest.approx(0.526)
    assert r.accuracy.delta.estimate == pytest.approx(-0.324)
    assert r.accuracy.delta.high < 0
    assert r.accuracy.mcnemar_p < 1e-3
    assert r.inflation.notes == () and r.accuracy.notes == ()


def test_real_math500_gptq_w4_does_not_inflate():
    idx, base_len, _ = _per_sample("bf16")
    _, cand_len, _ = _per_sample("gptq-w4g128")
    ratio = inflation_ratios(idx, base_len, cand_len).ratio_of_means
    assert ratio.low < 1.0 < ratio.high


@pytest.mark.parametrize("n,n_resamples,batch",
                         [(1000, 37, 5), (61, 400, 64), (20_000, 60, None), (3, 9, 1), (50, 30, 1000)])
def test_draw_is_scipys_draw(n, n_resamples, batch):
    """qr_metrics draws the item indices itself, with the calls scipy.stats.bootstrap makes:
    every resample's column totals equal scipy's, exactly (integer columns: exact sums), for
    uneven last batches and the automatic batch alike."""
    rng = np.random.default_rng(2)
    table = rng.integers(0, 5000, (n, 3)).astype(float)
    cfg = BootstrapConfig(n_resamples=n_resamples, batch=batch, seed=11)
    ours = _draw_totals(table, cfg)
    ref = stats.bootstrap((table.T,), lambda x, axis: x.sum(axis), axis=-1, vectorized=True, method="percentile",
                          n_resamples=n_resamples, batch=_batch_size(cfg, n),
                          rng=np.random.default_rng(11)).bootstrap_distribution
    np.testing.assert_array_equal(ours, ref.T)
