"""``qr-eval convert``: other tools' per-sample outputs -> generic trace records (DESIGN.md
section 4), which every verb reads.

The shape is told by the file's suffix and its first record:

- lm-eval's ``samples_<task>_<timestamp>.jsonl`` (``--log_samples``), read without its
  ``results_*.json`` by the run reader's own code;
- generations of Quantized-Reasoning-Models / lighteval: a JSON list (or JSON Lines) of
  ``{full_prompt, generated_text, gold, metrics}``;
- per-sample CSV: an id, a word count (of the whole completion: ``completion_words``) and
  (optionally) a correctness column;
- OpenAI-style chat logs (JSON Lines or a JSON list): chat completions, Batch API output
  lines or ``messages`` conversations, the reasoning in ``reasoning_content``.

Bad input raises ``InputError`` naming the file, the line (or JSON list item) and the field.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jsonlines
from tqdm import tqdm

from qr_metrics.counts import is_count
from qr_metrics.documents import sample_key
from qr_metrics.files import output_file
from qr_metrics.params import DEFAULT_PARAMS

from qr_metrics.runs import InputError, OptionError, read_json
from qr_metrics.runs.lm_eval_output import lm_eval_samples
from qr_metrics.runs.records import numbered_records

_LM_EVAL_NAME = "samples_"
ID_COLUMNS = ("doc_id", "idx", "id")
WORD_COLUMNS = ("word_count", "words")
CORRECT_COLUMNS = ("is_correct", "correct")
TASK_COLUMNS = ("task", "dataset")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass
class Conversion:
    shape: str
    """Which shape the file had (``lm-eval samples``, ``generations``, ``per-sample CSV``, ``chat log``)."""
    records: list[dict[str, Any]]


def convert(path: str | Path, task: str | None = None, progress: bool = False) -> Conversion:
    """The generic trace records of a file in one of the shapes above; ``task`` names the
    task of every record (needed where the file names none)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "expected a file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Conversion("per-sample CSV", _from_csv(path, task, progress))
    if suffix not in (".json", ".jsonl"):
        raise InputError(path, "expected a .csv, .json or .jsonl file")
    first = next(iter(_items(path)), None)
    if first is None:
        raise InputError(path, "holds no record")
    keys = set(first[2])
    if "resps" in keys and suffix == ".jsonl":
        return Conversion("lm-eval samples", _from_lm_eval(path, task))
    if "generated_text" in keys:
        return Conversion("generations", _from_items(path, task, progress, _generation))
    if keys & {"choices", "response", "messages"}:
        return Conversion("chat log", _from_items(path, task, progress, _chat))
    if "task" in keys and keys & {"completion", "counts"}:
        raise InputError(path, "holds generic trace records already: give it to the verbs as it is")
    raise InputError(
        path,
        f"unknown shape (first record's fields: {sorted(keys)[:8]}); expected lm-eval samples (resps), "
        "generations (generated_text), a chat log (choices, response or messages) or a per-sample .csv",
    )


