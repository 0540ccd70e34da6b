"""The leaderboard's plots: one style per run in every plot, runs on the same point or curve
all visible and named as coinciding, legends outside the axes."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")
from matplotlib.colors import to_hex

from qr_leaderboard.render.plots import accuracy_vs_length, budget_accuracy, coinciding, inflation_by_bits, run_styles


def row(run, bits, accuracy=None, length=100.0, ratio=None, lower_bound=False, curve=(0.5, 0.8)):
    """An overall leaderboard row with what the plots read."""
    return {
        "run": run, "bits": bits, "mean_length": length, "ratio_is_lower_bound": lower_bound,
        "accuracy": None if accuracy is None else {"estimate": accuracy, "low": accuracy - 0.05, "high": accuracy + 0.05},
        "ratio_of_means": None if ratio is None else {"estimate": ratio, "low": ratio - 0.1, "high": ratio + 0.1},
        "budget_curve": {"limit": 200, "budgets": [0, 100, 200], "accuracy": [0.0, *curve]},
        "budget_auc": sum(curve) / 4,
    }


# The baseline has no ratio and "nocorrect" no accuracy: each plot leaves out other runs,
# which moved every later run to another colour when colours followed each plot's own order.
ROWS = [
    row("bf16", 16, accuracy=0.85, length=100.0, curve=(0.6, 0.85)),
    row("nocorrect", 4, length=110.0, ratio=1.1, curve=(0.0, 0.0)),
    row("w4", 4, accuracy=0.80, length=120.0, ratio=1.2, curve=(0.5, 0.8)),
    row("w3", 3, accuracy=0.50, length=380.0, ratio=3.8, lower_bound=True, curve=(0.1, 0.5)),
    row("unknown", None, accuracy=0.70, length=150.0, ratio=1.5, curve=(0.3, 0.7)),
]


def styles_drawn(fig, run_of):
    """(colour, marker, filled) of every run drawn with a marker, by ``run_of(line)``."""
    drawn = {}
    for line in fig.axes[0].get_lines():
        marker = line.get_marker()
        if marker in (None, "None", "", "_") or len(line.get_xdata()) == 0:
            continue  # error bar caps and whiskers, the baseline line, legend proxies
        facecolor = line.get_markerfacecolor()
        filled = not (isinstance(facecolor, str) and facecolor == "none")
        drawn[run_of(line)] = (to_hex(line.get_color()), marker, filled)
    return drawn


def test_run_styles_give_each_run_one_colour_and_its_bits_one_marker():
    styles = run_styles(ROWS)
    assert list(styles) == [r["run"] for r in ROWS]
    assert len({s.color for s in styles.values()}) == len(ROWS)
    assert styles["nocorrect"].marker == styles["w4"].marker != styles["bf16"].marker
    assert len({styles[n].marker for n in ("bf16", "w4", "w3", "unknown")}) == 4 and styles["unknown"].marker == "x"


def test_each_run_keeps_its_style_in_every_plot():
    styles = {name: (to_hex(s.color), s.marker) for name, s in run_styles(ROWS).items()}
    by_length = {r["mean_length"]: r["run"] for r in ROWS}
    by_ratio = {r["ratio_of_means"]["estimate"]: r["run"] for r in ROWS if r["ratio_of_means"]}
    by_curve = {100 * r["budget_curve"]["accuracy"][-1]: r["run"] for r in ROWS}
    plots = {
        "accuracy_vs_length": (accuracy_vs_length(ROWS, "words", 0.95), lambda line: by_length[line.get_xdata()[0]]),
        "inflation_by_bits": (inflation_by_bits(ROWS, "words", 0.95), lambda line: by_ratio[line.get_ydata()[0]]),
        "budget_accuracy": (budget_accuracy(ROWS, "words"), lambda line: by_curve[line.get_ydata()[-1]]),
    }
    shown = {"accuracy_vs_length": {"bf16", "w4", "w3", "unknown"}, "inflation_by_bits": {"nocorrect", "w4", "w3", "unknown"},
             "budget_accuracy": set(styles)}
    for name, (fig, run_of) in plots.items():
        drawn = styles_drawn(fig, run_of)
        assert set(drawn) == shown[name], name
        for run, (color, marker, filled) in drawn.items():
            assert (color, marker) == styles[run], (name, run)
            # hollow: only the lower bound in the inflation plot (nothing coincides here)
            assert filled == (name != "inflation_by_bits" or run != "w3"), (name, run)


def test_runs_on_the_same_point_are_all_visible_and_named():
    twin = dict(ROWS[3], run="w3-rescue")  # the same accuracy, length and curve as w3
    rows = [*ROWS, twin, dict(twin, run="w3-again")]
    assert coinciding(rows, lambda r: (r["mean_length"], r["accuracy"] and r["accuracy"]["estimate"])) == {
        "w3-rescue": "w3", "w3-again": "w3"}
    styles = run_styles(rows)
    assert styles["w3-rescue"].color != styles["w3"].color
    points = accuracy_vs_length(rows, "words", 0.95)
    labels = [t.get_text() for t in points.legends[0].get_texts()]
    assert "w3 (3-bit)" in labels and "w3-rescue (3-bit), same point as w3" in labels
    assert "w3-again (3-bit), same point as w3" in labels
    drawn = {line.get_color(): line for line in points.axes[0].get_lines() if line.get_marker() not in (None, "None", "_")}
    first, over, again = (drawn[styles[name].color] for name in ("w3", "w3-rescue", "w3-again"))
    # each later one a larger ring around the ones below it
    assert first.get_markerfacecolor() != "none" and over.get_markerfacecolor() == again.get_markerfacecolor() == "none"
    assert first.get_markersize() < over.get_markersize() < again.get_markersize()
    curves = budget_accuracy(rows, "words")
    labels = [t.get_text() for t in curves.legends[0].get_texts()]
    assert "w3-rescue (AUC 0.150), same curve as w3" in labels and "w3 (AUC 0.150)" in labels
    styles_by_color = {line.get_color(): line.get_linestyle() for line in curves.axes[0].get_lines()}
    assert styles_by_color[styles["w3"].color] == "-" and styles_by_color[styles["w3-rescue"].color] == "--"


@pytest.mark.parametrize("plot", ["accuracy_vs_length", "inflation_by_bits", "budget_accuracy"])
def test_legends_sit_outside_the_axes(plot):
    draw = {"accuracy_vs_length": lambda: accuracy_vs_length(ROWS, "words", 0.95),
            "inflation_by_bits": lambda: inflation_by_bits(ROWS, "words", 0.95),
            "budget_accuracy": lambda: budget_accuracy(ROWS, "words")}[plot]
    fig = draw()
    fig.canvas.draw()
    (legend,) = fig.legends
    assert not fig.axes[0].legend_
    box, axes = legend.get_window_extent(), fig.axes[0].get_tightbbox()
    assert box.y1 <= axes.y0 + 1, (box, axes)  # below the axes, their tick labels and axis label
    figure = fig.bbox
    assert figure.x0 <= box.x0 and box.x1 <= figure.x1 and figure.y0 <= box.y0  # and inside the figure
