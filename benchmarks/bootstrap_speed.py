"""Time a whole paired comparison against lm-eval's own bootstrap, in one run, on one core.

    python benchmarks/bootstrap_speed.py [--items 100000] [--resamples 10000] [--lm-eval-resamples 100]

Measures, on the same synthetic data (one pair per item) and resample count:
  1. scipy's draw alone: ``scipy.stats.bootstrap`` with a trivial statistic, i.e. the cost of
     drawing and gathering the item indices that any statistic computed through it pays;
  2. the same draw without scipy's gather: the ``rng.integers`` calls that
     ``qr_metrics.stats`` makes itself (the same indices);
  3. the least that counting each resample's items can cost (extrapolated), so that the
     floor of the whole bootstrap (2 + 3) is printed;
  4. ``qr_metrics.stats.paired_comparison``: ratio_of_means, both_correct_ratio,
     paired_geomean_ratio, both accuracies and the accuracy delta, with BCa intervals;
  5. ``qr_metrics.stats.stratified_comparison`` (what ``qr-eval compare`` runs) on the same
     pairs split into ``--tasks`` tasks: one draw per task, the overall and the macro ratio
     from the tasks' draws; beside it the same call with the totals drawn through
     ``scipy.stats.bootstrap`` as qr_metrics did before (results compared for equality),
     what compare did before that (each task, then the overall and the macro ratio drawn
     again), and a one-task run against its task's own comparison;
  6. ``lm_eval.api.metrics.bootstrap_stderr(mean, xs, iters)`` for ONE statistic (the mean
     length), single-process (``DISABLE_MULTIPROC=1``; its default pool would use every
     core). It is a pure-Python loop, so it is timed on ``--lm-eval-resamples`` resamples
     and extrapolated linearly to ``--resamples`` (said so in the output).
Not run by CI.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: set before numpy loads its BLAS
os.environ["DISABLE_MULTIPROC"] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import qr_metrics.stats as qr_stats  # noqa: E402
from qr_metrics.stats import (  # noqa: E402
    BootstrapConfig,
    _batch_size,
    _draw_items,
    macro_ratio,
    paired_comparison,
    stratified_comparison,
)


def synthetic(n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = np.round(rng.lognormal(7.5, 0.8, n_items))
    cand = np.round(base * rng.lognormal(0.3, 0.5, n_items))
    base_ok = rng.random(n_items) < 0.85
    cand_ok = np.where(rng.random(n_items) < 0.8, base_ok, ~base_ok)
    return np.arange(n_items), base, cand, base_ok, cand_ok


_FLOOR_ROWS = 50


def counting_floor(n_items: int, n_resamples: int, n_columns: int = 8) -> float:
    """Seconds that turning drawn indices into per-resample column totals takes at the least:
    one ``bincount`` per resample (one row's counts stay in cache, a batch's do not) and the
    product of counts with an items x columns table, timed on a few resamples."""
    rng = np.random.default_rng(1)
    rows = rng.integers(0, n_items, (_FLOOR_ROWS, n_items)).astype(np.intp)
    counts = rng.integers(0, 3, (_FLOOR_ROWS, n_items)).astype(np.float64)
    table = rng.random((n_items, n_columns))
    t0 = time.perf_counter()
    for row in rows:
        np.bincount(row, minlength=n_items)
    counts @ table
    return (time.perf_counter() - t0) * n_resamples / _FLOOR_ROWS


def totals_through_scipy(table: np.ndarray, config: BootstrapConfig) -> np.ndarray:
    """The previous ``qr_metrics.stats._draw_totals``: the same totals, with the indices drawn
    and gathered inside ``scipy.stats.bootstrap``, offset in place and counted by one bincount
    per batch."""
    n = table.shape[0]
    blocks = []

    def statistic(index_block, axis=-1):
        b = index_block.shape[0]
        index_block += np.arange(0, b * n, n, dtype=index_block.dtype)[:, None]
        counts = np.bincount(index_block.reshape(-1), minlength=b * n).reshape(b, n)
        blocks.append(counts.astype(np.float64) @ table)
        return blocks[-1][:, 0]

    stats.bootstrap((np.arange(n, dtype=np.int32),), statistic, n_resamples=config.n_resamples,
                    batch=_batch_size(config, n), vectorized=True, axis=-1, method="percentile",
                    rng=np.random.default_rng(config.seed))
    return np.concatenate(blocks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=4, help="tasks the pairs are split into for compare")
    parser.add_argument("--lm-eval-resamples", type=int, default=100,
                        help="resamples actually run through lm-eval (<= 1000), extrapolated")
    args = parser.parse_args(argv)

    item, base, cand, base_ok, cand_ok = synthetic(args.items)
    config = BootstrapConfig(n_resamples=args.resamples)
    n_idx = args.items * args.resamples
    print(f"{args.items:,} item pairs x {args.resamples:,} resamples = {n_idx:,} drawn indices, one core")

    batch = _batch_size(config, args.items)
    t0 = time.perf_counter()
    stats.bootstrap((np.arange(args.items, dtype=np.int32),), lambda i, axis: i[..., 0] * 1.0, vectorized=True,
                    axis=-1, n_resamples=args.resamples, batch=batch, method="percentile",
                    rng=np.random.default_rng(0))
    t_scipy = time.perf_counter() - t0
    print(f"scipy draw + gather alone:        {t_scipy:8.2f} s  (paid by any statistic through scipy.stats.bootstrap)")

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for start in range(0, args.resamples, batch):
        _draw_items(rng, args.items, min(batch, args.resamples - start))
    t_draw = time.perf_counter() - t0
    print(f"the same draw, no gather:         {t_draw:8.2f} s  (the rng.integers calls qr_metrics makes itself)")

    t_count = counting_floor(args.items, args.resamples)
    print(f"counting items, at best:          {t_count:8.2f} s  (a cache-sized bincount per resample "
          f"and the matrix product; extrapolated from {_FLOOR_ROWS} resamples)")
    print(f"floor of the bootstrap:           {t_draw + t_count:8.2f} s  "
          f"(through scipy.stats.bootstrap: {t_scipy + t_count:.2f} s)")

    t0 = time.perf_counter()
    result = paired_comparison(item, base, cand, base_ok, cand_ok, config)
    t_ours = time.perf_counter() - t0
    print(f"qr_metrics paired_comparison:     {t_ours:8.2f} s  "
          f"(6 statistics, {config.method}; {t_ours - t_draw:.2f} s beyond the draw)")
    r, a = result.inflation.ratio_of_means, result.accuracy.delta
    print(f"  ratio_of_means {r.estimate:.4f} [{r.low:.4f}, {r.high:.4f}]  "
          f"accuracy delta {a.estimate:+.4f} [{a.low:+.4f}, {a.high:+.4f}]")

    tasks = [tuple(a[t :: args.tasks] for a in (item, base, cand, base_ok, cand_ok)) for t in range(args.tasks)]
    t0 = time.perf_counter()
    direct = stratified_comparison(tasks, config)
    t_strat = time.perf_counter() - t0
    with mock.patch.object(qr_stats, "_draw_totals", totals_through_scipy):
        t0 = time.perf_counter()
        through_scipy = stratified_comparison(tasks, config)
        t_scipy_strat = time.perf_counter() - t0
    t0 = time.perf_counter()
    for task in tasks:
        paired_comparison(*task, config)
    paired_comparison(item, base, cand, base_ok, cand_ok, config)
    macro_ratio([task[:3] for task in tasks], config)
    t_before = time.perf_counter() - t0
    print(f"compare, {args.tasks} tasks (one draw per task): {t_strat:6.2f} s  "
          f"(drawn through scipy.stats.bootstrap: {t_scipy_strat:.2f} s, x{t_scipy_strat / t_strat:.1f}, "
          f"identical results: {direct == through_scipy})")
    print(f"  before that, each task, then overall and macro drawn again: {t_before:.2f} s "
          f"(x{t_before / t_strat:.1f})")
    t0 = time.perf_counter()
    stratified_comparison([(item, base, cand, base_ok, cand_ok)], config)
    t_one = time.perf_counter() - t0
    print(f"compare, 1 task:                  {t_one:8.2f} s  (its task's own comparison: {t_ours:.2f} s)")

    from lm_eval.api.metrics import bootstrap_stderr, mean

    k = min(args.lm_eval_resamples, 1000, args.resamples)
    xs = cand.tolist()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        stderr = bootstrap_stderr(mean, xs, iters=k)
    t_k = time.perf_counter() - t0
    t_lm = t_k * args.resamples / k
    print(f"lm-eval bootstrap_stderr(mean):   {t_lm:8.2f} s  "
          f"(1 statistic; measured {t_k:.2f} s for {k} resamples, extrapolated x{args.resamples / k:g}; "
          f"stderr {stderr:.3f})")
    print(f"ratio lm-eval / qr_metrics:       {t_lm / t_ours:8.1f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
