"""The one view of the leaderboard tables that Markdown and HTML both lay out: which columns,
what each cell says and sorts by, which tables (overall, then per task) and the notes under
them. The layouts only escape and arrange it, so the two files cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from qr_metrics.units import UNITS

from ..schema import OVERALL, REASONING_FIELDS
from .formats import interval, percent, percent_interval, whole

SHOWN_PATHOLOGIES = ("loop", "budget_exhausted", "unclosed", "delayed_commitment")
"""Pathology rates shown in the Markdown and HTML tables (CSV and JSON hold all of them)."""

_PATHOLOGY_HEADERS = {"loop": "Loop %", "budget_exhausted": "Budget hit %", "unclosed": "Unclosed %",
                      "delayed_commitment": "Delayed commit %"}
_TEXT_KEYS = ("run", "model", "precision")
_RATIOS = ("ratio_of_means", "both_correct_ratio")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    numeric: bool
    """Numbers are right-aligned and need no escaping; labels (run, model, precision) do."""


@dataclass(frozen=True)
class Cell:
    text: str
    """Plain text: the layout escapes it."""
    sort: Any
    """The value the column sorts by (None: unknown, sorted last)."""
    note: str | None = None
    """Where the figure comes from (an HTML cell's title)."""


@dataclass(frozen=True)
class Row:
    run: str
    role: str
    """``baseline``, ``compared`` or ``no_baseline``."""
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Scope:
    key: str
    """A task, or ``OVERALL``."""
    heading: str | None
    """A section heading when there are several tasks."""
    intro: str | None
    """``Task: NAME`` above the only table when there is one task."""
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class BoardTable:
    title: str
    columns: tuple[Column, ...]
    scopes: tuple[Scope, ...]
    legend: tuple[str, ...]


def board_table(board: dict[str, Any], escape: Callable[[str], str] = str) -> BoardTable:
    """The view of a leaderboard object. ``escape`` is applied to the run names and labels
    quoted inside the legend (it is markup); cells, headers and notes stay plain text."""
    columns = _columns(board)
    scopes = []
    for key, rows in _scopes(board):
        several = len(board["tasks"]) > 1
        scopes.append(Scope(
            key=key,
            heading=("Overall" if key == OVERALL else key) if several else None,
            intro=f"Task: {board['tasks'][0]}" if not several and key == OVERALL else None,
            rows=tuple(Row(row["run"], row["role"], tuple(_cell(row, c.key) for c in columns)) for row in rows),
        ))
    return BoardTable(board["title"], tuple(columns), tuple(scopes), tuple(_legend(board, escape)))


def _shows_speedup(board: dict[str, Any]) -> bool:
    """A per-token speedup is known, or a measured one is withheld (its cell says ``-``)."""
    return any(r["speedup_per_token"] is not None or r.get("speedup_withheld") for r in board["rows"])


def speedup_text(info: dict[str, Any], escape: Callable[[str], str] = str) -> str | None:
    """What a row's or a run's per-token speedup is and where it comes from (under the tables,
    and the effective speedup cell's note); None when it has none. ``escape`` is applied to
    the source and the reason (they hold run names and labels)."""
    value = info["speedup_per_token"]
    if value is not None:
        number = f"{value['estimate']:.2f}" if value["low"] is None else interval(value)
        return f"per-token speedup {number}, {escape(info['speedup_source'])}"
    if info.get("speedup_withheld"):
        return f"per-token speedup withheld (-): {escape(info['speedup_withheld'])}; {escape(info['speedup_source'])}"
    return None


def _columns(board: dict[str, Any]) -> list[Column]:
    unit = UNITS[board["unit"]]
    columns = [
        ("run", "Run"), ("model", "Model"), ("precision", "Precision"), ("bits", "Bits"), ("n", "n"),
        ("accuracy", "Accuracy %"), ("mean_length", f"Mean {unit.label}"),
        ("ratio_of_means", "Inflation ×"), ("both_correct_ratio", "Both-correct ×"),
        *((name, _PATHOLOGY_HEADERS[name]) for name in SHOWN_PATHOLOGIES),
        ("budget_auc", "Budget AUC"), ("markers_per_1k_words", "Markers /1k words"),
    ]
    if _shows_speedup(board):
        columns.append(("effective_speedup", "Effective speedup ×"))
    return [Column(key, header, key not in _TEXT_KEYS) for key, header in columns]


def _cell(row: dict[str, Any], key: str) -> Cell:
    if key in _RATIOS:
        text, sort = _ratio(row, key)
        return Cell(text, sort, "; ".join(row["notes"]) or None)
    if key == "effective_speedup":
        value = row[key]
        text = "-" if value is None else f"{value['estimate']:.2f}" if row["role"] == "baseline" else interval(value)
        return Cell(text, None if value is None else value["estimate"], speedup_text(row))
    return Cell(*_figure(row, key))


def _ratio(row: dict[str, Any], key: str) -> tuple[str, Any]:
    if row["role"] == "baseline":
        return "baseline", 1.0
    if row["role"] == "no_baseline":
        return "n/a †", None
    value = row[key]
    text = interval(value)
    if key == "ratio_of_means" and row["ratio_is_lower_bound"] and value is not None:
        text = "≥ " + text
    return text, None if value is None else value["estimate"]


def _figure(row: dict[str, Any], key: str) -> tuple[str, Any]:
    if key in _TEXT_KEYS:
        value = row[key]
        return ("-" if value is None else str(value)), value
    if key == "bits":
        return ("-" if row["bits"] is None else f"{row['bits']:g}"), row["bits"]
    if key == "n":
        return str(row["n"]), row["n"]
    if key == "accuracy":
        acc = row["accuracy"]
        return percent_interval(acc), None if acc is None else acc["estimate"]
    if key == "mean_length":
        return whole(row["mean_length"]), row["mean_length"]
    if key in REASONING_FIELDS:
        value = row[key]
        return ("-" if value is None else f"{value:.{1 if key == 'markers_per_1k_words' else 3}f}"), value
    rate, known = row["rates"][key], row["rates_known"][key]
    partial = rate is not None and known < row["n"]  # the rate is over the samples whose flag is known
    return percent(rate) + (f" ({known}/{row['n']})" if partial else ""), rate


def _scopes(board: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(task or ``overall``, rows): overall first, then each task when there are several."""
    by_scope: dict[str, list[dict[str, Any]]] = {}
    for row in board["rows"]:
        by_scope.setdefault(row["task"], []).append(row)
    ordered = [(OVERALL, by_scope.get(OVERALL, []))]
    if len(board["tasks"]) > 1:
        ordered += [(t, by_scope[t]) for t in board["tasks"] if t in by_scope]
    return ordered


def _legend(board: dict[str, Any], escape: Callable[[str], str]) -> list[str]:
    unit = UNITS[board["unit"]]
    lines = [
        f"Lengths are {unit.label}. Intervals: {percent(board['confidence'], None)}% {board['method']} paired "
        f"bootstrap over items ({board['n_resamples']} resamples, seed {board['seed']}).",
        f"Inflation ×: the run's mean {unit.label} over its baseline's on the same items (ratio of means); "
        "both-correct ×: the same over the items both answer correctly.",
        "Each row's baseline: " + escape(_rule_text(board["baseline_rule"])) + ".",
        f"Budget AUC: area under the accuracy a run keeps when every trace longer than t {unit.short} counts as "
        "wrong, t from 0 to one limit shared by all rows (the generation budget for tokens, else the longest "
        "trace), divided by that limit; markers /1k words: self-correction markers (wait, hmm, ...) per "
        "1,000 reasoning words.",
    ]
    if any(r["ratio_is_lower_bound"] for r in board["rows"]):
        lines.append("≥: the run hit its generation budget, so its ratio is a lower bound.")
    for info in board["runs"]:
        if info["role"] == "no_baseline":
            lines.append(f"† {escape(info['name'])}: {escape(info['note'])}; absolute figures only.")
    if _shows_speedup(board):
        lines.append("Effective speedup × = per-token speedup / inflation ratio (what serving actually gains); its "
                     "interval joins the ends of both intervals. A speedup measured from the side files' decode "
                     "seconds per token is shown only from repeated (batch) timings whose interval excludes 1.")
        for info in board["runs"]:
            text = speedup_text(info, escape)
            if text is not None:
                lines.append(f"{escape(info['name'])}: {text}.")
    if any(r["rates"][k] is not None and r["rates_known"][k] < r["n"] for r in board["rows"] for k in SHOWN_PATHOLOGIES):
        lines.append("(k/n): a rate over the k of the row's n samples whose flag is known (count-only samples "
                     "cannot tell).")
    lines.append("-: unknown (pathology flags need the completion text; accuracy needs correctness).")
    return lines


def _rule_text(rule: str) -> str:
    if rule == "auto":
        return "the full-precision run (bf16, fp16, fp32) of the same model"
    if rule.startswith("precision="):
        return f"the run of the same model with precision {rule.split('=', 1)[1]!r}"
    return f"run {rule!r}"
