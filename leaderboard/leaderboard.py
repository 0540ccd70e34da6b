"""The leaderboard: one row per run (model, precision, bits), per task and overall.

``build_leaderboard`` computes the documented ``leaderboard.json`` object from ``Run``
models (absolute figures from ``measure_run``, paired figures from ``compare_runs`` against
each row's baseline); ``write_leaderboard`` writes it as Markdown, CSV, JSON, HTML and plots,
each file atomically.
"""

from __future__ import annotations

import copy
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from qr_metrics.pathologies import PATHOLOGIES
from qr_metrics.speedup import decode_timings, measured_speedup
from qr_metrics.stats import DEFAULT_BOOTSTRAP, BootstrapConfig, accuracy_comparison

from .analysis import MeasuredSample, reasoning_figures, shared_limit
from .compare import compare_runs, measure_cached, resolve_unit, statistics_header
from qr_metrics.files import atomic_write
from .report import interval, markdown_cell
from .runs import InputError, Run, read_run
from .units import UNITS

FULL_PRECISION = frozenset(
    {"bf16", "bfloat16", "fp16", "float16", "f16", "half", "fp32", "float32", "f32", "float", "full"}
)
"""Precision labels (case-insensitive) that mark a run as its model's full-precision baseline."""

SHOWN_PATHOLOGIES = ("loop", "budget_exhausted", "unclosed", "delayed_commitment")
"""Pathology rates shown in the Markdown and HTML tables (CSV and JSON hold all of them)."""

INTERVAL_FIELDS = ("accuracy", "ratio_of_means", "both_correct_ratio", "paired_geomean_ratio",
                   "macro_ratio", "accuracy_delta", "speedup_per_token", "effective_speedup")

CSV_COLUMNS = (
    "run", "model", "precision", "bits", "task", "role", "baseline", "n",
    "accuracy", "accuracy_low", "accuracy_high", "mean_length",
    "ratio_of_means", "ratio_of_means_low", "ratio_of_means_high", "ratio_is_lower_bound",
    "both_correct_ratio", "both_correct_ratio_low", "both_correct_ratio_high",
    "paired_geomean_ratio", "paired_geomean_ratio_low", "paired_geomean_ratio_high",
    "macro_ratio", "macro_ratio_low", "macro_ratio_high",
    "accuracy_delta", "accuracy_delta_low", "accuracy_delta_high", "mcnemar_p",
    *(f"rate_{name}" for name in PATHOLOGIES),
    "budget_auc", "token_efficiency", "markers_per_1k_words", "pass_at_1", "repeat_spread",
    "speedup_per_token", "speedup_per_token_low", "speedup_per_token_high", "speedup_source",
    "effective_speedup", "effective_speedup_low", "effective_speedup_high",
    "notes",
)
"""``leaderboard.csv`` columns, in order (documented in README.md, section Leaderboard)."""

OVERALL = "overall"

REASONING_FIELDS = ("budget_auc", "budget_curve", "token_efficiency", "markers_per_1k_words", "repeats")
"""Row fields from ``reasoning_figures`` (``repeats`` only with several repeats per item)."""


# ----------------------------------------------------------------------------- baselines


def is_full_precision(precision: str | None) -> bool:
    return precision is not None and precision.strip().lower() in FULL_PRECISION


