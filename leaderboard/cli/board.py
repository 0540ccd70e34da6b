"""The leaderboard verb: Markdown, CSV, JSON, HTML and plots of several runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from qr_metrics.runs import InputError

from .common import add_statistics_options, options, read_runs, verb


def add_leaderboard(verbs) -> None:
    p = verb(
        verbs,
        "leaderboard",
        _leaderboard,
        help="Markdown, CSV, JSON and HTML tables (and plots) of several runs against their baselines",
        epilog="""\
            One row per run (model, precision, bits), per task and overall. Each row's baseline
            is the full-precision run (bf16/fp16/fp32) of the same model unless --baseline says
            otherwise; rows without one show absolute figures only.
            example:
              qr-eval leaderboard runs/bf16 runs/awq-w4 runs/gptq-w3 --out board \\
                  --title "R1-Distill-1.5B on MATH-500" --speedup awq-w4=2.1
            """,
    )
    p.add_argument("runs", metavar="RUN", nargs="+")
    p.add_argument("--out", metavar="DIR", required=True, help="directory to write the files into")
    p.add_argument("--baseline", metavar="RUN_OR_RULE",
                   help="'auto' (default), 'precision=LABEL', or a run's name or path used as every row's baseline")
    p.add_argument("--title", help="title of the Markdown and HTML pages")
    p.add_argument("--speedup", action="append", metavar="PRECISION=X",
                   help="per-token speedup of runs with this precision label (repeatable; overrides run.json)")
    p.add_argument("--no-plots", action="store_true", help="write no plots (no matplotlib needed)")
    add_statistics_options(p)


def _speedups(values: list[str] | None) -> dict[str, float]:
    speedups: dict[str, float] = {}
    for text in values or []:
        label, sep, number = text.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not sep or not label or not value > 0 or value == float("inf"):
            raise InputError("--speedup", f"expected PRECISION=X with X a number > 0, got {text!r}")
        speedups[label] = value
    return speedups


def _leaderboard(args: argparse.Namespace) -> int:
    from ..board import build_leaderboard
    from ..write import write_leaderboard

    speedups = _speedups(args.speedup)
    if not args.no_plots:
        from ..render.plots import require_matplotlib

        require_matplotlib(note=" (or pass --no-plots)")  # before any work: a missing extra is one line, nothing written
    # a baseline given by path is read as the rows are (--timestamp, --label); a run's name wins
    by_path = args.baseline is not None and Path(args.baseline).exists()
    runs = read_runs(args, [*args.runs, *([args.baseline] if by_path else [])])
    rows = runs[: len(args.runs)]
    baseline = runs[-1] if by_path and args.baseline not in {r.name for r in rows} else args.baseline
    board = build_leaderboard(rows, baseline, options(args), speedups=speedups, title=args.title)
    for path in write_leaderboard(board, args.out, plots=not args.no_plots):
        print(path)
    return 0
