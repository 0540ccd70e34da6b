"""``leaderboard.csv``: one flat row per leaderboard row, every figure and interval bound in
its own column, for spreadsheets and scripts."""

from __future__ import annotations

import csv
import io
from typing import Any

from qr_metrics.pathologies import PATHOLOGIES

from ..schema import INTERVAL_FIELDS

CSV_COLUMNS = (
    "run", "model", "precision", "bits", "task", "role", "baseline", "n",
    "accuracy", "accuracy_low", "accuracy_high", "mean_length",
    "ratio_of_means", "ratio_of_means_low", "ratio_of_means_high", "ratio_is_lower_bound",
    "both_correct_ratio", "both_correct_ratio_low", "both_correct_ratio_high",
    "paired_geomean_ratio", "paired_geomean_ratio_low", "paired_geomean_ratio_high",
    "macro_ratio", "macro_ratio_low", "macro_ratio_high",
    "accuracy_delta", "accuracy_delta_low", "accuracy_delta_high", "mcnemar_p",
    *(f"rate_{name}" for name in PATHOLOGIES),
    *(f"known_{name}" for name in PATHOLOGIES),
    "budget_auc", "token_efficiency", "markers_per_1k_words", "pass_at_1", "repeat_spread",
    "speedup_per_token", "speedup_per_token_low", "speedup_per_token_high", "speedup_source",
    "effective_speedup", "effective_speedup_low", "effective_speedup_high",
    "notes",
)
"""``leaderboard.csv`` columns, in order (documented in README.md, section Leaderboard)."""


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
                out[column] = row["rates"][column.removeprefix("rate_")]
            elif column.startswith("known_"):
                out[column] = row["rates_known"][column.removeprefix("known_")]
            elif column in ("pass_at_1", "repeat_spread"):
                out[column] = None if row["repeats"] is None else row["repeats"][column.removeprefix("repeat_")]
            elif column == "notes":
                out[column] = "; ".join(row["notes"])
            elif column not in out:
                out[column] = row[column]
        flat.append({c: out[c] for c in CSV_COLUMNS})
    return flat


def to_csv(board: dict[str, Any]) -> str:
    """The CSV text: empty cells for unknown figures, ``true``/``false`` for flags."""
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(board):
        writer.writerow({k: "" if v is None else (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()})
    return handle.getvalue()
