"""qr_leaderboard.render.text: the terminal tables and the gate's and select's verdicts, on
small hand-made results, figure by figure."""

from __future__ import annotations

import copy
import re

from qr_metrics.pathologies import PATHOLOGIES

from qr_leaderboard.render.text import (
    analysis_table,
    comparison_table,
    format_table,
    gate_summary,
    gate_verdict,
    replay_table,
    selection_report,
)


def cells(line: str) -> list[str]:
    """A table line's cells: columns are separated by at least two spaces, cells hold one."""
    return re.split(r" {2,}", line.strip())


def test_format_table_pads_first_column_left_and_numbers_right():
    assert format_table(["task", "n"], [["math", "12"], ["gsm8k", "3"]]) == (
        "task    n\n"
        "-----  --\n"
        "math   12\n"
        "gsm8k   3"
    )


def _block(**overrides) -> dict:
    """A compare block: 4 pairs, the candidate 1.25x longer (a lower bound: it hit its budget)."""
    block = {
        "n_pairs": 4,
        "ratio_of_means": {"estimate": 1.25, "low": 1.1, "high": 1.4},
        "ratio_is_lower_bound": True,
        "both_correct_ratio": {"estimate": 1.2, "low": None, "high": None},
        "paired_geomean_ratio": None,
        "accuracy": {"baseline": 0.75, "candidate": 0.5, "mcnemar_p": 0.5,
                     "delta": {"estimate": -0.25, "low": -0.5, "high": 0.0}},
        "budget_exhausted": {"baseline": 0.0, "candidate": 0.25},
        "budget_accuracy": {"baseline": {"auc": 0.5, "limit": 100.0}, "candidate": {"auc": 0.25, "limit": 100.0}},
        "efficiency": {"baseline": {"token_efficiency": 0.0125, "first_correct": 40.0, "reflection": 10.0},
                       "candidate": None},
        "reflection_markers": {"baseline": {"per_1k_words": 2.5}, "candidate": {"per_1k_words": 5.25}},
        "repeats": {"baseline": None, "candidate": {"pass_at_1": 0.5, "spread": 0.125, "n_repeats": 2}},
        "reflection_marker_ratio": 2.1,
    }
    return {**block, **overrides}


def compare_result() -> dict:
    return {
        "baseline": {"name": "fp32"}, "candidate": {"name": "w4"}, "unit": "words",
        "confidence": 0.95, "method": "BCa", "n_resamples": 999, "seed": 0,
        "tasks": {"math": _block()},
        "overall": _block(macro_ratio={"estimate": 1.25, "low": 1.1, "high": 1.4}),
        "warnings": ["w4: 1 sample has no words count"],
    }


def test_comparison_table():
    lines = comparison_table(compare_result()).splitlines()
    assert lines[:2] == [
        "baseline: fp32   candidate: w4",
        "unit: reasoning words   95% BCa intervals, 999 resamples, seed 0",
    ]
    assert cells(lines[2]) == ["task", "pairs", "ratio_of_means", "both_correct", "geomean", "acc base->cand",
                               "delta pts", "p", "budget b/c%"]
    row = ["4", "1.25 [1.10, 1.40] >=", "1.20 [-]", "-", "75.0 -> 50.0", "-25.0 [-50.0, +0.0]", "0.5", "0.0/25.0"]
    assert [cells(line) for line in lines[4:6]] == [["math", *row], ["overall", *row]]
    assert lines[6:8] == ["", "budget_auc: budgets 0 to 100 words; efficiency: mean over correct samples"]
    assert cells(lines[8]) == ["task", "budget_auc b->c", "efficiency b->c", "markers/1k words b->c",
                               "markers ratio", "pass@1 sd b / c"]
    figures = ["0.500 -> 0.250", "0.013 -> -", "2.5 -> 5.2", "2.10", "- / 50.0 ± 12.5 (2 repeats)"]
    assert [cells(line) for line in lines[10:12]] == [["math", *figures], ["overall", *figures]]
    # one task: no macro ratio line; a lower bound is said once; then the warnings
    assert lines[12:] == [">= the candidate hit its generation budget: the ratio is a lower bound",
                          "warning: w4: 1 sample has no words count"]


