"""Read lm-eval output directories and generic trace files into one ``Run`` model.

One reader, one model (DESIGN.md section 2): every command works on ``Run`` and never
parses files itself. Inputs are never modified. Bad input raises ``InputError`` naming the
file, the line and the field.

An lm-eval run may come with the adapters' side file (``qr_metrics.sidecar``): its exact
finish reasons, token counts, rescue events and timings are joined to the samples.

It lives below both the leaderboard and the lm-eval tasks (the in-harness baseline ratio
reads its baseline run with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .lm_eval_output import RESULTS_FILE, SIDE_FILE, pick_results, read_lm_eval
from .model import InputError, OptionError, Run, Sample
from .records import read_json
from .traces import HEADER_FIELDS, RUN_JSON, read_header, read_traces

__all__ = ["HEADER_FIELDS", "RUN_JSON", "SIDE_FILE", "InputError", "OptionError", "Run", "Sample", "read_json", "read_run"]


def read_run(path: str | Path, timestamp: str | Sequence[str] | None = None) -> Run:
    """Read a run: a generic ``.jsonl`` trace file, a directory with ``traces.jsonl``
    (+ optional ``run.json``), an lm-eval output directory, or one ``results_*.json``.

    An lm-eval directory that holds several timestamped runs needs ``timestamp`` (one, or
    several of which the directory holds one), or the path of one results file: runs are
    never mixed by accident. A directory with one run reads it whatever ``timestamp`` says.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_file() and path.suffix == ".jsonl":
        return read_traces(path, {})
    if path.is_file() and RESULTS_FILE.match(path.name):
        return read_lm_eval(path)
    if path.is_dir() and (path / "traces.jsonl").exists():
        return read_traces(path / "traces.jsonl", read_header(path / RUN_JSON))
    if path.is_dir():
        stamps = (timestamp,) if isinstance(timestamp, str) else tuple(timestamp or ())
        return read_lm_eval(pick_results(path, stamps), root=path)
    raise InputError(path, "expected a .jsonl trace file, a results_*.json file or a run directory")
