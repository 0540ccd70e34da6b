"""The commands' own reports: terminal tables (analyze, compare, replay) and the gate's and
select's verdicts (plain text and Markdown). Numbers come from ``formats``."""

from __future__ import annotations

from typing import Any

from qr_metrics.pathologies import PATHOLOGIES
from qr_metrics.units import UNITS, best_unit

from .formats import interval, markdown_cell, percent, points, whole

_SHORT = {
    "loop": "loop",
    "repetition": "rep",
    "budget_exhausted": "budget",
    "exhausted_in_reasoning": "budget_in_r",
    "unclosed": "unclosed",
    "delayed_commitment": "delayed",
    "answer_found_not_given": "found_lost",
    "no_answer": "no_ans",
}


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_RESCUE = {"rescued": "rescued", "committed": "commit", "fell_back": "fallback", "tokens_saved": "saved_tok"}
"""Rescue count columns of the analysis table (shown when a side file was read)."""


def analysis_table(name: str, summary: dict[str, dict[str, Any]]) -> str:
    """One row per task: n, accuracy, mean/p90 reasoning length, pathology rates in %, and
    the rescue counts when a task has them; lengths in the best unit every task has."""
    unit = best_unit(summary.values())
    label = unit.short
    rescue = any("rescue" in s for s in summary.values())
    header = ["task", "n", "acc%", f"mean {label}", f"p90 {label}", *(f"{_SHORT[p]}%" for p in PATHOLOGIES)]
    header += list(_RESCUE.values()) if rescue else []
    rows = []
    for task, s in summary.items():
        lengths = s.get(unit.field) or {}
        rows.append(
            [task, str(s["n"]), percent(s["accuracy"]), whole(lengths.get("mean")), whole(lengths.get("p90"))]
            + [percent(s["rates"][p]) for p in PATHOLOGIES]
            + ([whole((s.get("rescue") or {}).get(k)) for k in _RESCUE] if rescue else [])
        )
    figures = format_table(
        ["task", "budget_auc", f"first_correct {label}", f"reflection {label}", "efficiency", "markers/1k words", "pass@1 sd"],
        [
            [task, _auc(s), _efficiency(s, "first_correct", 0), _efficiency(s, "reflection", 0),
             _efficiency(s, "token_efficiency", 3), _markers(s), _spread(s)]
            for task, s in summary.items()
        ],
    )
    return (
        f"run: {name}  (lengths: {unit.label}; pathologies: % of samples, '-' unknown)\n"
        + format_table(header, rows)
        + f"\n\nbudget_auc: area under accuracy-under-budget, budgets 0 to {_limits(f['budget_accuracy'] for f in summary.values())} {label}; "
        "first_correct/reflection/efficiency: means over correct samples\n"
        + figures
    )


_FIGURES = ("budget_accuracy", "efficiency", "reflection_markers", "repeats")
"""The reasoning figures analyze and compare report beside the ratios (``reasoning_figures``)."""


def _auc(figures: dict) -> str:
    return "-" if figures["budget_accuracy"] is None else f"{figures['budget_accuracy']['auc']:.3f}"


def _limits(curves) -> str:
    """The budget curves' limits (``budget_accuracy`` objects, None where unknown), ``/``-joined."""
    limits = sorted({curve["limit"] for curve in curves if curve})
    return "/".join(f"{limit:g}" for limit in limits) or "-"


def _efficiency(figures: dict, key: str, digits: int) -> str:
    return "-" if figures["efficiency"] is None else f"{figures['efficiency'][key]:.{digits}f}"


def _markers(figures: dict) -> str:
    rate = (figures["reflection_markers"] or {}).get("per_1k_words")
    return "-" if rate is None else f"{rate:.1f}"


def _spread(figures: dict) -> str:
    repeats = figures["repeats"]
    if repeats is None:
        return "-"
    return f"{percent(repeats['pass_at_1'])} ± {percent(repeats['spread'])} ({repeats['n_repeats']} repeats)"