def resolve_baselines(
    runs: Sequence[Run], spec: str | Run | None = None
) -> tuple[list[Run], dict[str, tuple[Run | None, str, str | None]]]:
    """The rows and, per run name, ``(baseline run or None, role, note)``.

    ``spec``: ``None`` or ``"auto"`` (the full-precision run of the same ``model``),
    ``"precision=LABEL"`` (the run of the same model with that precision label), or the
    name of one of ``runs``, the path of a run or a ``Run`` (the baseline of every row; a
    run outside ``runs`` becomes a row too). Roles: ``baseline``, ``candidate``, ``no_baseline``.
    """
    runs = list(runs)
    _unique_names(runs)
    if isinstance(spec, Run):
        return _against_one(runs, spec)
    spec = (spec or "auto").strip()
    plan: dict[str, tuple[Run | None, str, str | None]] = {}
    if spec == "auto" or spec.startswith("precision="):
        label = None if spec == "auto" else spec.split("=", 1)[1]
        if label == "":
            raise InputError("--baseline", "precision= needs a label, e.g. precision=bf16")
        for run in runs:
            if run.model is None:
                plan[run.name] = (None, "no_baseline", "no baseline: the run has no model (set 'model' in its run.json)")
                continue
            matches = [
                r for r in runs
                if r.model == run.model and (is_full_precision(r.precision) if label is None else r.precision == label)
            ]
            wanted = "full-precision run" if label is None else f"run with precision {label!r}"
            if len(matches) > 1:
                names = ", ".join(repr(r.name) for r in matches)
                raise InputError(
                    "--baseline", f"model {run.model!r} has {len(matches)} candidate baselines ({names}): "
                    "pass --baseline NAME or --baseline precision=LABEL"
                )
            if not matches:
                plan[run.name] = (None, "no_baseline", f"no baseline: no {wanted} of model {run.model!r} among the runs")
            elif matches[0] is run:
                plan[run.name] = (run, "baseline", None)
            else:
                plan[run.name] = (matches[0], "candidate", None)
        return runs, plan
    named = [r for r in runs if r.name == spec]
    if named:
        return _against_one(runs, named[0])
    if Path(spec).exists():
        return _against_one(runs, read_run(spec))
    raise InputError("--baseline", f"{spec!r} is not 'auto', 'precision=LABEL', a run's name or a run's path")


def _against_one(runs: list[Run], reference: Run) -> tuple[list[Run], dict[str, tuple[Run | None, str, str | None]]]:
    """Every row against ``reference``, which becomes the first row unless a row is read from its files."""
    same = [r for r in runs if r.source.resolve() == reference.source.resolve()]
    if same:
        reference = same[0]
    else:
        runs.insert(0, reference)
        _unique_names(runs)
    return runs, {run.name: (reference, "baseline" if run is reference else "candidate", None) for run in runs}


def _unique_names(runs: Sequence[Run]) -> None:
    seen: set[str] = set()
    for run in runs:
        if run.name in seen:
            raise InputError(run.source, f"two runs are named {run.name!r}: set 'name' in their run.json")
        seen.add(run.name)


# ----------------------------------------------------------------------------- figures


def _absolute(
    measured: Sequence[MeasuredSample], field: str, config: BootstrapConfig, limit: float | None
) -> dict[str, Any]:
    """A run's own figures over some samples: n, accuracy with interval, mean length, rates,
    and the reasoning figures (budget curve up to ``limit``, shared by every run's row)."""
    correct = [m for m in measured if m.correct is not None]
    accuracy = None
    if correct:
        items = {key: i for i, key in enumerate(dict.fromkeys(m.sample.key[:2] for m in correct))}
        item = np.array([items[m.sample.key[:2]] for m in correct])
        flags = np.array([m.correct for m in correct], dtype=bool)
        accuracy = accuracy_comparison(item, flags, flags, config).candidate.as_dict()
    rates = {}
    for name in PATHOLOGIES:
        known = [m.flags.get(name) for m in measured if m.flags.get(name) is not None]
        rates[name] = float(np.mean(known)) if known else None
    figures = reasoning_figures(list(measured), field, limit)
    curve, efficiency = figures["budget_accuracy"], figures["efficiency"]
    return {
        "n": len(measured),
        "accuracy": accuracy,
        "mean_length": float(np.mean([m.counts[field] for m in measured])),
        "rates": rates,
        "budget_auc": None if curve is None else curve["auc"],
        "budget_curve": None if curve is None else {k: curve[k] for k in ("limit", "budgets", "accuracy")},
        "token_efficiency": None if efficiency is None else efficiency["token_efficiency"],
        "markers_per_1k_words": (figures["reflection_markers"] or {}).get("per_1k_words"),
        "repeats": figures["repeats"],
    }


def _effective(speedup: dict | None, ratio: dict | None, role: str) -> dict | None:
    """Effective speedup = per-token speedup / inflation ratio (DESIGN.md section 3).

    Its interval joins the ends of both intervals (speedup low over ratio high, speedup high
    over ratio low): conservative. A given speedup has no interval of its own (it counts
    as exact); a measured one is only here when it has one (:func:`resolve_speedup`).
    """
    if speedup is None:
        return None
    if role == "baseline":
        return dict(speedup)
    if ratio is None or not ratio["estimate"]:
        return None
    s_low = speedup["estimate"] if speedup["low"] is None else speedup["low"]
    s_high = speedup["estimate"] if speedup["high"] is None else speedup["high"]
    low = s_low / ratio["high"] if ratio.get("high") else None
    high = s_high / ratio["low"] if ratio.get("low") else None
    return {"estimate": speedup["estimate"] / ratio["estimate"], "low": low, "high": high}


