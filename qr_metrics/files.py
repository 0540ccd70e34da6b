"""Output files: a reader never sees a half-written file, and a failure leaves none."""

from __future__ import annotations

import errno
import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

SIGNIFICANT_DIGITS = 12
"""Floats in JSON outputs keep this many significant digits: enough for every figure qr-eval
reports, few enough that binary rounding noise (a p90 of 957.200000000001) is not printed."""


def json_ready(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``value`` with every finite float (numpy float64 included) rounded to ``digits``
    significant digits, through dicts, lists and tuples; everything else unchanged. Applied
    at the JSON edge only: computations keep full precision."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else float(value)
    if isinstance(value, dict):
        return {key: json_ready(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item, digits) for item in value]
    if isinstance(value, tuple):
        return tuple(json_ready(item, digits) for item in value)
    return value


def json_text(value: Any, indent: int | None = None) -> str:
    """The JSON text of an output (``--json``, ``--per-sample``, ``leaderboard.json``), with
    floats as :func:`json_ready` rounds them."""
    return json.dumps(json_ready(value), indent=indent)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def output_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file the user named for output: ``-`` is stdout; a device or FIFO (``/dev/stdout``,
    a pipe) is opened and written; a symlink is written through to its target; anything
    else is written atomically. A missing parent directory is an error, never created."""
    if str(path) == "-":
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        with open(path, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        return
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"no such directory {str(target.parent)!r} (create it first)", str(path))
    with atomic_write(target, mode) as handle:
        yield handle


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