def comparison_table(result: dict[str, Any]) -> str:
    """Per task and overall: ratios with intervals, accuracy change, budget exhaustion."""
    header = ["task", "pairs", "ratio_of_means", "both_correct", "geomean", "acc base->cand", "delta pts", "p", "budget b/c%"]
    rows = []
    for task, block in [*result["tasks"].items(), ("overall", result["overall"])]:
        acc = block["accuracy"]
        budget = block["budget_exhausted"]
        rows.append(
            [
                task,
                str(block["n_pairs"]),
                interval(block["ratio_of_means"]) + (" >=" if block["ratio_is_lower_bound"] else ""),
                interval(block["both_correct_ratio"]),
                interval(block["paired_geomean_ratio"]),
                "-" if acc is None else f"{percent(acc['baseline'])} -> {percent(acc['candidate'])}",
                "-" if acc is None else points(acc["delta"]),
                "-" if acc is None else f"{acc['mcnemar_p']:.2g}",
                f"{percent(budget['baseline'])}/{percent(budget['candidate'])}",
            ]
        )
    lines = [
        f"baseline: {result['baseline']['name']}   candidate: {result['candidate']['name']}",
        f"unit: {UNITS[result['unit']].label}   {percent(result['confidence'], None)}% {result['method']} intervals, "
        f"{result['n_resamples']} resamples, seed {result['seed']}",
        format_table(header, rows),
    ]
    figures = []
    for task, block in [*result["tasks"].items(), ("overall", result["overall"])]:
        base, cand = ({name: block[name][side] for name in _FIGURES} for side in ("baseline", "candidate"))
        figures.append(
            [
                task,
                f"{_auc(base)} -> {_auc(cand)}",
                f"{_efficiency(base, 'token_efficiency', 3)} -> {_efficiency(cand, 'token_efficiency', 3)}",
                f"{_markers(base)} -> {_markers(cand)}",
                "-" if block["reflection_marker_ratio"] is None else f"{block['reflection_marker_ratio']:.2f}",
                f"{_spread(base)} / {_spread(cand)}",
            ]
        )
    header = ["task", "budget_auc b->c", "efficiency b->c", "markers/1k words b->c", "markers ratio", "pass@1 sd b / c"]
    limits = _limits(curve for b in [*result["tasks"].values(), result["overall"]] for curve in b["budget_accuracy"].values())
    lines += ["", f"budget_auc: budgets 0 to {limits} {UNITS[result['unit']].short}; efficiency: mean over correct samples",
              format_table(header, figures)]
    macro = result["overall"].get("macro_ratio")
    if macro and len(result["tasks"]) > 1:
        lines.append(f"macro_ratio (mean of per-task ratios): {interval(macro)}")
    if any(b["ratio_is_lower_bound"] for b in [*result["tasks"].values(), result["overall"]]):
        lines.append(">= the candidate hit its generation budget: the ratio is a lower bound")
    elif result["overall"]["budget_exhausted"]["candidate"] is None:
        lines.append("budget exhaustion unknown (no finish reason or token counts): ratios may be lower bounds")
    lines.extend(f"warning: {w}" for w in result["warnings"])
    return "\n".join(lines)


# ----------------------------------------------------------------------------- gate and select


def _figure(kind: str, value: float | None) -> str:
    if value is None:
        return "unknown"
    if kind in ("ratio", "auc"):
        return f"{value:.3f}"
    return f"{percent(value)} pts" if kind == "points" else f"{percent(value)}%"


def _threshold(kind: str, value: float) -> str:
    if kind == "auc":
        return f"≥ {value:g}"
    if kind == "ratio":
        return f"≤ {value:g}"
    return f"≤ {percent(value, None)} pts" if kind == "points" else f"≤ {percent(value, None)}%"


