"""lm-eval output directories (``results_*.json`` + ``samples_*.jsonl``), with the adapters'
side file joined to their samples."""

from __future__ import annotations

import logging
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..counts import is_count
from ..documents import doc_key
from ..params import MeasureParams
from ..sidecar import RecordError, SideRecord
from .model import InputError, Run, Sample
from .records import check_doc_id, check_samples, json_object, numbered_records
from .traces import RUN_JSON, read_header

log = logging.getLogger(__name__)

RESULTS_FILE = re.compile(r"^results_(?P<stamp>.+)\.json$")

SIDE_FILE = "qr_sidecar.jsonl"
"""The side file's default name, looked for beside the run (see ``_side_file``)."""


def pick_results(directory: Path, stamps: tuple[str, ...]) -> Path:
    found = sorted(p for p in directory.rglob("results_*.json") if RESULTS_FILE.match(p.name))
    if not found:
        raise InputError(directory, "no traces.jsonl and no lm-eval results_*.json inside")
    if stamps and len(found) > 1:
        chosen = [p for p in found if RESULTS_FILE.match(p.name)["stamp"] in stamps]
        if not chosen:
            listing = ", ".join(RESULTS_FILE.match(p.name)["stamp"] for p in found)
            raise InputError(directory, f"no run with timestamp {' or '.join(map(repr, stamps))}; found: {listing}")
        found = chosen
    if len(found) > 1:
        listing = ", ".join(str(p.relative_to(directory)) for p in found)
        raise InputError(
            directory,
            f"holds {len(found)} lm-eval runs ({listing}); pass one results_*.json file or --timestamp",
        )
    return found[0]


def read_lm_eval(results_path: Path, root: Path | None = None) -> Run:
    """An lm-eval run; ``root``: the directory it was found in (lm-eval's ``--output_path``)."""
    results = json_object(results_path)
    stamp = RESULTS_FILE.match(results_path.name)["stamp"]
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
        samples.extend(lm_eval_samples(samples_path, task, generation[task].get("max_gen_toks")))
    if not samples:
        raise InputError(results_path, "no task with logged samples")
    side_path = _side_file(results_path, model_args, root)
    if side_path is not None:
        samples = _join_side_file(side_path, samples)
    nearest = [d / RUN_JSON for d in (results_path.parent, root) if d is not None and (d / RUN_JSON).is_file()]
    header = read_header(nearest[0]) if nearest else {}
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
        measure_params=_measure_params(configs, results_path),
    )


def _measure_params(configs: dict[str, Any], path: Path) -> dict[str, Any]:
    """The ``MeasureParams`` keys in the tasks' logged ``metadata`` (lm-eval's ``--metadata``
    reaches every task); two tasks that logged different values are an input error."""
    names = {f.name for f in fields(MeasureParams)}
    found: dict[str, Any] = {}
    for task, config in configs.items():
        metadata = config.get("metadata") if isinstance(config, dict) else None
        for name, value in (metadata or {}).items():
            if name not in names:
                continue
            if name in found and found[name] != value:
                raise InputError(path, f"tasks logged different values ({found[name]!r}, {value!r})",
                                 field=f"configs.{task}.metadata.{name}")
            found[name] = value
    return found


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


def lm_eval_samples(path: Path, task: str, max_gen_toks: int | None) -> list[Sample]:
    samples, lines = [], []
    for line_no, record in numbered_records(path):
        if "doc_id" not in record:
            raise InputError(path, "missing", line_no, "doc_id")
        check_doc_id(record, path, line_no)
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
    check_samples(samples, lines, path)
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
    for line_no, obj in numbered_records(path):
        try:
            record = SideRecord.from_json(obj)
        except RecordError as error:
            raise InputError(path, error.problem, line_no, error.field) from None
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
