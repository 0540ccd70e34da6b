"""Leaderboard plots (the ``plot`` extra): matplotlib is imported only when a plot is drawn.

Figures are built with matplotlib's object-oriented API on the Agg canvas (no pyplot, no
global backend switch), and rendered to PNG and SVG bytes; the caller writes them.
"""

from __future__ import annotations

import io
from typing import Any

PLOTS = ("accuracy_vs_length", "inflation_by_bits", "budget_accuracy")
"""Plot names; each is written as ``NAME.png`` and ``NAME.svg``."""


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtra('plots need matplotlib: pip install "qr-eval[plot]" (or pass --no-plots)') from None
    return Figure, FigureCanvasAgg


def require_matplotlib() -> None:
    """Raise ``MissingExtra`` now, before anything is computed or written."""
    _matplotlib()


def _text(label: Any) -> str:
    """A label drawn literally: ``$`` would start mathtext."""
    return str(label).replace("\\", "\\\\").replace("$", r"\$")


def _bits_label(bits: float | None) -> str:
    return "unknown bits" if bits is None else f"{bits:g}-bit"


def _colors(bits_values: list[float | None]) -> dict[float | None, Any]:
    ordered = sorted({b for b in bits_values if b is not None}, reverse=True)
    palette = _palette()
    colors: dict[float | None, Any] = {b: palette[i % len(palette)] for i, b in enumerate(ordered)}
    colors[None] = "#7f7f7f"
    return colors


def _axes():
    """A figure of the leaderboard's size on the Agg canvas, and its one axes."""
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(7.5, 5.0), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _finish(ax, xlabel: str, ylabel: str, title: str, shown: bool, legend_loc: str) -> None:
    """Labels, grid, and the legend, or a note that no run has known correctness."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if shown:
        ax.legend(fontsize=8, loc=legend_loc)
    else:
        ax.text(0.5, 0.5, "no run has known correctness", transform=ax.transAxes, ha="center")


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def accuracy_vs_length(rows: list[dict[str, Any]], unit: str, confidence: float):
    """Accuracy (with its interval) against mean reasoning length, one point per run.

    Colour tells runs apart and the marker tells bits apart; the legend names both (points
    of similar runs overlap, so names are not written beside the points).
    """
    fig, ax = _axes()
    points = [r for r in rows if r["accuracy"] is not None]
    bits_order = sorted({r["bits"] for r in rows if r["bits"] is not None}, reverse=True)
    markers = {b: _MARKERS[i % len(_MARKERS)] for i, b in enumerate(bits_order)}
    markers[None] = "x"
    palette = _palette()
    for i, r in enumerate(points):
        acc = r["accuracy"]
        y = 100 * acc["estimate"]
        err = None
        if acc["low"] is not None and acc["high"] is not None:
            err = [[y - 100 * acc["low"]], [100 * acc["high"] - y]]
        ax.errorbar(
            [r["mean_length"]], [y], yerr=err, fmt=markers[r["bits"]], color=palette[i % len(palette)],
            capsize=3, markersize=7, alpha=0.9, label=f"{_text(r['run'])} ({_bits_label(r['bits'])})",
        )
    _finish(ax, f"mean reasoning {unit} per sample", f"accuracy (%), {100 * confidence:g}% interval",
            "Accuracy against reasoning length", bool(points), "best")
    return fig


def _palette() -> list[str]:
    return ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


def inflation_by_bits(rows: list[dict[str, Any]], unit: str, confidence: float):
    """Inflation ratio with interval whiskers, runs grouped by bits (most bits first).

    Runs without a baseline (and baselines themselves) have no ratio and are left out; a
    triangle marks a ratio that is a lower bound (the run hit its generation budget).
    """
    fig, ax = _axes()
    shown = [r for r in rows if r["ratio_of_means"] is not None]
    groups: dict[float | None, list[dict[str, Any]]] = {}
    for r in sorted(shown, key=lambda r: (r["bits"] is None, -(r["bits"] or 0))):
        groups.setdefault(r["bits"], []).append(r)
    colors = _colors([r["bits"] for r in rows])
    x, ticks, names = 0.0, [], []
    for bits, members in groups.items():
        start = x
        for r in members:
            ratio = r["ratio_of_means"]
            err = None
            if ratio["low"] is not None and ratio["high"] is not None:
                err = [[ratio["estimate"] - ratio["low"]], [ratio["high"] - ratio["estimate"]]]
            ax.errorbar(
                [x], [ratio["estimate"]], yerr=err, fmt="^" if r["ratio_is_lower_bound"] else "o",
                color=colors[bits], capsize=4, markersize=7,
            )
            ticks.append(x)
            names.append(_text(r["run"]))
            x += 1.0
        ax.axvspan(start - 0.45, x - 0.55, color=colors[bits], alpha=0.08)
        ax.text((start + x - 1) / 2, 1.0, _bits_label(bits), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=9)
        x += 0.6
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="baseline (1.0)")
    if any(r["ratio_is_lower_bound"] for r in shown):
        ax.plot([], [], "^", color="black", label="lower bound (budget hit)")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_xticks(ticks, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"inflation ratio (ratio of mean {unit}), {100 * confidence:g}% interval")
    ax.set_title("Reasoning-length inflation against each run's baseline, by bits", pad=18)
    ax.grid(axis="y", alpha=0.3)
    if not shown:
        ax.text(0.5, 0.5, "no run has a baseline", transform=ax.transAxes, ha="center")
    return fig


def budget_accuracy(rows: list[dict[str, Any]], unit: str):
    """Accuracy under a thinking budget (traces longer than the budget count as wrong), one
    line per run, its area under the curve in the legend."""
    fig, ax = _axes()
    shown = [r for r in rows if r["budget_curve"] is not None]
    palette = _palette()
    for i, r in enumerate(shown):
        curve = r["budget_curve"]
        ax.step(
            curve["budgets"], [100 * a for a in curve["accuracy"]], where="post", color=palette[i % len(palette)],
            label=f"{_text(r['run'])} (AUC {r['budget_auc']:.3f})",
        )
    _finish(ax, f"thinking budget (reasoning {unit})", "accuracy (%) within the budget",
            "Accuracy under a thinking budget", bool(shown), "lower right")
    return fig


def render(fig) -> tuple[bytes, bytes]:
    """PNG and SVG bytes of a figure, without timestamps or software metadata."""
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", metadata={"Software": None})
    fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()


def leaderboard_plots(rows: list[dict[str, Any]], unit: str, confidence: float) -> dict[str, tuple[bytes, bytes]]:
    """``{plot name: (png, svg)}`` from the leaderboard's overall rows."""
    return {
        "accuracy_vs_length": render(accuracy_vs_length(rows, unit, confidence)),
        "inflation_by_bits": render(inflation_by_bits(rows, unit, confidence)),
        "budget_accuracy": render(budget_accuracy(rows, unit)),
    }
