"""``qr-eval demo``: the whole pipeline, offline, on the embedded default.

It builds a tiny random-weight model and an INT4 round-to-nearest copy of it, runs
``qr_math`` on both through lm-eval on eight embedded problems, then analyses and compares
the two runs as a user would with real checkpoints. A random model answers nothing and
runs every trace to its budget, so the figures show that the pipeline works, not how a
real model behaves.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from .analysis import measure_run, summarize
from .compare import compare_runs
from .report import analysis_table, comparison_table
from .runs import read_run

PROBLEMS = Path(__file__).resolve().parent / "demo_problems.jsonl"
MAX_GEN_TOKS = 48


def quantize_rtn(source: Path, target: Path, bits: int = 4, group_size: int = 32) -> Path:
    """Copy a checkpoint with its linear weights rounded to ``bits`` (``qr_adapters.quant`` RTN:
    asymmetric, per group of ``group_size``; embeddings and the output head stay full precision)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qr_adapters.quant import RTNSpec, apply_rtn

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    apply_rtn(model, RTNSpec(bits=bits, group_size=group_size))
    model.save_pretrained(target, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def evaluate_qr_math(
    model_dir: Path,
    data: Path,
    output: Path | None = None,
    max_gen_toks: int = MAX_GEN_TOKS,
    metadata: dict | None = None,
) -> dict:
    """Run qr_math greedily through lm-eval's Python API on a local copy of its data; with
    ``output``, save the run there as ``lm_eval --output_path --log_samples`` would."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    from lm_eval_tasks import TASKS_DIR

    tracker = EvaluationTracker(output_path=str(output)) if output is not None else None
    manager = TaskManager(
        include_defaults=False,
        include_path=str(TASKS_DIR),
        metadata={"qr_data": str(data), "pretrained": str(model_dir), **(metadata or {})},
    )
    results = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float32", "device": "cpu"},
        tasks=["qr_math"],
        task_manager=manager,
        apply_chat_template=True,
        gen_kwargs={"max_gen_toks": max_gen_toks, "do_sample": False},
        log_samples=True,
        batch_size=8,
        evaluation_tracker=tracker,
    )
    if tracker is not None:
        tracker.save_results_aggregated(results=results, samples=results["samples"])
        tracker.save_results_samples(task_name="qr_math", samples=results["samples"]["qr_math"])
    return results


@contextlib.contextmanager
def _silenced(quiet: bool):
    """With ``quiet``, nothing reaches stderr: lm-eval's, transformers' and datasets' progress
    bars, logs and warnings, and what lm-eval's ``git describe`` prints outside a checkout
    (a subprocess, so file descriptor 2 is redirected too, not only ``sys.stderr``)."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_demo(out: Path, progress: bool = True) -> None:
    """Write models, data and two lm-eval runs under ``out``, and print what qr-eval sees.

    ``out`` is made absolute first: the runs name their models (so their tokenizers) by
    path, and must read the same from any directory. ``progress=False`` is ``--quiet``.
    """
    from qr_adapters.tiny_model import build_tiny_model

    out = out.resolve()
    if out.exists():
        shutil.rmtree(out / "runs", ignore_errors=True)
    runs = {}
    with _silenced(not progress):
        full = build_tiny_model(out / "models" / "tiny-fp32")
        int4 = quantize_rtn(full, out / "models" / "tiny-int4-rtn")
        data = out / "data" / "qr_math.jsonl"
        data.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROBLEMS, data)
        for name, model_dir, precision, bits in (("fp32", full, "fp32", 32), ("int4", int4, "int4-rtn", 4)):
            runs[name] = out / "runs" / name
            evaluate_qr_math(model_dir, data, runs[name])
            (results_file,) = runs[name].rglob("results_*.json")
            header = {"name": f"tiny-{name}", "model": "tiny-demo", "precision": precision, "bits": bits}
            (results_file.parent / "run.json").write_text(json.dumps(header))

    candidate = read_run(runs["int4"])
    print(analysis_table(candidate.name, summarize(measure_run(candidate, progress=progress))))
    print()
    print(comparison_table(compare_runs(read_run(runs["fp32"]), candidate, progress=progress)))
    print(
        f"\nThe runs are lm-eval output directories under {out / 'runs'}; try:\n"
        f"  qr-eval analyze {runs['int4']} --json\n"
        f"  qr-eval compare {runs['fp32']} {runs['int4']} --json\n"
        "(a random-weight model: the figures show the pipeline at work, not a real model)"
    )
