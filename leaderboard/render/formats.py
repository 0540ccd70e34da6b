"""How figures are written, in one place: every table, page and verdict formats its numbers
here, so one figure reads the same everywhere."""

from __future__ import annotations

import html
from typing import Any, Callable


def percent(share: float | None, digits: int | None = 1, signed: bool = False) -> str:
    """``12.5`` for 0.125 (the header or the caller adds ``%`` or ``pts``), ``-`` when unknown;
    ``digits=None`` writes as few digits as the value needs (thresholds, confidence levels)."""
    if share is None:
        return "-"
    spec = ("+" if signed else "") + ("g" if digits is None else f".{digits}f")
    return format(100 * share, spec)


def whole(value: float | None) -> str:
    """A length or a count rounded to a whole number, ``-`` when unknown."""
    return "-" if value is None else f"{value:.0f}"


def _bounded(value: dict | None, number: Callable[[float], str]) -> str:
    if value is None:
        return "-"
    if value.get("low") is None or value.get("high") is None:
        return f"{number(value['estimate'])} [-]"
    return f"{number(value['estimate'])} [{number(value['low'])}, {number(value['high'])}]"


def interval(value: dict | None, digits: int = 2) -> str:
    """``3.80 [3.52, 4.11]``, or ``3.80 [-]`` when no interval exists, or ``-``."""
    return _bounded(value, lambda x: f"{x:.{digits}f}")


def percent_interval(value: dict | None, digits: int = 1) -> str:
    """A share with its interval in percent: ``62.5 [50.0, 75.0]`` (``[-]``, ``-`` as ``interval``)."""
    return _bounded(value, lambda x: percent(x, digits))


def points(value: dict | None) -> str:
    """A change of a share in signed percentage points with its interval: ``-12.5 [-25.0, +0.0]``."""
    return _bounded(value, lambda x: percent(x, signed=True))


def markdown_cell(text: Any) -> str:
    """Text safe inside a GitHub Markdown table cell: no HTML, no pipes, no emphasis."""
    text = html.escape(str(text), quote=False).replace("\\", "\\\\").replace("\n", " ")
    for char in "|`*_[]#":
        text = text.replace(char, "\\" + char)
    return text
