"""``leaderboard.html``: the table view laid out as one self-contained page (inline CSS,
inline script, plots as ``data:`` PNGs), no network request. Every label is escaped.

The tables sort when a header is clicked; ``#sort=KEY`` (or ``#sort=KEY-desc``) in the
address sorts the overall table on load, for links and for headless checks.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Mapping

from ..schema import OVERALL
from .table import BoardTable, Scope, board_table

_CAPTIONS = {
    "accuracy_vs_length": "Accuracy (with its interval) against mean reasoning length, one point per run "
    "(a run has one colour and one marker, its bits', in every plot; a hollow marker sits on another run's point, "
    "the legend names it).",
    "inflation_by_bits": "Inflation ratio against each run's baseline with interval whiskers, grouped by bits; "
    "a hollow marker marks a lower bound (budget hit); runs without a baseline are not shown.",
    "budget_accuracy": "Accuracy if every trace longer than the budget counted as wrong, one line per run "
    "(dashed over another run's identical curve, the legend names it); "
    "AUC: the area under it over the budgets shown, divided by the largest.",
}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #1b1f24; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.45rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f8fa; cursor: pointer; user-select: none; }
td:first-child, th:first-child { position: sticky; left: 0; } td:first-child { background: #fff; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.baseline td { background: #f3f9ff; } tr.no_baseline td { color: #57606a; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { flex: 1 1 30rem; max-width: 48rem; margin: 0; } figure img { width: 100%; height: auto; border: 1px solid #d0d7de; }
.scroll { overflow-x: auto; }
figcaption, .notes { font-size: 0.8rem; color: #57606a; max-width: 60rem; }
"""

_SCRIPT = """
(function () {
  function value(cell) {
    var v = cell.getAttribute("data-value");
    if (v === null || v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortTable(table, index, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[index]), y = value(b.cells[index]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === index) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        sortTable(table, i, th.getAttribute("aria-sort") === "ascending");
      });
    });
    table.setAttribute("data-sortable", "ready");
  });
  var match = /^#sort=([A-Za-z_]+?)(-desc)?$/.exec(window.location.hash);
  var overall = document.getElementById("table-overall");
  if (match && overall) {
    Array.prototype.forEach.call(overall.tHead.rows[0].cells, function (th, i) {
      if (th.getAttribute("data-key") === match[1]) sortTable(overall, i, !!match[2]);
    });
  }
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(view: BoardTable, scope: Scope, index: int) -> str:
    ident = "table-overall" if scope.key == OVERALL else f"table-task-{index}"
    head = "".join(f'<th scope="col" data-key="{_e(c.key)}">{_e(c.header)}</th>' for c in view.columns)
    body = []
    for row in scope.rows:
        cells = []
        for column, cell in zip(view.columns, row.cells):
            text, sort = cell.text, cell.sort
            data = "" if sort is None else _e(repr(sort) if isinstance(sort, float) else sort)
            css = ' class="num"' if column.numeric else ""
            if css:  # a number breaks only before its interval, when the page is narrow
                text = text.replace(" ", "\N{NO-BREAK SPACE}").replace("\N{NO-BREAK SPACE}[", " [")
            title = "" if cell.note is None else f' title="{_e(cell.note)}"'
            cells.append(f'<td{css} data-value="{data}"{title}>{_e(text)}</td>')
        body.append(f'<tr class="{_e(row.role)}" data-run="{_e(row.run)}">{"".join(cells)}</tr>')
    return (
        f'<table class="sortable" id="{ident}" data-task="{_e(scope.key)}">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"
    )


def to_html(board: dict[str, Any], images: Mapping[str, bytes] | None = None) -> str:
    """The page: title, the overall table, per-task tables, the plots (PNG bytes by plot
    name, embedded as ``data:`` URIs) and the notes."""
    images = images or {}
    view = board_table(board, escape=_e)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(view.title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(view.title)}</h1>",
    ]
    for index, scope in enumerate(view.scopes):
        if scope.heading is not None:
            parts.append(f"<h2>{_e(scope.heading)}</h2>")
        elif scope.intro is not None:
            parts.append(f"<p>{_e(scope.intro)}</p>")
        parts.append(f'<div class="scroll">{_table(view, scope, index)}</div>')
    parts.append('<div class="notes">' + "".join(f"<p>{line}</p>" for line in view.legend) + "</div>")
    if images:
        parts.append('<h2>Plots</h2>\n<div class="plots">')
        for name, png in images.items():
            data = base64.b64encode(png).decode("ascii")
            caption = _CAPTIONS.get(name, name)
            parts.append(
                f'<figure id="plot-{_e(name)}"><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    for warning in board.get("warnings", []):
        parts.append(f'<p class="notes">warning: {_e(warning)}</p>')
    parts += [f"<script>{_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
