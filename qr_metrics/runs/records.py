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


def read_yaml(path: Path, what: str) -> tuple[Any, dict[str, int]]:
    """The value a small YAML (or JSON) file holds, and the 1-based line of every mapping key
    (nested keys as ``parent.child``); ``what`` names the file in the error when it cannot
    be read. Text that is not UTF-8 YAML is an input error naming the file and the line."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(path, f"cannot read {what} ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text (byte {error.start + 1})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputError(path, f"malformed YAML ({problem})", None if mark is None else mark.line + 1) from None
    return data, _key_lines(node)


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    import yaml

    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = f"{prefix}{key.value}"
            lines[name] = key.start_mark.line + 1
            lines.update(_key_lines(value, f"{name}."))
    return lines


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
