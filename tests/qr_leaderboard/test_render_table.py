"""qr_leaderboard.render.table: the one view Markdown and HTML lay out, on a hand-made
two-run leaderboard."""

from __future__ import annotations

from qr_metrics.pathologies import PATHOLOGIES

from qr_leaderboard.render.html import to_html
from qr_leaderboard.render.markdown import to_markdown
from qr_leaderboard.render.table import board_table


def _row(run: str, role: str, **figures) -> dict:
    row = {
        "run": run, "model": "m", "precision": run, "bits": 16, "task": "overall", "role": role, "n": 8,
        "accuracy": {"estimate": 0.75, "low": 0.5, "high": 1.0}, "mean_length": 100.4,
        "ratio_of_means": None, "ratio_is_lower_bound": None, "both_correct_ratio": None,
        "rates": {name: None for name in PATHOLOGIES} | {"loop": 0.125},
        "rates_known": dict.fromkeys(PATHOLOGIES, 0) | {"loop": 8}, "budget_auc": 0.5,
        "markers_per_1k_words": None, "speedup_per_token": None, "speedup_source": None,
        "speedup_withheld": None, "effective_speedup": None, "notes": [],
    }
    return row | figures


def board() -> dict:
    w4 = _row("w4|x", "compared", bits=4, mean_length=125.0, ratio_is_lower_bound=True,
              ratio_of_means={"estimate": 1.25, "low": 1.1, "high": 1.4},
              both_correct_ratio={"estimate": 1.2, "low": None, "high": None}, notes=["budget hit"],
              speedup_per_token={"estimate": 2.5, "low": None, "high": None}, speedup_source="given: --speedup",
              effective_speedup={"estimate": 2.0, "low": 1.8, "high": 2.3})
    rows = [_row("fp32", "baseline", effective_speedup={"estimate": 1.0, "low": 1.0, "high": 1.0}), w4]
    runs = [{"name": r["run"], "role": r["role"], "note": None, **{k: r[k] for k in
             ("speedup_per_token", "speedup_source", "speedup_withheld")}} for r in rows]
    return {"title": "T", "unit": "words", "confidence": 0.95, "method": "BCa", "n_resamples": 99, "seed": 0,
            "baseline_rule": "auto", "tasks": ["math"], "runs": runs, "rows": rows, "warnings": []}


def test_view_columns_cells_and_notes():
    view = board_table(board())
    assert [c.header for c in view.columns] == [
        "Run", "Model", "Precision", "Bits", "n", "Accuracy %", "Mean reasoning words", "Inflation ×",
        "Both-correct ×", "Loop %", "Budget hit %", "Unclosed %", "Delayed commit %", "Budget AUC",
        "Markers /1k words", "Effective speedup ×"]
    assert [c.numeric for c in view.columns[:4]] == [False, False, False, True]
    (scope,) = view.scopes
    assert (scope.key, scope.heading, scope.intro) == ("overall", None, "Task: math")
    base, w4 = scope.rows
    assert [c.text for c in base.cells] == ["fp32", "m", "fp32", "16", "8", "75.0 [50.0, 100.0]", "100", "baseline",
                                            "baseline", "12.5", "-", "-", "-", "0.500", "-", "1.00"]
    assert [c.text for c in w4.cells][3:9] == ["4", "8", "75.0 [50.0, 100.0]", "125", "≥ 1.25 [1.10, 1.40]", "1.20 [-]"]
    assert w4.cells[-1].text == "2.00 [1.80, 2.30]"
    assert [c.sort for c in w4.cells][5:9] == [0.75, 125.0, 1.25, 1.2]
    assert w4.cells[7].note == "budget hit" and base.cells[7].note is None
    assert w4.cells[-1].note == "per-token speedup 2.50, given: --speedup"
    assert view.legend[-2:] == ("w4|x: per-token speedup 2.50, given: --speedup.",
                                "-: unknown (pathology flags need the completion text; accuracy needs correctness).")


def test_markdown_and_html_lay_out_the_same_cells():
    markdown = to_markdown(board())
    assert "| w4\\|x | m | w4\\|x | 4 | 8 | 75.0 [50.0, 100.0] | 125 | ≥ 1.25 [1.10, 1.40] | 1.20 [-] | 12.5 |" in markdown
    assert markdown.startswith("## T\n\nTask: math\n\n| Run | Model |")
    page = to_html(board())
    assert '<td class="num" data-value="1.25" title="budget hit">≥\N{NO-BREAK SPACE}1.25 [1.10,\N{NO-BREAK SPACE}1.40]</td>' in page
    assert '<tr class="compared" data-run="w4|x">' in page
