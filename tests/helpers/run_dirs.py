"""Run directories the tests read.

``write_run`` writes a generic traces directory (traces.jsonl + run.json);
``fixture_runs`` converts the real DeepSeek-R1-Distill-Qwen-1.5B MATH-500 per-sample files
into six such directories (bf16 is the full-precision baseline); ``make_lm_eval_run`` writes
a one-sample lm-eval output directory (results + samples file).
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.fixture_data import per_sample_to_traces

MODEL = "DeepSeek-R1-Distill-Qwen-1.5B"
FIXTURE_BITS = {
    "bf16": 16,
    "awq-w4g128": 4,
    "awq-w3g128": 3,
    "gptq-w4g128": 4,
    "gptq-w3g128": 3,
    "kvquant_star-kv4": 16,  # weights stay 16-bit; only the KV cache is 4-bit
}
QUANTIZED = [name for name in FIXTURE_BITS if name != "bf16"]


def write_run(directory: Path, records: list[dict], **header) -> Path:
    """A generic traces directory: ``traces.jsonl`` from ``records``, ``run.json`` from ``header``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "run.json").write_text(json.dumps(header))
    return directory


def word_records(lengths, correct, task: str = "t", repeats: int = 1) -> list[dict]:
    """Counts-only records: item i, repeat r has ``lengths[i][r]`` words (or ``lengths[i]``)."""
    records = []
    for i, (length, right) in enumerate(zip(lengths, correct)):
        for r in range(repeats):
            n = length[r] if isinstance(length, (list, tuple)) else length
            ok = right[r] if isinstance(right, (list, tuple)) else right
            records.append({"task": task, "doc_id": i, "repeat": r, "correct": ok, "counts": {"words": n}})
    return records


def fixture_runs(fixtures_dir: Path, root: Path) -> dict[str, Path]:
    """The six MATH-500 configurations as run directories, keyed by configuration name."""
    runs = {}
    for name, bits in FIXTURE_BITS.items():
        directory = root / name
        if not (directory / "run.json").exists():
            per_sample_to_traces(fixtures_dir / "per_sample" / f"{name}_MATH-500.csv", directory / "traces.jsonl", "MATH-500")
            (directory / "run.json").write_text(json.dumps({"name": name, "model": MODEL, "precision": name, "bits": bits}))
        runs[name] = directory
    return runs


def make_lm_eval_run(directory, stamp, task="qr_math", responses=(["a</think>\\boxed{2}"],)):
    directory.mkdir(parents=True, exist_ok=True)
    results = {
        "results": {task: {"acc,none": 1.0}},
        "configs": {task: {"generation_kwargs": {"max_gen_toks": 64, "until": []}}},
        "config": {"model": "hf", "model_args": "pretrained=/models/tiny,dtype=float32"},
    }
    (directory / f"results_{stamp}.json").write_text(json.dumps(results))
    sample = {
        "doc_id": 0,
        "doc": {"problem": "1+1"},
        "target": "2",
        "arguments": {"gen_args_0": {"arg_0": "<|Assistant|><think>\n", "arg_1": {}}},
        # lm-eval 0.4.13 (evaluator.py) logs ``[req.resps for req in requests]``: one
        # generate_until request per document, its ``resps`` one text per repeat
        "resps": [[r[0] for r in responses]],
        "filtered_resps": [responses[0][0]],
    }
    (directory / f"samples_{task}_{stamp}.jsonl").write_text(json.dumps(sample) + "\n")
