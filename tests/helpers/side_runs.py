"""An lm-eval output directory of two tasks and the adapters' side file beside it, for the
tests of the run reader's side-file join and of the leaderboard's measured speedups.

``write_lm_eval_run`` writes lm-eval's shape (``results_<stamp>.json``, one samples file per
task of ``COMPLETIONS``); ``side`` makes one side-file record, ``write_side`` writes them
(``RECORDS`` by default)."""

from __future__ import annotations

import json

from qr_metrics.documents import prompt_hash

STAMP = "2026-11-22T10-00-00.1"
MAX_GEN_TOKS = 64
COMPLETIONS = {
    "qr_aime": ["Two halves.</think>\\boxed{1}", "Add them: 3.</think>\\boxed{3}"],
    "qr_math": ["One and one.</think>\\boxed{2}", "Wait, 2. Wait, 2.</think>\\boxed{2}", "Still thinking about"],
}


def prompt(task, doc_id):
    return f"Problem {doc_id} of {task}\n<|Assistant|><think>\n"


def write_lm_eval_run(directory, model_args="pretrained=/models/tiny", name=None, **header):
    """lm-eval's output shape: results_<stamp>.json and one samples file per task."""
    directory.mkdir(parents=True, exist_ok=True)
    results = {
        "results": {task: {"acc,none": 1.0} for task in COMPLETIONS},
        "configs": {task: {"generation_kwargs": {"max_gen_toks": MAX_GEN_TOKS, "until": []}} for task in COMPLETIONS},
        "config": {"model": "qr-hf", "model_args": model_args},
    }
    (directory / f"results_{STAMP}.json").write_text(json.dumps(results))
    for task, completions in COMPLETIONS.items():
        lines = [
            json.dumps({
                "doc_id": i,
                "doc": {"problem": f"{task} {i}"},
                "target": "2",
                "arguments": {"gen_args_0": {"arg_0": prompt(task, i), "arg_1": {}}},
                "resps": [[completion]],
                "filtered_resps": [completion],
                "prompt_hash": prompt_hash(prompt(task, i)),
            })
            for i, completion in enumerate(completions)
        ]
        (directory / f"samples_{task}_{STAMP}.jsonl").write_text("\n".join(lines) + "\n")
    if name or header:
        (directory / "run.json").write_text(json.dumps({"name": name, **header}))
    return directory


def side(task, doc_id, **fields):
    record = {
        "task": task, "doc_id": doc_id, "repeat": 0, "prompt_hash": prompt_hash(prompt(task, doc_id)),
        "max_gen_toks": MAX_GEN_TOKS, "completion_tokens": 30, "reasoning_tokens": 20,
        "tokens": {"lowbit": 30}, "plan_tokens": 0, "finish_reason": "stop", "final_finish_reason": "stop",
        "rescue": [], "wall_s": {}, "decode_s_per_token": {"lowbit": 0.01},
    }
    return {**record, **fields}


def commit(trigger="loop", position=40):
    return {"kind": "commit", "trigger": trigger, "position": position}


def fallback(trigger="loop", position=10):
    return {"kind": "fallback", "trigger": trigger, "position": position}


RECORDS = [
    side("qr_math", 0),
    # a loop cut at token 40 and committed: 64 - 45 = 19 tokens saved
    side("qr_math", 1, completion_tokens=45, reasoning_tokens=40, tokens={"lowbit": 45}, finish_reason="loop",
         rescue=[commit()], decode_s_per_token={"lowbit": 0.02}),
    # the budget ran out in reasoning: final finish reason length, nothing rescued
    side("qr_math", 2, completion_tokens=64, reasoning_tokens=None, tokens={"lowbit": 64}, finish_reason="length",
         final_finish_reason="length", decode_s_per_token={"lowbit": 0.03, "reference": None}),
    # a loop handed to the reference model: 64 - 50 = 14 saved
    side("qr_aime", 0, completion_tokens=50, reasoning_tokens=45, tokens={"lowbit": 10, "reference": 40},
         finish_reason="loop", rescue=[fallback()], decode_s_per_token={"lowbit": 0.015, "reference": 0.05}),
    # a fallback on a loop, then a commit at the budget: the answer runs past it, max(0, 64 - 70) = 0 saved
    side("qr_aime", 1, completion_tokens=70, reasoning_tokens=64, tokens={"lowbit": 30, "reference": 20},
         finish_reason="length", rescue=[fallback(), commit("length", 64)],
         decode_s_per_token={"lowbit": 0.012, "reference": 0.07}),
    side("qr_math", 99),  # no such sample: ignored, with a warning
]


def write_side(path, records=RECORDS):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