@dataclass(frozen=True)
class PerTokenSpeedup:
    """A run's per-token speedup, as :func:`resolve_speedup` finds it.

    value: ``{"estimate", "low", "high"}``, or None when none is known or a measured one is
        withheld; ``low``/``high`` are None for a given speedup (a given number, no interval).
    source: where it comes from, ``given: ...`` or ``measured: ...`` (with the device).
    withheld: why a measured speedup is not shown (``one timing``, ``too noisy: ...``), else None.
    """

    value: dict | None = None
    source: str | None = None
    withheld: str | None = None


def resolve_speedup(
    run: Run, reference: Run | None, speedups: Mapping[str, float], config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> PerTokenSpeedup:
    """The run's per-token speedup: ``--speedup`` first, then run.json's ``speedup`` (both
    kept as given), then one measured from the side files' decode seconds per token (the
    run's own reference model over its low-bit one, else its baseline run's model over
    it), shown only from repeated timings whose interval excludes 1
    (``qr_metrics.speedup``), else withheld with the reason.
    """
    if run.precision in speedups:
        value = speedups[run.precision]
        return PerTokenSpeedup(_given(value), f"given: --speedup {run.precision}={value:g}")
    if run.speedup is not None:
        return PerTokenSpeedup(_given(run.speedup), "given: run.json speedup")
    own = decode_timings(s.side for s in run.samples if s.side is not None)
    if "lowbit" not in own:
        return PerTokenSpeedup()
    if "reference" in own:
        timed, where, devices = own["reference"], "this run's reference model over its low-bit one", [run.device]
    elif reference is not None and reference is not run:
        timed = decode_timings(s.side for s in reference.samples if s.side is not None).get("lowbit")
        if timed is None:
            return PerTokenSpeedup()
        where, devices = f"baseline {reference.name}'s over this run's", [reference.device, run.device]
    else:
        return PerTokenSpeedup()
    known = list(dict.fromkeys(d for d in devices if d))
    on = known[0] if len(known) == 1 else " vs ".join(known) if known else "device not recorded"
    source = f"measured: decode s/token of the side files, {where} ({on})"
    if len(known) > 1:
        return PerTokenSpeedup(None, source, f"timed on different devices ({on})")
    result = measured_speedup(timed, own["lowbit"], config)
    if not result.shown:
        return PerTokenSpeedup(None, source, result.withheld)
    return PerTokenSpeedup(result.speedup.as_dict(), source)


def _given(value: float) -> dict:
    return {"estimate": float(value), "low": None, "high": None}


def build_leaderboard(
    runs: Sequence[Run],
    baseline: str | Run | None = None,
    unit: str | None = None,
    config: BootstrapConfig = DEFAULT_BOOTSTRAP,
    tokenizer: str | None = None,
    speedups: Mapping[str, float] | None = None,
    title: str | None = None,
    strict: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The documented ``leaderboard.json`` object.

    ``speedups``: precision label -> per-token speedup; it overrides a run's own
    ``speedup`` (run.json) and the measured one (:func:`resolve_speedup`, with ``config``'s
    confidence, resamples and seed). A label that
    matches no run is an input error. ``unit``: see ``compare.resolve_unit`` (None: the
    best unit every row has).
    """
    if not runs:
        raise InputError("command line", "no runs given")
    rows_runs, plan = resolve_baselines(runs, baseline)
    speedups = dict(speedups or {})
    precisions = {r.precision for r in rows_runs}
    for label in speedups:
        if label not in precisions:
            known = sorted(p for p in precisions if p is not None)
            raise InputError("--speedup", f"no run has precision {label!r}; precisions: {known}")

    tasks = sorted({t for r in rows_runs for t in r.tasks})
    rows: list[dict[str, Any]] = []
    run_info = []
    warnings: list[str] = []
    cache: dict = {}  # each run is measured once, however many rows it is the baseline of
    pairs = [(plan[run.name][0], run) for run in rows_runs if plan[run.name][1] == "candidate"]
    unit = resolve_unit(rows_runs, unit, tokenizer, pairs, progress, cache)
    field = unit.field
    every = {run.name: measure_cached(run, tokenizer, progress, cache) for run in rows_runs}
    pooled = [m for measured in every.values() for m in measured]
    limits = {task: shared_limit([m for m in pooled if m.sample.task == task], field) for task in tasks}
    limits[OVERALL] = shared_limit(pooled, field)  # one budget axis for every run's row
    for run in rows_runs:
        reference, role, note = plan[run.name]
        measured = every[run.name]
        comparison = None
        if role == "candidate":
            comparison = compare_runs(
                reference, run, unit=unit.name, config=config, tokenizer=tokenizer, strict=strict, progress=progress,
                cache=cache,
            )
            warnings.extend(f"{run.name}: {w}" for w in comparison["warnings"])
        speedup = resolve_speedup(run, reference, speedups, config)
        run_info.append(
            {
                "name": run.name, "model": run.model, "precision": run.precision, "bits": run.bits,
                "source": str(run.source), "device": run.device, "role": role,
                "baseline": None if reference is None else reference.name,
                "speedup_per_token": speedup.value, "speedup_source": speedup.source,
                "speedup_withheld": speedup.withheld, "note": note,
            }
        )
        by_task: dict[str, list[MeasuredSample]] = {}
        for m in measured:
            by_task.setdefault(m.sample.task, []).append(m)
        scopes = [(task, by_task[task]) for task in tasks if task in by_task] + [(OVERALL, measured)]
        for scope, samples in scopes:
            if scope == OVERALL and len(by_task) == 1:
                figures = copy.deepcopy(rows[-1])  # overall is that one task: no second bootstrap
                figures["task"] = OVERALL
                if comparison is not None:
                    figures["macro_ratio"] = _macro(comparison["overall"].get("macro_ratio"))
                rows.append(figures)
                continue
            block = None
            if comparison is not None:
                block = comparison["overall"] if scope == OVERALL else comparison["tasks"].get(scope)
            absolute = _absolute(samples, field, config, limits[scope])
            rows.append(_row(run, scope, role, reference, note, absolute, block, speedup))
    return {
        "title": title or "qr-eval leaderboard",
        **statistics_header(unit, config),
        "baseline_rule": baseline.name if isinstance(baseline, Run) else baseline or "auto",
        "tasks": tasks,
        "runs": run_info,
        "rows": rows,
        "warnings": warnings,
    }


def _macro(value: dict | None) -> dict | None:
    return None if value is None else {k: value[k] for k in ("estimate", "low", "high")}


def _row(run, scope, role, reference, note, absolute, block, speedup: PerTokenSpeedup) -> dict[str, Any]:
    notes = [] if note is None else [note]
    ratio = None if block is None else block["ratio_of_means"]
    if role == "candidate" and block is None:
        notes.append(f"no baseline samples for task {scope!r}: absolute figures only")
    if block is not None and block["ratio_is_lower_bound"]:
        notes.append("hit its generation budget: the ratio is a lower bound")
    if speedup.withheld:
        notes.append(f"per-token speedup withheld: {speedup.withheld}")
    accuracy = None if block is None else block["accuracy"]
    return {
        "run": run.name,
        "model": run.model,
        "precision": run.precision,
        "bits": run.bits,
        "task": scope,
        "role": role,
        "baseline": None if reference is None else reference.name,
        "n": absolute["n"],
        "accuracy": absolute["accuracy"],
        "mean_length": absolute["mean_length"],
        "ratio_of_means": ratio,
        "ratio_is_lower_bound": None if block is None else block["ratio_is_lower_bound"],
        "both_correct_ratio": None if block is None else block["both_correct_ratio"],
        "paired_geomean_ratio": None if block is None else block["paired_geomean_ratio"],
        "macro_ratio": None if block is None or scope != OVERALL else _macro(block.get("macro_ratio")),
        "accuracy_delta": None if accuracy is None else accuracy["delta"],
        "mcnemar_p": None if accuracy is None else accuracy["mcnemar_p"],
        "rates": absolute["rates"],
        **{key: absolute[key] for key in REASONING_FIELDS},
        "speedup_per_token": speedup.value,
        "speedup_source": speedup.source,
        "speedup_withheld": speedup.withheld,
        "effective_speedup": _effective(speedup.value, ratio, role),
        "notes": notes,
    }


# ----------------------------------------------------------------------------- outputs


def csv_rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows flattened to ``CSV_COLUMNS`` (None stays None; written as an empty cell)."""
    flat = []
    for row in board["rows"]:
        out: dict[str, Any] = {}
        for column in CSV_COLUMNS:
            if column in INTERVAL_FIELDS:
                value = row[column]
                out[column] = None if value is None else value["estimate"]
                out[f"{column}_low"] = None if value is None else value["low"]
                out[f"{column}_high"] = None if value is None else value["high"]
            elif column.startswith("rate_"):
                out[column] = row["rates"][column[len("rate_"):]]
            elif column in ("pass_at_1", "repeat_spread"):
                out[column] = None if row["repeats"] is None else row["repeats"][column.removeprefix("repeat_")]
            elif column == "notes":
                out[column] = "; ".join(row["notes"])
            elif column not in out:
                out[column] = row[column]
        flat.append({c: out[c] for c in CSV_COLUMNS})
    return flat


def to_csv(board: dict[str, Any]) -> str:
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(board):
        writer.writerow({k: "" if v is None else (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()})
    return handle.getvalue()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _pct_interval(value: dict | None) -> str:
    if value is None:
        return "-"
    if value["low"] is None or value["high"] is None:
        return f"{100 * value['estimate']:.1f} [-]"
    return f"{100 * value['estimate']:.1f} [{100 * value['low']:.1f}, {100 * value['high']:.1f}]"


def _shows_speedup(board: dict[str, Any]) -> bool:
    """A per-token speedup is known, or a measured one is withheld (its cell says ``-``)."""
    return any(r["speedup_per_token"] is not None or r.get("speedup_withheld") for r in board["rows"])


def speedup_text(info: dict[str, Any], escape=str) -> str | None:
    """What a row's or a run's per-token speedup is and where it comes from (shown under the
    tables and as the effective speedup cell's title); None when it has none. ``escape`` is
    applied to the source and the reason (they hold run names and labels)."""
    value = info["speedup_per_token"]
    if value is not None:
        number = f"{value['estimate']:.2f}" if value["low"] is None else interval(value)
        return f"per-token speedup {number}, {escape(info['speedup_source'])}"
    if info.get("speedup_withheld"):
        return f"per-token speedup withheld (-): {escape(info['speedup_withheld'])}; {escape(info['speedup_source'])}"
    return None


def table_columns(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, header) of the displayed columns, shared by Markdown and HTML."""
    unit = UNITS[board["unit"]]
    columns = [
        ("run", "Run"), ("model", "Model"), ("precision", "Precision"), ("bits", "Bits"), ("n", "n"),
        ("accuracy", "Accuracy %"), ("mean_length", f"Mean {unit.label}"),
        ("ratio_of_means", "Inflation ×"), ("both_correct_ratio", "Both-correct ×"),
        ("loop", "Loop %"), ("budget_exhausted", "Budget hit %"), ("unclosed", "Unclosed %"),
        ("delayed_commitment", "Delayed commit %"), ("budget_auc", "Budget AUC"),
        ("markers_per_1k_words", "Markers /1k words"),
    ]
    if _shows_speedup(board):
        columns.append(("effective_speedup", "Effective speedup ×"))
    return columns


def display_cell(row: dict[str, Any], key: str) -> tuple[str, Any]:
    """(text, sort value) of one displayed cell; text is plain (the caller escapes it)."""
    if key in ("run", "model", "precision"):
        value = row[key]
        return ("-" if value is None else str(value)), value
    if key == "bits":
        return ("-" if row["bits"] is None else f"{row['bits']:g}"), row["bits"]
    if key == "n":
        return str(row["n"]), row["n"]
    if key == "accuracy":
        acc = row["accuracy"]
        return _pct_interval(acc), None if acc is None else acc["estimate"]
    if key == "mean_length":
        return f"{row['mean_length']:.0f}", row["mean_length"]
    if key in ("ratio_of_means", "both_correct_ratio"):
        value = row[key]
        if row["role"] == "baseline":
            return "baseline", 1.0
        if row["role"] == "no_baseline":
            return "n/a †", None
        text = interval(value)
        if key == "ratio_of_means" and row["ratio_is_lower_bound"] and value is not None:
            text = "≥ " + text
        return text, None if value is None else value["estimate"]
    if key == "effective_speedup":
        value = row[key]
        if value is None:
            return "-", None
        return (f"{value['estimate']:.2f}" if row["role"] == "baseline" else interval(value)), value["estimate"]
    if key in REASONING_FIELDS:
        value = row[key]
        return ("-" if value is None else f"{value:.{1 if key == 'markers_per_1k_words' else 3}f}"), value
    rate = row["rates"][key]
    return _pct(rate), rate


def scopes(board: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(task or ``overall``, rows): overall first, then each task when there are several."""
    by_scope: dict[str, list[dict[str, Any]]] = {}
    for row in board["rows"]:
        by_scope.setdefault(row["task"], []).append(row)
    ordered = [(OVERALL, by_scope.get(OVERALL, []))]
    if len(board["tasks"]) > 1:
        ordered += [(t, by_scope[t]) for t in board["tasks"] if t in by_scope]
    return ordered


def legend(board: dict[str, Any], escape=str) -> list[str]:
    """The notes printed under the tables; ``escape`` is applied to run names."""
    unit = UNITS[board["unit"]]
    lines = [
        f"Lengths are {unit.label}. Intervals: {100 * board['confidence']:g}% {board['method']} paired "
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
    lines.append("-: unknown (pathology flags need the completion text; accuracy needs correctness).")
    return lines


def _rule_text(rule: str) -> str:
    if rule == "auto":
        return "the full-precision run (bf16, fp16, fp32) of the same model"
    if rule.startswith("precision="):
        return f"the run of the same model with precision {rule.split('=', 1)[1]!r}"
    return f"run {rule!r}"


def to_markdown(board: dict[str, Any]) -> str:
    """``leaderboard.md``: ready to paste into a README or a model card."""
    columns = table_columns(board)
    lines = [f"## {markdown_cell(board['title'])}", ""]
    for scope, rows in scopes(board):
        if len(board["tasks"]) > 1:
            lines += [f"### {'Overall' if scope == OVERALL else markdown_cell(scope)}", ""]
        elif scope == OVERALL:
            lines += [f"Task: {markdown_cell(board['tasks'][0])}", ""]
        lines.append("| " + " | ".join(markdown_cell(h) for _, h in columns) + " |")
        lines.append("|" + "|".join("---" if k in ("run", "model", "precision") else "---:" for k, _ in columns) + "|")
        for row in rows:
            cells = [display_cell(row, k)[0] for k, _ in columns]  # numbers need no escaping; labels do
            cells = [markdown_cell(c) if k in ("run", "model", "precision") else c for c, (k, _) in zip(cells, columns)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [line + "  " for line in legend(board, escape=markdown_cell)]
    return "\n".join(lines).rstrip() + "\n"


def write_leaderboard(board: dict[str, Any], out: str | Path, plots: bool = True) -> list[Path]:
    """Write every output into ``out``; returns the paths written.

    Everything is rendered first, then each file is written atomically: a failure while
    rendering writes nothing. Every file shows the figures as the JSON holds them
    (``json_ready``: 12 significant digits), so the CSV and the JSON agree exactly.
    """
    from qr_metrics.files import json_ready, json_text

    from .html import to_html

    board = json_ready(board)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out must be a directory")
    images: dict[str, tuple[bytes, bytes]] = {}
    if plots:
        from .plots import leaderboard_plots

        overall = [r for r in board["rows"] if r["task"] == OVERALL]
        images = leaderboard_plots(overall, UNITS[board["unit"]].label, board["confidence"])
    texts = {
        "leaderboard.md": to_markdown(board),
        "leaderboard.csv": to_csv(board),
        "leaderboard.json": json_text(board, indent=2) + "\n",
        "leaderboard.html": to_html(board, {name: png for name, (png, _) in images.items()}),
    }
    written = []
    for name, text in texts.items():
        with atomic_write(out / name) as handle:
            handle.write(text)
        written.append(out / name)
    for name, (png, svg) in images.items():
        for suffix, data in ((".png", png), (".svg", svg)):
            with atomic_write(out / f"{name}{suffix}", "wb") as handle:
                handle.write(data)
            written.append(out / f"{name}{suffix}")
    return written
