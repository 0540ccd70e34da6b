"""Generic trace files (DESIGN.md section 4) and their ``run.json`` header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..counts import MAX_COUNT, is_count
from ..units import COUNT_FIELDS
from .model import InputError, Run, Sample
from .records import bool_field, check_doc_id, check_samples, int_field, json_object, numbered_records

HEADER_FIELDS = ("name", "model", "precision", "bits", "tokenizer", "speedup")

RUN_JSON = "run.json"
"""Run metadata (``HEADER_FIELDS``): beside ``traces.jsonl`` or ``results_*.json``, or at
the root of an lm-eval ``--output_path`` (the nearer one wins)."""


def read_header(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    header = json_object(path)
    unknown = sorted(set(header) - set(HEADER_FIELDS))
    if unknown:
        raise InputError(path, f"unknown field(s) {unknown}; allowed: {list(HEADER_FIELDS)}")
    for name in ("name", "model", "precision", "tokenizer"):
        if header.get(name) is not None and not isinstance(header[name], str):
            raise InputError(path, "must be a string", field=name)
    bits = header.get("bits")
    if bits is not None and not (_number(bits) and abs(bits) <= MAX_COUNT):
        raise InputError(path, "must be a number", field="bits")
    speedup = header.get("speedup")
    if speedup is not None and not (_number(speedup) and 0 < speedup <= MAX_COUNT):
        raise InputError(path, "must be a positive number", field="speedup")
    return header


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_traces(path: Path, header: dict[str, Any]) -> Run:
    samples, lines = [], []
    for line_no, record in numbered_records(path):
        if "task" not in record and "resps" in record:  # lm-eval's own log, given alone
            raise InputError(
                path, "missing: this looks like lm-eval's samples_*.jsonl; pass the run directory that holds it "
                "and its results_*.json instead", line_no, "task",
            )
        for required in ("task", "doc_id"):
            if record.get(required) in (None, ""):
                raise InputError(path, "missing", line_no, required)
        check_doc_id(record, path, line_no)
        completion = record.get("completion")
        counts = record.get("counts") or {}
        if completion is not None and not isinstance(completion, str):
            raise InputError(path, "must be a string", line_no, "completion")
        if not isinstance(counts, dict):
            raise InputError(path, "must map unit names to counts", line_no, "counts")
        for unit, value in counts.items():
            if unit not in COUNT_FIELDS:
                raise InputError(path, f"unknown count {unit!r}; known: {', '.join(COUNT_FIELDS)}", line_no, "counts")
            if not is_count(value):
                raise InputError(path, f"{unit!r} must be an integer in [0, 2**53]", line_no, "counts")
        if completion is None and not counts:
            raise InputError(path, "a record needs a completion or counts", line_no, "completion")
        samples.append(
            Sample(
                task=str(record["task"]),
                doc_id=record["doc_id"],
                repeat=int_field(record, "repeat", path, line_no, default=0),
                completion=completion,
                prompt=record.get("prompt"),
                gold=record.get("gold"),
                correct=bool_field(record, "correct", path, line_no),
                finish_reason=record.get("finish_reason"),
                max_gen_toks=int_field(record, "max_gen_toks", path, line_no, default=None),
                counts=counts,
            )
        )
        lines.append(line_no)
    check_samples(samples, lines, path)
    name = header.get("name") or (path.resolve().parent.name if path.name == "traces.jsonl" else path.stem)
    return Run(
        name=name,
        source=path,
        samples=samples,
        model=header.get("model"),
        precision=header.get("precision"),
        bits=header.get("bits"),
        tokenizer=header.get("tokenizer"),
        speedup=header.get("speedup"),
    )