def gate_verdict(result: dict[str, Any]) -> str:
    """The gate's Markdown verdict from ``GateResult.as_dict()``: one row per check, with
    its figure and threshold, then the warnings."""
    outcome = "PASS" if result["passed"] else "FAIL"
    lines = [
        f"### qr-eval gate: {outcome}: {markdown_cell(result['candidate'])} against {markdown_cell(result['baseline'])}",
        "",
        "| check | figure | threshold | result | detail |",
        "|---|---:|---:|---|---|",
    ]
    for check in result["checks"]:
        lines.append(
            f"| {markdown_cell(check['label'])} | {_figure(check['kind'], check['figure'])} | "
            f"{_threshold(check['kind'], check['threshold'])} | {'pass' if check['passed'] else '**fail**'} | "
            f"{markdown_cell(check['detail'])} |"
        )
    comparison = result.get("comparison")
    if comparison is not None:
        lines += [
            "",
            f"Unit: {UNITS[comparison['unit']].label}; {comparison['n_pairs']} pairs; "
            f"{percent(comparison['confidence'], None)}% {comparison['method']} bootstrap intervals "
            f"({comparison['n_resamples']} resamples, seed {comparison['seed']}).",
        ]
    lines.extend(f"- warning: {markdown_cell(w)}" for w in result["warnings"])
    return "\n".join(lines) + "\n"


def gate_summary(result: dict[str, Any]) -> str:
    """The gate's verdict in plain text from ``GateResult.as_dict()``, for a terminal:
    ``gate w4 vs fp32: PASS``, then one indented line per check."""
    lines = [f"gate {result['candidate']} vs {result['baseline']}: {'PASS' if result['passed'] else 'FAIL'}"]
    lines += [f"  {'pass' if c['passed'] else 'FAIL'}  {c['label']} {_threshold(c['kind'], c['threshold'])}: {c['detail']}"
              for c in result["checks"]]  # fmt: skip
    return "\n".join(lines)


def selection_report(selection: dict[str, Any]) -> str:
    """Markdown summary of ``Selection.as_dict()``: each candidate's cost and checks."""
    chosen = selection["selected"]
    head = f"selected {markdown_cell(chosen)}" if chosen else "no candidate passes"
    lines = [
        f"### qr-eval select: {head}",
        "",
        f"Baseline {markdown_cell(selection['baseline'])}; cost = {selection['cost']}.",
        "",
        "| candidate | bits | mean length | cost | result | failed checks |",
        "|---|---:|---:|---:|---|---|",
    ]
    for c in selection["candidates"]:
        failed = [
            f"{ch['label']} {_figure(ch['kind'], ch['figure'])} (must be {_threshold(ch['kind'], ch['threshold'])})"
            for ch in c["checks"]
            if not ch["passed"]
        ]
        result = ("**selected**" if c["name"] == chosen else "pass") if c["passed"] else "fail"
        lines.append(
            f"| {markdown_cell(c['name'])} | {c['bits']:g} | {c['mean_length']:.1f} | {c['cost']:.0f} | {result} | "
            f"{markdown_cell('; '.join(failed)) or '-'} |"
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- replay


def replay_table(result: dict[str, Any]) -> str:
    """Per task: loops flagged, traces rescued, accuracy, units saved and mean length before
    -> after the policy, and the inflation ratio before -> after when a baseline was given."""
    unit = UNITS[result["unit"]]
    baseline = result["baseline"] is not None
    header = ["task", "n", "loops", "rescued", "acc% before->after", f"saved {unit.short}", f"mean {unit.short} before->after"]
    header += ["inflation before", "inflation after"] if baseline else []
    rows = []
    for task, t in result["tasks"].items():
        acc, mean, inflation = t["accuracy"], t["mean_length"], t["inflation"] or {}
        rows.append(
            [task, str(t["n"]), str(t["loops"]), str(t["rescued"]),
             f"{percent(acc['before'])} -> {percent(acc['after'])}", str(t["saved"]),
             f"{whole(mean['before'])} -> {whole(mean['after'])}"]
            + ([interval(inflation.get("before")), interval(inflation.get("after"))] if baseline else [])
        )
    lines = [f"run: {result['run']['name']}   policy: {result['policy']}   unit: {unit.label}"]
    if baseline:
        lines[0] += (
            f"   baseline: {result['baseline']['name']} ({percent(result['confidence'], None)}% {result['method']} intervals)"
        )
    lines.append(format_table(header, rows))
    lines.append("rescued: looping traces cut at the loop onset that had an answer to commit; the others are unchanged")
    lines.extend(f"warning: {w}" for w in result["warnings"])
    return "\n".join(lines)
