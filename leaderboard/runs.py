"""Read lm-eval output directories and generic trace files into one ``Run`` model.

One reader, one model (DESIGN.md section 2): every command works on ``Run`` and never
parses files itself. Inputs are never modified. Bad input raises ``InputError`` naming the
file, the line and the field.

An lm-eval run may come with the adapters' side file (``qr_metrics.sidecar``): its exact
finish reasons, token counts, rescue events and timings are joined to the samples.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import jsonlines

from qr_metrics.counts import MAX_COUNT, is_count
from qr_metrics.documents import doc_id_key, doc_key
from qr_metrics.sidecar import SideRecord
from .units import COUNT_FIELDS

log = logging.getLogger(__name__)

HEADER_FIELDS = ("name", "model", "precision", "bits", "tokenizer", "speedup")
RUN_JSON = "run.json"
"""Run metadata (``HEADER_FIELDS``): beside ``traces.jsonl`` or ``results_*.json``, or at
the root of an lm-eval ``--output_path`` (the nearer one wins)."""
_RESULTS = re.compile(r"^results_(?P<stamp>.+)\.json$")
SIDE_FILE = "qr_sidecar.jsonl"
"""The side file's default name, looked for beside the run (see ``_side_file``)."""


class InputError(ValueError):
    """Bad input, reported as one line naming file, line and field (exit code 2)."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, field: str | None = None):
        where = f"{path}" + (f":{line}" if line is not None else "")
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {message}")


@dataclass(frozen=True)
class Sample:
    """One generation: (task, doc_id, repeat) is its key across runs."""

    task: str
    doc_id: Any
    repeat: int = 0
    completion: str | None = None
    prompt: str | None = None
    gold: Any = None
    correct: bool | None = None
    finish_reason: str | None = None
    max_gen_toks: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    doc_key: str | None = None
    """The logged lm-eval document, canonically serialised (see ``doc_key``)."""
    prompt_hash: str | None = None
    """lm-eval's logged ``prompt_hash``: what a side-file record must match."""
    side: SideRecord | None = None
    """The adapters' side-file record, when the run has one (its counts are exact)."""

    @property
    def key(self) -> tuple[str, str, int]:
        """``doc_id`` as ``doc_id_key`` writes it: ``1``, ``1.0`` and ``"1"`` pair."""
        return (self.task, doc_id_key(self.doc_id), self.repeat)