def test_comparison_table_macro_ratio_and_unknown_budget():
    result = compare_result()
    unknown = {"ratio_is_lower_bound": False, "budget_exhausted": {"baseline": None, "candidate": None},
               "accuracy": None}
    result["tasks"] = {"math": _block(**unknown), "gsm8k": _block(**unknown)}
    result["overall"] = _block(**unknown, macro_ratio={"estimate": 1.5, "low": None, "high": None})
    result["warnings"] = []
    lines = comparison_table(result).splitlines()
    assert cells(lines[4]) == ["math", "4", "1.25 [1.10, 1.40]", "1.20 [-]", "-", "-", "-", "-", "-/-"]
    assert lines[-2:] == ["macro_ratio (mean of per-task ratios): 1.50 [-]",
                          "budget exhaustion unknown (no finish reason or token counts): ratios may be lower bounds"]


def test_analysis_table():
    rates = {name: None for name in PATHOLOGIES} | {"loop": 0.125, "unclosed": 0.0625}
    summary = {
        "math": {
            "n": 16, "accuracy": 0.5625, "words": {"mean": 812.4, "p90": 1500.5}, "rates": rates,
            "budget_accuracy": {"auc": 0.4321, "limit": 2048.0},
            "efficiency": {"first_correct": 300.2, "reflection": 120.8, "token_efficiency": 0.00125},
            "reflection_markers": {"per_1k_words": 3.25}, "repeats": None,
            "rescue": {"rescued": 2, "committed": 1, "fell_back": 1, "tokens_saved": 640},
        },
    }
    lines = analysis_table("w4|g128", summary).splitlines()
    assert lines[0] == "run: w4|g128  (lengths: reasoning words; pathologies: % of samples, '-' unknown)"
    assert cells(lines[1]) == ["task", "n", "acc%", "mean words", "p90 words", "loop%", "rep%", "budget%",
                               "budget_in_r%", "unclosed%", "delayed%", "found_lost%", "no_ans%",
                               "rescued", "commit", "fallback", "saved_tok"]
    assert cells(lines[3]) == ["math", "16", "56.2", "812", "1500", "12.5", "-", "-", "-", "6.2", "-", "-", "-",
                               "2", "1", "1", "640"]
    assert lines[4:6] == ["", "budget_auc: area under accuracy-under-budget, budgets 0 to 2048 words; "
                          "first_correct/reflection/efficiency: means over correct samples"]
    assert cells(lines[6]) == ["task", "budget_auc", "first_correct words", "reflection words", "efficiency",
                               "markers/1k words", "pass@1 sd"]
    assert cells(lines[8]) == ["math", "0.432", "300", "121", "0.001", "3.2", "-"]


def _gate_result() -> dict:
    return {
        "candidate": "w4_g128", "baseline": "fp32", "passed": False,
        "checks": [
            {"label": "inflation (ratio_of_means), 95% upper bound", "kind": "ratio", "figure": 1.4,
             "threshold": 1.3, "passed": False, "detail": "ratio_of_means 1.250 [1.100, 1.400]"},
            {"label": "accuracy drop, 95% upper bound", "kind": "points", "figure": 0.0512,
             "threshold": 0.05, "passed": False, "detail": "delta -2.5 pts"},
            {"label": "loop rate", "kind": "rate", "figure": None, "threshold": 0.025, "passed": False,
             "detail": "loop rate unknown"},
            {"label": "budget AUC", "kind": "auc", "figure": 0.61234, "threshold": 0.5, "passed": True,
             "detail": "budget_auc 0.612"},
        ],
        "comparison": {"unit": "tokens", "n_pairs": 40, "confidence": 0.9, "method": "percentile",
                       "n_resamples": 999, "seed": 3},
        "warnings": ["a | b"],
    }


def test_gate_verdict_markdown():
    assert gate_verdict(_gate_result()) == (
        "### qr-eval gate: FAIL: w4\\_g128 against fp32\n"
        "\n"
        "| check | figure | threshold | result | detail |\n"
        "|---|---:|---:|---|---|\n"
        "| inflation (ratio\\_of\\_means), 95% upper bound | 1.400 | ≤ 1.3 | **fail** | ratio\\_of\\_means 1.250 \\[1.100, 1.400\\] |\n"
        "| accuracy drop, 95% upper bound | 5.1 pts | ≤ 5 pts | **fail** | delta -2.5 pts |\n"
        "| loop rate | unknown | ≤ 2.5% | **fail** | loop rate unknown |\n"
        "| budget AUC | 0.612 | ≥ 0.5 | pass | budget\\_auc 0.612 |\n"
        "\n"
        "Unit: reasoning tokens; 40 pairs; 90% percentile bootstrap intervals (999 resamples, seed 3).\n"
        "- warning: a \\| b\n"
    )
    result = copy.deepcopy(_gate_result())
    result.update(passed=True, comparison=None, warnings=[], checks=result["checks"][3:])
    assert gate_verdict(result).splitlines()[0] == "### qr-eval gate: PASS: w4\\_g128 against fp32"
    assert gate_verdict(result).splitlines()[-1] == "| budget AUC | 0.612 | ≥ 0.5 | pass | budget\\_auc 0.612 |"


