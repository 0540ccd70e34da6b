"""``leaderboard.md``: the table view laid out as GitHub Markdown, ready to paste into a README
or a model card."""

from __future__ import annotations

from typing import Any

from .formats import markdown_cell
from .table import board_table


def to_markdown(board: dict[str, Any]) -> str:
    view = board_table(board, escape=markdown_cell)
    lines = [f"## {markdown_cell(view.title)}", ""]
    for scope in view.scopes:
        if scope.heading is not None:
            lines += [f"### {markdown_cell(scope.heading)}", ""]
        elif scope.intro is not None:
            lines += [markdown_cell(scope.intro), ""]
        lines.append("| " + " | ".join(markdown_cell(c.header) for c in view.columns) + " |")
        lines.append("|" + "|".join("---:" if c.numeric else "---" for c in view.columns) + "|")
        for row in scope.rows:  # numbers need no escaping; labels do
            cells = [cell.text if c.numeric else markdown_cell(cell.text) for c, cell in zip(view.columns, row.cells)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [line + "  " for line in view.legend]
    return "\n".join(lines).rstrip() + "\n"
