"""Leaderboard plots (the ``plot`` extra): matplotlib is imported only when a plot is drawn.

Figures are built with matplotlib's object-oriented API on the Agg canvas (no pyplot, no
global backend switch), and rendered to PNG and SVG bytes; the caller writes them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, NamedTuple

from qr_metrics.extras import require

from .formats import percent


def _matplotlib(note: str = ""):
    require("matplotlib", "plot", "plots", verb="need", note=note)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def require_matplotlib(note: str = "") -> None:
    """Raise ``qr_metrics.extras.MissingExtra`` now, before anything is computed or written;
    ``note`` ends its message (a command line says how to do without plots)."""
    _matplotlib(note)


def _text(label: Any) -> str:
    """A label drawn literally: ``$`` would start mathtext."""
    return str(label).replace("\\", "\\\\").replace("$", r"\$")


def _bits_label(bits: float | None) -> str:
    return "unknown bits" if bits is None else f"{bits:g}-bit"


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


class Style(NamedTuple):
    """How one run is drawn, the same in every plot."""

    color: str
    marker: str


def run_styles(rows: list[dict[str, Any]]) -> dict[str, Style]:
    """Run name -> its style, from all the leaderboard's rows (whichever runs a plot leaves
    out): the colour by the run's place among the rows, the marker by its bits (most bits
    first; ``x`` for unknown bits)."""
    bits_order = sorted({r["bits"] for r in rows if r["bits"] is not None}, reverse=True)
    markers = {b: _MARKERS[i % len(_MARKERS)] for i, b in enumerate(bits_order)}
    return {r["run"]: Style(_PALETTE[i % len(_PALETTE)], markers.get(r["bits"], "x")) for i, r in enumerate(rows)}


def coinciding(rows: list[dict[str, Any]], where: Callable[[dict[str, Any]], Any]) -> dict[str, str]:
    """Run name -> the first run drawn at the same place (``where(row)`` equal). Such a run
    is drawn over it, hollow and larger (a point) or dashed (a line), and its legend entry
    names it."""
    first: dict[Any, str] = {}
    same: dict[str, str] = {}
    for r in rows:
        earlier = first.setdefault(where(r), r["run"])
        if earlier != r["run"]:
            same[r["run"]] = earlier
    return same


def _same_note(run: str, same: dict[str, str], what: str) -> str:
    return f", same {what} as {_text(same[run])}" if run in same else ""


def _depth(run: str, same: dict[str, str]) -> int:
    """0 for a run drawn first at its place, k for the k-th run drawn over it (``coinciding``)."""
    if run not in same:
        return 0
    return [r for r, first in same.items() if first == same[run]].index(run) + 1


def _axes():
    """A figure of the leaderboard's size on the Agg canvas, and its one axes."""
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(7.5, 5.0), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _legend(ax) -> None:
    """The legend below the axes, outside them: it covers no point and no line."""
    ax.figure.legend(fontsize=8, loc="outside lower center", ncols=2)