def test_gate_summary_plain_text():
    assert gate_summary(_gate_result()) == (
        "gate w4_g128 vs fp32: FAIL\n"
        "  FAIL  inflation (ratio_of_means), 95% upper bound ≤ 1.3: ratio_of_means 1.250 [1.100, 1.400]\n"
        "  FAIL  accuracy drop, 95% upper bound ≤ 5 pts: delta -2.5 pts\n"
        "  FAIL  loop rate ≤ 2.5%: loop rate unknown\n"
        "  pass  budget AUC ≥ 0.5: budget_auc 0.612"
    )


def test_selection_report():
    checks = _gate_result()["checks"]
    selection = {
        "selected": "w4", "baseline": "fp32", "cost": "bits x mean reasoning tokens per sample",
        "candidates": [
            {"name": "w3", "bits": 3.0, "mean_length": 1000.04, "cost": 3000.12, "passed": False, "checks": checks[:2]},
            {"name": "w4", "bits": 4.0, "mean_length": 800.0, "cost": 3200.0, "passed": True, "checks": checks[3:]},
            {"name": "w4.5", "bits": 4.5, "mean_length": 790.0, "cost": 3555.0, "passed": True, "checks": []},
        ],
    }
    assert selection_report(selection) == (
        "### qr-eval select: selected w4\n"
        "\n"
        "Baseline fp32; cost = bits x mean reasoning tokens per sample.\n"
        "\n"
        "| candidate | bits | mean length | cost | result | failed checks |\n"
        "|---|---:|---:|---:|---|---|\n"
        "| w3 | 3 | 1000.0 | 3000 | fail | inflation (ratio\\_of\\_means), 95% upper bound 1.400 (must be ≤ 1.3); "
        "accuracy drop, 95% upper bound 5.1 pts (must be ≤ 5 pts) |\n"
        "| w4 | 4 | 800.0 | 3200 | **selected** | - |\n"
        "| w4.5 | 4.5 | 790.0 | 3555 | pass | - |\n"
    )
    selection.update(selected=None)
    assert selection_report(selection).splitlines()[0] == "### qr-eval select: no candidate passes"


def test_replay_table():
    result = {
        "run": {"name": "w3"}, "policy": "commit", "unit": "words", "confidence": 0.95, "method": "BCa",
        "baseline": {"name": "fp32"}, "warnings": ["one"],
        "tasks": {"math": {
            "n": 100, "loops": 8, "rescued": 3, "saved": 11830,
            "accuracy": {"before": 0.61, "after": 0.625},
            "mean_length": {"before": 5115.7, "after": 4997.4},
            "inflation": {"before": {"estimate": 1.487, "low": 1.149, "high": 1.875},
                          "after": {"estimate": 1.453, "low": None, "high": None}},
        }},
    }
    lines = replay_table(result).splitlines()
    assert lines[0] == "run: w3   policy: commit   unit: reasoning words   baseline: fp32 (95% BCa intervals)"
    assert cells(lines[1]) == ["task", "n", "loops", "rescued", "acc% before->after", "saved words",
                               "mean words before->after", "inflation before", "inflation after"]
    assert cells(lines[3]) == ["math", "100", "8", "3", "61.0 -> 62.5", "11830", "5116 -> 4997",
                               "1.49 [1.15, 1.88]", "1.45 [-]"]
    assert lines[4:] == ["rescued: looping traces cut at the loop onset that had an answer to commit; "
                         "the others are unchanged", "warning: one"]
    result.update(baseline=None, warnings=[])
    lines = replay_table(result).splitlines()
    assert lines[0] == "run: w3   policy: commit   unit: reasoning words"
    assert cells(lines[3]) == ["math", "100", "8", "3", "61.0 -> 62.5", "11830", "5116 -> 4997"]
