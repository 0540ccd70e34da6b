"""Reading JSON and JSON Lines input, line by line, with errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonlines

from ..counts import is_count
from ..documents import doc_id_key
from .model import InputError, Sample


def read_json(path: Path) -> Any:
    """The JSON value a file holds; text that is not UTF-8 JSON is an input error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text (byte {error.start + 1})") from None
    except json.JSONDecodeError as error:
        raise InputError(path, f"malformed JSON ({error.msg})", error.lineno) from None

def json_object(path: Path) -> dict[str, Any]:
    """The JSON object a file holds; anything else is an input error."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise InputError(path, "expected a JSON object")
    return value

def numbered_records(path: Path):
    """(line number, object) for each non-empty line; a malformed line is an input error."""
    position = {"line": 0}

    def numbered(handle):
        for position["line"], raw in enumerate(handle, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InputError(path, f"not UTF-8 text (byte {error.start + 1} of the line)", position["line"]) from None

    with path.open("rb") as handle:
        reader = jsonlines.Reader(numbered(handle))
        try:
            for record in reader.iter(type=dict, skip_empty=True):
                yield position["line"], record
        except jsonlines.InvalidLineError as error:
            problem = f"malformed JSON ({error.__cause__})" if error.__cause__ else "expected a JSON object"
            raise InputError(path, problem, error.lineno) from None

def check_doc_id(record: dict, path: Path, line: int) -> None:
    try:
        doc_id_key(record["doc_id"])
    except ValueError as error:
        raise InputError(path, str(error), line, "doc_id") from None

def int_field(record: dict, name: str, path: Path, line: int, default):
    value = record.get(name, default)
    if value is None:
        return default
    if not is_count(value):
        raise InputError(path, "must be an integer in [0, 2**53]", line, name)
    return value

def bool_field(record: dict, name: str, path: Path, line: int) -> bool | None:
    value = record.get(name)
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise InputError(path, "must be true, false or null", line, name)

def check_samples(samples: list[Sample], lines: list[int], path: Path) -> None:
    """A file's samples (``lines[i]``: the line of ``samples[i]``): at least one, and each
    (task, doc_id, repeat) once; a repeated key is reported at its second line."""
    if not samples:
        raise InputError(path, "holds no record")
    first: dict[tuple[str, str, int], int] = {}
    for sample, line in zip(samples, lines):
        if sample.key in first:
            task, doc_id, repeat = sample.key
            raise InputError(
                path,
                f"duplicate sample (task={task!r}, doc_id={doc_id!r}, repeat={repeat}; first on line {first[sample.key]})",
                line,
                "doc_id",
            )
        first[sample.key] = line
