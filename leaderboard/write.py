"""Writing a leaderboard's files: everything is rendered first, then each file is written
atomically, so a failure while rendering leaves no half-written board behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qr_metrics.files import atomic_write, json_ready, json_text
from qr_metrics.runs import InputError
from qr_metrics.units import UNITS

from .render.csv_table import to_csv
from .render.html import to_html
from .render.markdown import to_markdown
from .schema import OVERALL


def write_leaderboard(board: dict[str, Any], out: str | Path, plots: bool = True) -> list[Path]:
    """Write Markdown, CSV, JSON, HTML (and the plots) into ``out``; returns the paths written.

    Every file shows the figures as the JSON holds them (``json_ready``: 12 significant
    digits), so the CSV and the JSON agree exactly.
    """
    board = json_ready(board)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "not a directory: the output must be one")
    images: dict[str, tuple[bytes, bytes]] = {}
    if plots:
        from .render.plots import leaderboard_plots

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