def write_traces(records: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Write records as JSON Lines to ``path`` (``-``: stdout; see ``output_file``)."""
    with output_file(path) as handle:
        jsonlines.Writer(handle).write_all(records)


def _record(task: str, doc_id: Any, repeat: int = 0, **fields: Any) -> dict[str, Any]:
    return {"task": task, "doc_id": doc_id, "repeat": repeat, **{k: v for k, v in fields.items() if v is not None}}


def _no_task(path: Path) -> OptionError:
    return OptionError("task", f"{path} names no task: give one (runs pair by task and doc_id), e.g. MATH-500")


def _items(path: Path):
    """(line or None, index, object): JSON Lines records, or the objects of a JSON list."""
    if path.suffix.lower() == ".jsonl":
        for index, (line, record) in enumerate(numbered_records(path)):
            yield line, index, record
        return
    value = read_json(path)
    if not isinstance(value, list):
        raise InputError(path, "expected a JSON list of records (or JSON Lines)")
    for index, record in enumerate(value):
        if not isinstance(record, dict):
            raise InputError(path, "expected a JSON object", field=f"[{index}]")
        yield None, index, record


def _from_items(path: Path, task: str | None, progress: bool, one) -> list[dict[str, Any]]:
    records = []
    items = tqdm(_items(path), desc=f"converting {path.name}", unit="record", disable=not progress, delay=1)
    for line, index, item in items:

        def fail(field: str, message: str) -> InputError:
            return InputError(path, message, line, field if line is not None else f"[{index}].{field}")

        name = task or item.get("task")
        if not name:
            raise _no_task(path)
        records.extend(one(item, index, str(name), fail))
    _check_unique(records, path)
    return records


def _generation(item: dict, index: int, task: str, fail) -> list[dict[str, Any]]:
    """``{full_prompt, generated_text, gold, metrics}``: the item's position is its doc_id; a
    list of texts is one repeat each. ``metrics`` are not copied: qr-eval grades ``gold``."""
    texts = item["generated_text"]
    texts = texts if isinstance(texts, list) else [texts]
    if not texts or not all(isinstance(text, str) for text in texts):
        raise fail("generated_text", "expected a string or a list of strings")
    return [
        _record(task, item.get("doc_id", index), repeat, prompt=item.get("full_prompt"), completion=text,
                gold=item.get("gold"))
        for repeat, text in enumerate(texts)
    ]


def _chat(item: dict, index: int, task: str, fail) -> list[dict[str, Any]]:
    """A chat completion (``choices``), a logged ``response`` or a Batch API output line
    (``response.body``), or a conversation (``messages``, the last assistant message)."""
    body = item.get("response", item)
    if isinstance(body, dict) and isinstance(body.get("body"), dict):
        body = body["body"]
    if isinstance(body, dict) and "choices" in body:
        choices = body["choices"]
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise fail("choices", "expected a non-empty list of objects")
        replies = [(c.get("message"), c.get("finish_reason")) for c in choices]
    elif isinstance(item.get("messages"), list):
        said = [m for m in item["messages"] if isinstance(m, dict) and m.get("role") == "assistant"]
        if not said:
            raise fail("messages", "no assistant message")
        replies = [(said[-1], item.get("finish_reason"))]
    else:
        raise fail("choices", "missing (expected a chat completion, response.body or messages)")
    doc_id = item.get("doc_id", item.get("custom_id", index))
    return [
        _record(task, doc_id, repeat, completion=_chat_text(message, fail), gold=item.get("gold"),
                correct=item.get("correct"), finish_reason=finish)
        for repeat, (message, finish) in enumerate(replies)
    ]


def _chat_text(message: Any, fail) -> str:
    """The completion of a chat message: ``<think>`` reasoning ``</think>`` answer. No
    ``content`` (null) means the reasoning never closed (the budget ran out inside it); no
    ``reasoning_content`` keeps ``content`` as written when it holds the closing tag itself."""
    if not isinstance(message, dict):
        raise fail("message", "expected an object")
    reasoning = next((message[k] for k in ("reasoning_content", "reasoning") if isinstance(message.get(k), str)), None)
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if content is not None and not isinstance(content, str):
        raise fail("content", "expected a string, a list of text parts or null")
    if reasoning is None and content is None:
        raise fail("content", "no content and no reasoning_content")
    opening, closing = DEFAULT_PARAMS.think_open, DEFAULT_PARAMS.think_close
    if reasoning is None and closing in content:
        return content
    if content is None:
        return f"{opening}\n{reasoning}"
    return f"{opening}\n{reasoning or ''}\n{closing}\n\n{content}"


def _from_lm_eval(path: Path, task: str | None) -> list[dict[str, Any]]:
    """lm-eval's samples file: its task from the file name ``samples_<task>_<timestamp>.jsonl``."""
    name = path.stem.removeprefix(_LM_EVAL_NAME).rpartition("_")[0] if path.name.startswith(_LM_EVAL_NAME) else ""
    if not (task or name):
        raise _no_task(path)
    return [
        _record(s.task, s.doc_id, s.repeat, prompt=s.prompt, completion=s.completion, gold=s.gold,
                max_gen_toks=s.max_gen_toks)
        for s in lm_eval_samples(path, task or name, None)
    ]


def _from_csv(path: Path, task: str | None, progress: bool) -> list[dict[str, Any]]:
    """Per-sample CSV: id, word count (of the whole completion, as such files count; kept as
    ``completion_words``, never as reasoning ``words``) and correctness columns, the first of each in ``ID_COLUMNS``, ``WORD_COLUMNS``,
    ``CORRECT_COLUMNS``; the task from ``task``, else a ``task`` or ``dataset`` column."""
    records = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            groups = (ID_COLUMNS, WORD_COLUMNS, CORRECT_COLUMNS, TASK_COLUMNS)
            found = [next((c for c in group if c in columns), None) for group in groups]
            id_column, words_column, correct_column, task_column = found
            for group, column in zip(groups, (id_column, words_column)):
                if column is None:
                    raise InputError(path, f"no column {' or '.join(group)} (columns: {columns})", 1)
            for row in tqdm(reader, desc=f"converting {path.name}", unit="row", disable=not progress, delay=1):
                line = reader.line_num
                name = task or (row[task_column] if task_column else None)
                if not name:
                    raise _no_task(path)
                doc_id = (row[id_column] or "").strip()
                if not doc_id:
                    raise InputError(path, "missing", line, id_column)
                raw = (row[words_column] or "").strip()
                words = _count(raw)
                if words is None:
                    shown = raw if len(raw) <= 24 else f"{raw[:21]}..."
                    raise InputError(path, f"must be an integer in [0, 2**53], got {shown!r}", line, words_column)
                records.append(
                    _record(name, doc_id if _count(doc_id) is None else int(doc_id),
                            correct=_truth(row[correct_column], path, line, correct_column) if correct_column else None,
                            counts={"completion_words": words})
                )
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text (byte {error.start + 1})") from None
    except csv.Error as error:
        raise InputError(path, f"malformed CSV ({error})", reader.line_num) from None
    if not records:
        raise InputError(path, "holds no record")
    _check_unique(records, path)
    return records


def _count(text: str) -> int | None:
    """The count ``text`` writes in ASCII digits, if the run reader takes it (``is_count``)."""
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None
    return value if is_count(value) else None


def _truth(text: str | None, path: Path, line: int, column: str) -> bool | None:
    value = (text or "").strip().lower()
    if not value:
        return None
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise InputError(path, f"expected True/False, 1/0 or yes/no, got {text!r}", line, column)


def _check_unique(records: list[dict[str, Any]], path: Path) -> None:
    """Each sample once, with a document id the run reader takes (the same pairing key)."""
    first: dict[tuple[str, str, int], int] = {}
    for number, record in enumerate(records, 1):
        try:
            key = sample_key(record["task"], record["doc_id"], record["repeat"])
        except ValueError as error:
            raise InputError(path, f"record {number}: {error}", field="doc_id") from None
        if key in first:
            raise InputError(path, f"records {first[key]} and {number} are one sample (task, doc_id, repeat) {key}")
        first[key] = number