def _finish(ax, xlabel: str, ylabel: str, title: str, shown: bool) -> None:
    """Labels, grid, and the legend, or a note that no run has known correctness."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if shown:
        _legend(ax)
    else:
        ax.text(0.5, 0.5, "no run has known correctness", transform=ax.transAxes, ha="center")


def accuracy_vs_length(rows: list[dict[str, Any]], unit: str, confidence: float):
    """Accuracy (with its interval) against mean reasoning length, one point per run.

    Colour tells runs apart and the marker tells bits apart (``run_styles``); the legend
    names both (points of similar runs overlap, so names are not written beside the points),
    and says which runs sit on the same point.
    """
    fig, ax = _axes()
    styles = run_styles(rows)
    points = [r for r in rows if r["accuracy"] is not None]
    same = coinciding(points, lambda r: (r["mean_length"], r["accuracy"]["estimate"]))
    for r in points:
        acc, style = r["accuracy"], styles[r["run"]]
        y = 100 * acc["estimate"]
        err = None
        if acc["low"] is not None and acc["high"] is not None:
            err = [[y - 100 * acc["low"]], [100 * acc["high"] - y]]
        depth = _depth(r["run"], same)
        ax.errorbar(
            [r["mean_length"]], [y], yerr=err, fmt=style.marker, color=style.color, capsize=3, alpha=0.9,
            markersize=7 + 4 * depth, markerfacecolor="none" if depth else style.color,
            label=f"{_text(r['run'])} ({_bits_label(r['bits'])}){_same_note(r['run'], same, 'point')}",
        )
    _finish(ax, f"mean {unit} per sample", f"accuracy (%), {percent(confidence, None)}% interval",
            "Accuracy against reasoning length", bool(points))
    return fig


def inflation_by_bits(rows: list[dict[str, Any]], unit: str, confidence: float):
    """Inflation ratio with interval whiskers, runs grouped by bits (most bits first).

    Runs without a baseline (and baselines themselves) have no ratio and are left out; a
    hollow marker marks a ratio that is a lower bound (the run hit its generation budget).
    """
    fig, ax = _axes()
    styles = run_styles(rows)
    shown = [r for r in rows if r["ratio_of_means"] is not None]
    groups: dict[float | None, list[dict[str, Any]]] = {}
    for r in sorted(shown, key=lambda r: (r["bits"] is None, -(r["bits"] or 0))):
        groups.setdefault(r["bits"], []).append(r)
    x, ticks, names = 0.0, [], []
    for bits, members in groups.items():
        start = x
        for r in members:
            ratio = r["ratio_of_means"]
            err = None
            if ratio["low"] is not None and ratio["high"] is not None:
                err = [[ratio["estimate"] - ratio["low"]], [ratio["high"] - ratio["estimate"]]]
            style = styles[r["run"]]
            ax.errorbar(
                [x], [ratio["estimate"]], yerr=err, fmt=style.marker, color=style.color, capsize=4, markersize=7,
                markerfacecolor="none" if r["ratio_is_lower_bound"] else style.color,
            )
            ticks.append(x)
            names.append(_text(r["run"]))
            x += 1.0
        ax.axvspan(start - 0.45, x - 0.55, color="#7f7f7f", alpha=0.08)
        ax.text((start + x - 1) / 2, 1.0, _bits_label(bits), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=9)
        x += 0.6
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="baseline (1.0)")
    if any(r["ratio_is_lower_bound"] for r in shown):
        ax.plot([], [], "o", color="black", markerfacecolor="none", label="hollow: a lower bound (budget hit)")
    _legend(ax)
    ax.set_xticks(ticks, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"inflation ratio (ratio of mean {unit}), {percent(confidence, None)}% interval")
    ax.set_title("Reasoning-length inflation against each run's baseline, by bits", pad=18)
    ax.grid(axis="y", alpha=0.3)
    if not shown:
        ax.text(0.5, 0.5, "no run has a baseline", transform=ax.transAxes, ha="center")
    return fig


def budget_accuracy(rows: list[dict[str, Any]], unit: str):
    """Accuracy under a thinking budget (traces longer than the budget count as wrong), one
    line per run in its ``run_styles`` colour and marker, its area under the curve in the
    legend, which says which runs draw the same curve."""
    fig, ax = _axes()
    styles = run_styles(rows)
    shown = [r for r in rows if r["budget_curve"] is not None]
    same = coinciding(shown, lambda r: (tuple(r["budget_curve"]["budgets"]), tuple(r["budget_curve"]["accuracy"])))
    for r in shown:
        curve, style, depth = r["budget_curve"], styles[r["run"]], _depth(r["run"], same)
        ax.step(
            curve["budgets"], [100 * a for a in curve["accuracy"]], where="post", color=style.color,
            marker=style.marker, markevery=0.1, markersize=5 + 3 * depth, linestyle="--" if depth else "-",
            markerfacecolor="none" if depth else style.color,
            label=f"{_text(r['run'])} (AUC {r['budget_auc']:.3f}){_same_note(r['run'], same, 'curve')}",
        )
    _finish(ax, f"thinking budget ({unit})", "accuracy (%) within the budget",
            "Accuracy under a thinking budget", bool(shown))
    return fig


def render(fig) -> tuple[bytes, bytes]:
    """PNG and SVG bytes of a figure, without timestamps or software metadata."""
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", metadata={"Software": None})
    fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()


def leaderboard_plots(rows: list[dict[str, Any]], unit: str, confidence: float) -> dict[str, tuple[bytes, bytes]]:
    """``{plot name: (png, svg)}`` from the leaderboard's overall rows; ``unit``: what the
    lengths count (a unit's label, e.g. ``reasoning tokens``)."""
    return {
        "accuracy_vs_length": render(accuracy_vs_length(rows, unit, confidence)),
        "inflation_by_bits": render(inflation_by_bits(rows, unit, confidence)),
        "budget_accuracy": render(budget_accuracy(rows, unit)),
    }