@dataclass
class Run:
    """Samples plus what is known about the model that produced them."""

    name: str
    source: Path
    samples: list[Sample]
    model: str | None = None
    precision: str | None = None
    bits: float | None = None
    tokenizer: str | None = None
    speedup: float | None = None
    """Per-token decoding speedup over the full-precision model, as run.json gives it (the
    leaderboard measures one from ``decode_s_per_token`` when none is given)."""
    generation: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per task: the generation settings the run used (lm-eval runs only)."""
    decode_s_per_token: dict[str, float] = field(default_factory=dict)
    """Measured seconds per decoding step per model (``lowbit``, ``reference``), from the
    side file: the token-weighted mean over its records."""
    device: str | None = None
    """Where the run was evaluated, so where its side file's timings were taken, as lm-eval's
    results say: its ``device`` and the GPU or CPU model of its environment report
    (``cuda:0: NVIDIA H100 80GB HBM3``, ``cpu: AMD EPYC``), or a served model's address
    (``server http://...``); None when they do not say."""
    timestamp: str | None = None
    """The lm-eval run's timestamp (of ``results_<timestamp>.json``)."""

    @property
    def tasks(self) -> list[str]:
        return sorted({s.task for s in self.samples})


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
        return _read_traces(path, {})
    if path.is_file() and _RESULTS.match(path.name):
        return _read_lm_eval(path)
    if path.is_dir() and (path / "traces.jsonl").exists():
        return _read_traces(path / "traces.jsonl", _read_header(path / RUN_JSON))
    if path.is_dir():
        stamps = (timestamp,) if isinstance(timestamp, str) else tuple(timestamp or ())
        return _read_lm_eval(_pick_results(path, stamps), root=path)
    raise InputError(path, "expected a .jsonl trace file, a results_*.json file or a run directory")


def read_json(path: Path) -> Any:
    """The JSON value a file holds; text that is not UTF-8 JSON is an input error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text (byte {error.start + 1})") from None
    except json.JSONDecodeError as error:
        raise InputError(path, f"malformed JSON ({error.msg})", error.lineno) from None


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object a file holds; anything else is an input error."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise InputError(path, "expected a JSON object")
    return value


def _read_header(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    header = _json_object(path)
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


def _read_traces(path: Path, header: dict[str, Any]) -> Run:
    samples, lines = [], []
    for line_no, record in _records(path):
        if "task" not in record and "resps" in record:  # lm-eval's own log, given alone
            raise InputError(
                path, "missing: this looks like lm-eval's samples_*.jsonl; pass the run directory that holds it "
                "and its results_*.json instead", line_no, "task",
            )
        for required in ("task", "doc_id"):
            if record.get(required) in (None, ""):
                raise InputError(path, "missing", line_no, required)
        _check_doc_id(record, path, line_no)
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
                repeat=_int_field(record, "repeat", path, line_no, default=0),
                completion=completion,
                prompt=record.get("prompt"),
                gold=record.get("gold"),
                correct=_bool_field(record, "correct", path, line_no),
                finish_reason=record.get("finish_reason"),
                max_gen_toks=_int_field(record, "max_gen_toks", path, line_no, default=None),
                counts=counts,
            )
        )
        lines.append(line_no)
    _check_samples(samples, lines, path)
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


def _records(path: Path):
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


def _check_doc_id(record: dict, path: Path, line: int) -> None:
    try:
        doc_id_key(record["doc_id"])
    except ValueError as error:
        raise InputError(path, str(error), line, "doc_id") from None


def _int_field(record: dict, name: str, path: Path, line: int, default):
    value = record.get(name, default)
    if value is None:
        return default
    if not is_count(value):
        raise InputError(path, "must be an integer in [0, 2**53]", line, name)
    return value


def _bool_field(record: dict, name: str, path: Path, line: int) -> bool | None:
    value = record.get(name)
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise InputError(path, "must be true, false or null", line, name)


def _check_samples(samples: list[Sample], lines: list[int], path: Path) -> None:
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


def _pick_results(directory: Path, stamps: tuple[str, ...]) -> Path:
    found = sorted(p for p in directory.rglob("results_*.json") if _RESULTS.match(p.name))
    if not found:
        raise InputError(directory, "no traces.jsonl and no lm-eval results_*.json inside")
    if stamps and len(found) > 1:
        chosen = [p for p in found if _RESULTS.match(p.name)["stamp"] in stamps]
        if not chosen:
            listing = ", ".join(_RESULTS.match(p.name)["stamp"] for p in found)
            raise InputError(directory, f"no run with timestamp {' or '.join(map(repr, stamps))}; found: {listing}")
        found = chosen
    if len(found) > 1:
        listing = ", ".join(str(p.relative_to(directory)) for p in found)
        raise InputError(
            directory,
            f"holds {len(found)} lm-eval runs ({listing}); pass one results_*.json file or --timestamp",
        )
    return found[0]


def _read_lm_eval(results_path: Path, root: Path | None = None) -> Run:
    """An lm-eval run; ``root``: the directory it was found in (lm-eval's ``--output_path``)."""
    results = _json_object(results_path)
    stamp = _RESULTS.match(results_path.name)["stamp"]
    configs = _object_field(results, "configs", results_path)
    model_args = _model_args(_object_field(results, "config", results_path).get("model_args"))
    samples: list[Sample] = []
    generation: dict[str, dict[str, Any]] = {}
    for task in configs:
        config = _object_field(configs, task, results_path, f"configs.{task}")
        generation[task] = dict(_object_field(config, "generation_kwargs", results_path, f"configs.{task}.generation_kwargs"))
        budget = generation[task].get("max_gen_toks")
        if budget is not None and not is_count(budget):
            raise InputError(
                results_path, "must be an integer in [0, 2**53]", field=f"configs.{task}.generation_kwargs.max_gen_toks"
            )
        samples_path = results_path.parent / f"samples_{task}_{stamp}.jsonl"
        if not samples_path.exists():
            if task in (results.get("results") or {}) and "group" not in config:
                raise InputError(
                    samples_path, f"missing: run lm_eval with --log_samples to record task {task!r}'s samples"
                )
            continue
        samples.extend(_lm_eval_samples(samples_path, task, generation[task].get("max_gen_toks")))
    if not samples:
        raise InputError(results_path, "no task with logged samples")
    side_path = _side_file(results_path, model_args, root)
    if side_path is not None:
        samples = _join_side_file(side_path, samples)
    nearest = [d / RUN_JSON for d in (results_path.parent, root) if d is not None and (d / RUN_JSON).is_file()]
    header = _read_header(nearest[0]) if nearest else {}
    pretrained = model_args.get("pretrained") or results.get("model_name")
    return Run(
        name=header.get("name") or str(pretrained or results_path.parent.name),
        source=results_path,
        samples=samples,
        model=header.get("model") or (str(pretrained) if pretrained else None),
        precision=header.get("precision"),
        bits=header.get("bits"),
        tokenizer=header.get("tokenizer") or model_args.get("tokenizer") or model_args.get("pretrained"),
        speedup=header.get("speedup"),
        generation=generation,
        decode_s_per_token=_decode_s_per_token([s.side for s in samples if s.side is not None]),
        device=_device(results, model_args),
        timestamp=stamp,
    )


def _object_field(parent: dict, name: str, path: Path, field: str | None = None) -> dict[str, Any]:
    """``parent[name]``, an object (``{}`` when absent or null)."""
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(path, "expected a JSON object", field=field or name)
    return value


def _device(results: dict[str, Any], model_args: dict[str, Any]) -> str | None:
    """``Run.device`` from lm-eval's ``results_*.json``."""
    if model_args.get("base_url"):  # qr-completions, local-completions: timed through a server
        return f"server {model_args['base_url']}"
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    device = model_args.get("device") or config.get("device")
    device = str(device) if device else None
    info = results.get("pretty_env_info") if isinstance(results.get("pretty_env_info"), str) else ""
    cuda = re.search(r"^Is CUDA available: True", info, re.M) is not None
    gpu = re.search(r"^GPU models and configuration:\s*(?:GPU 0: )?(.*\S)", info, re.M)
    cpu = re.search(r"^Model name:\s*(.*\S)", info, re.M)
    on_gpu = device.startswith("cuda") if device else cuda
    if on_gpu and gpu and "Could not collect" not in gpu[1]:
        hardware = gpu[1]
    elif not on_gpu and cpu:
        hardware = cpu[1]
    else:
        hardware = None
    device = device or ("cuda" if on_gpu else "cpu" if cpu else None)
    if device is None:
        return None
    return f"{device}: {hardware}" if hardware else device


def _model_args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        from lm_eval.utils import simple_parse_args_string

        return simple_parse_args_string(raw)
    return {}


def _lm_eval_samples(path: Path, task: str, max_gen_toks: int | None) -> list[Sample]:
    samples, lines = [], []
    for line_no, record in _records(path):
        if "doc_id" not in record:
            raise InputError(path, "missing", line_no, "doc_id")
        _check_doc_id(record, path, line_no)
        responses = record.get("resps")
        if not isinstance(responses, list) or not responses:
            raise InputError(path, "missing or empty", line_no, "resps")
        prompt, budget = _request_of(record)
        # lm-eval logs ``[req.resps for req in requests]``: one generate_until request per
        # document, holding one response per repeat
        completions = [text for response in responses for text in (response if isinstance(response, list) else [response])]
        for repeat, completion in enumerate(completions):
            if not isinstance(completion, str):
                raise InputError(path, "expected generated text", line_no, "resps")
            samples.append(
                Sample(
                    task=task,
                    doc_id=record["doc_id"],
                    repeat=repeat,
                    completion=completion,
                    prompt=prompt,
                    gold=record.get("target"),
                    max_gen_toks=max_gen_toks if max_gen_toks is not None else budget,
                    doc_key=doc_key(record["doc"]) if "doc" in record else None,
                    prompt_hash=record.get("prompt_hash") or None,
                )
            )
            lines.append(line_no)
    _check_samples(samples, lines, path)
    return samples


def _request_of(record: dict) -> tuple[str | None, int | None]:
    """The prompt and the ``max_gen_toks`` of the document's first logged request (None
    where not logged)."""
    arguments = record.get("arguments")
    args: list = []
    if isinstance(arguments, dict):  # {"gen_args_0": {"arg_0": prompt, "arg_1": kwargs}}
        first = next(iter(arguments.values()), {})
        args = [first.get("arg_0"), first.get("arg_1")] if isinstance(first, dict) else []
    elif isinstance(arguments, list) and arguments and isinstance(arguments[0], list):
        args = arguments[0]
    budget = args[1].get("max_gen_toks") if len(args) > 1 and isinstance(args[1], dict) else None
    return (args[0] if args else None), (budget if is_count(budget) else None)


def _side_file(results_path: Path, model_args: dict[str, Any], root: Path | None = None) -> Path | None:
    """The run's side file. The one beside the run comes first, so that a run copied or
    moved reads its own: in the results' directory, then in ``root`` (the directory read,
    lm-eval's ``--output_path``), the name ``model_args`` gives (``sidecar=PATH``: as a
    relative path, then its file name), then ``qr_sidecar.jsonl``. Else the named path as
    given (relative to the current directory). A side file read from outside the run, or
    chosen over another one that ``sidecar=`` names, is said in one line on stderr; one named
    but found nowhere is a warning, and the run is read without it.
    """
    named = Path(str(model_args["sidecar"])) if model_args.get("sidecar") else None
    names = [SIDE_FILE]
    if named is not None:
        names[:0] = [named.name] if named.is_absolute() else [str(named), named.name]
    folders = dict.fromkeys(d for d in (results_path.parent, root) if d is not None)
    found = next((d / name for d in folders for name in dict.fromkeys(names) if (d / name).is_file()), None)
    if found is not None:
        if named is not None and named.is_file() and not named.samefile(found):
            log.warning("%s: reading the side file beside the run, %s, not %s (model_args sidecar=)",
                        results_path, found, named)
        return found
    if named is None:
        return None
    if named.is_file():
        log.warning("%s: reading the side file %s (model_args sidecar=): none beside the run", results_path, named)
        return named
    log.warning("side file %s (model_args sidecar=) not found: reading %s without it", named, results_path)
    return None


def _join_side_file(path: Path, samples: list[Sample]) -> list[Sample]:
    """Samples with their side-file record, keyed by (task, doc_id, repeat); the record's
    final finish reason and budget replace what lm-eval's log implies.

    A record whose prompt hash differs from the logged sample's is a stale side file (an
    input error); records with no sample are counted in one warning.
    """
    index = {sample.key: i for i, sample in enumerate(samples)}
    joined = list(samples)
    unmatched = 0
    for line_no, obj in _records(path):
        try:
            record = SideRecord.from_json(obj)
        except ValueError as error:
            name, _, message = str(error).partition(": ")
            raise InputError(path, message, line_no, name) from None
        i = index.get(record.key)
        if i is None:
            unmatched += 1
            continue
        sample = joined[i]
        if sample.side is not None:
            raise InputError(path, f"a second record for sample {record.key}", line_no, "doc_id")
        if sample.prompt_hash and record.prompt_hash and sample.prompt_hash != record.prompt_hash:
            raise InputError(path, "differs from the logged sample's: a stale side file?", line_no, "prompt_hash")
        joined[i] = replace(
            sample, finish_reason=record.final_finish_reason, max_gen_toks=record.max_gen_toks, side=record
        )
    if unmatched:
        log.warning("%s: %d record(s) match no logged sample and are ignored", path, unmatched)
    return joined


def _decode_s_per_token(records: list[SideRecord]) -> dict[str, float]:
    """Per model: seconds per token over all records, each weighted by the tokens it decoded."""
    seconds: dict[str, float] = {}
    tokens: dict[str, int] = {}
    for record in records:
        for model, per_token in record.decode_s_per_token.items():
            n = record.tokens.get(model, 0)
            if per_token is not None and n:
                seconds[model] = seconds.get(model, 0.0) + per_token * n
                tokens[model] = tokens.get(model, 0) + n
    return {model: seconds[model] / tokens[model] for model in tokens}
