"""qr_math end to end through lm-eval with a tiny local model on local data (qr_data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lm_eval_tasks import TASKS_DIR
from qr_leaderboard.demo.story import evaluate
from qr_metrics.pathologies import PATHOLOGIES

METRICS = ("acc", "reasoning_tokens", "answer_tokens", "completion_tokens", "words", "steps", *PATHOLOGIES)
MAX_GEN_TOKS = 24

PROBLEMS = [
    {"problem": "What is $1+1$?", "answer": "2"},
    {"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}"},
    {"problem": "What is $3 \\cdot 5$?", "answer": "15"},
]


def evaluate_qr_math(model_dir, data, output=None, max_gen_toks=MAX_GEN_TOKS, metadata=None):
    """Run qr_math greedily with ``--model hf`` on a local copy of its data (``qr_data``)."""
    return evaluate(
        "hf",
        {"pretrained": str(model_dir), "dtype": "float32", "device": "cpu"},
        "qr_math",
        output,
        {"qr_data": str(data), "pretrained": str(model_dir), **(metadata or {})},
        gen_kwargs={"max_gen_toks": max_gen_toks, "do_sample": False},
    )


@pytest.fixture(scope="module")
def math_copy(tmp_path_factory):
    """A local copy of MATH-500 with the hub dataset's columns."""
    path = tmp_path_factory.mktemp("data") / "math500.jsonl"
    rows = [
        {**p, "solution": "", "subject": "Algebra", "level": 1, "unique_id": f"test/{i}.json"}
        for i, p in enumerate(PROBLEMS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_python_api(tiny_model_dir, math_copy):
    out = evaluate_qr_math(tiny_model_dir, math_copy, max_gen_toks=MAX_GEN_TOKS)
    table = out["results"]["qr_math"]
    samples = out["samples"]["qr_math"]
    for metric in METRICS:  # every metric aggregates by mean; lm-eval's stderr of a mean
        values = [sample[metric] for sample in samples]
        assert table[f"{metric},none"] == pytest.approx(np.mean(values)), metric
        assert table[f"{metric}_stderr,none"] == pytest.approx(np.std(values, ddof=1) / np.sqrt(len(values))), metric
    assert len(samples) == len(PROBLEMS)
    for sample in samples:
        assert set(METRICS) <= set(sample)
        # Random weights never emit eos nor </think>: every trace runs out of budget unclosed.
        assert sample["unclosed"] == 1.0 and sample["acc"] == 0.0 and sample["no_answer"] == 1.0
        assert sample["completion_tokens"] >= MAX_GEN_TOKS - 2
        assert sample["reasoning_tokens"] == sample["completion_tokens"]
    assert table["acc,none"] == 0.0
    assert table["unclosed,none"] == 1.0
    assert out["configs"]["qr_math"]["generation_kwargs"]["until"] == []


def test_lm_eval_cli_then_analyze(tiny_model_dir, math_copy, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "lm_eval",
        "--model", "hf",
        "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
        "--device", "cpu",
        "--tasks", "qr_math",
        "--include_path", str(TASKS_DIR),
        "--apply_chat_template",
        "--gen_kwargs", f"max_gen_toks={MAX_GEN_TOKS},do_sample=False",
        "--metadata", json.dumps({"qr_data": str(math_copy)}),
        "--log_samples",
        "--output_path", str(tmp_path / "out"),
        "--batch_size", "4",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for metric in ("acc", "reasoning_tokens", "loop", "unclosed", "budget_exhausted"):
        assert metric in done.stdout, f"{metric} missing from lm-eval's table"

    analyzed = subprocess.run(
        [sys.executable, "-m", "qr_leaderboard.cli", "analyze", str(tmp_path / "out"), "--json", "--quiet",
         "--per-sample", str(tmp_path / "per_sample.jsonl")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    summary = json.loads(analyzed.stdout)["qr_math"]
    assert summary["n"] == len(PROBLEMS)
    assert summary["accuracy"] == 0.0
    assert summary["counts"]["unclosed"] == len(PROBLEMS)
    records = [json.loads(line) for line in (tmp_path / "per_sample.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in records] == [0, 1, 2]
    assert all(r["flags"]["unclosed"] for r in records)
    # The offline analysis and the in-harness metrics are the same code: same figures.
    (logged_path,) = (tmp_path / "out").rglob("samples_qr_math_*.jsonl")
    logged = {json.loads(line)["doc_id"]: json.loads(line) for line in logged_path.read_text().splitlines()}
    for r in records:
        for unit in ("reasoning_tokens", "completion_tokens", "words", "steps"):
            assert r["counts"][unit] == logged[r["doc_id"]][unit]
        assert r["flags"]["budget_exhausted"] == bool(logged[r["doc_id"]]["budget_exhausted"])


def test_in_harness_inflation_ratio_matches_compare(tiny_model_dir, math_copy, tmp_path):
    """--metadata qr_baseline: lm-eval's table shows the ratio that qr-eval compare computes."""
    from qr_leaderboard.compare import compare_runs
    from qr_leaderboard.options import Options
    from qr_metrics.runs import read_run

    evaluate_qr_math(tiny_model_dir, math_copy, tmp_path / "baseline", max_gen_toks=8)
    candidate = evaluate_qr_math(
        tiny_model_dir, math_copy, tmp_path / "candidate", max_gen_toks=24,
        metadata={"qr_baseline": str(tmp_path / "baseline")},
    )  # fmt: skip
    table = candidate["results"]["qr_math"]
    ratio, low, high = (table[f"{m},none"] for m in ("inflation_ratio", "inflation_ratio_low", "inflation_ratio_high"))
    assert ratio > 1.5  # three times the budget, every trace runs to it
    assert low <= ratio <= high
    offline = compare_runs(read_run(tmp_path / "baseline"), read_run(tmp_path / "candidate"), Options(progress=False)).as_json()
    assert offline["overall"]["ratio_of_means"]["estimate"] == pytest.approx(ratio)
    assert offline["overall"]["ratio_of_means"]["low"] == pytest.approx(low)
    assert offline["overall"]["ratio_of_means"]["high"] == pytest.approx(high)
