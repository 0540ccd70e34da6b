"""``qr-vllm``'s control logic, against a small in-test engine that honours vLLM's calls.

The engine (``fake_vllm``) runs the same rigged tiny models as the ``qr-hf`` tests, so a
rescue is checked at its exact token position, with and without the engine's own
``repetition_detection``, with two engines (low-bit and reference). The real vLLM path
needs CUDA: ``test_real_vllm`` runs only where vLLM and a GPU are present.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import jsonlines
import pytest
from fake_vllm import install
from lm_eval.api.instance import Instance
from pytest import MonkeyPatch
from test_qr_hf import (  # noqa: F401  (fixtures and texts shared with the qr-hf tests)
    ANSWER_PREFIX, BLOCK, CLOSE, EASY, NO_ANSWER_PREFIX, PLAN, REFERENCE_TAIL, STOP, STOPPED, ids, lowbit, reference,
    tok,
)

from qr_adapters.rescue import ModelArgumentError
from qr_metrics.sidecar import SideRecord

BUDGET = 160


@pytest.fixture(scope="module")
def fake_vllm():
    patch = MonkeyPatch()
    module = install(patch)
    yield module
    patch.undo()


@pytest.fixture(scope="module")
def model_dirs(tiny_model_dir, tmp_path_factory):
    """Two copies of the tiny checkpoint: paths the engines are built from (same tokenizer)."""
    root = tmp_path_factory.mktemp("vllm-models")
    return {name: shutil.copytree(tiny_model_dir, root / name) for name in ("lowbit", "reference")}


@pytest.fixture
def engines(fake_vllm, model_dirs, lowbit, reference, monkeypatch):
    """The rigged models behind the two paths; the list of engines the adapter builds."""
    monkeypatch.setattr(fake_vllm, "MODELS", {str(model_dirs["lowbit"]): lowbit, str(model_dirs["reference"]): reference})
    monkeypatch.setattr(fake_vllm, "ENGINES", [])
    return fake_vllm


def qr_vllm(model_dirs, tmp_path, **args):
    from qr_adapters.vllm import QRVLLM

    return QRVLLM(pretrained=str(model_dirs["lowbit"]), batch_size=2, max_model_len=1024,
                  sidecar=str(tmp_path / "side.jsonl"), **args)


def generate(lm, questions, budget=BUDGET, until=()):
    requests = [
        Instance("generate_until", {"question": q},
                 (lm.apply_chat_template([{"role": "user", "content": q}]),
                  {"until": list(until), "max_gen_toks": budget, "do_sample": False}), 0, metadata=("qr_math", d, 1))
        for d, q in enumerate(questions)
    ]
    return lm.generate_until(requests)


def side(tmp_path):
    with jsonlines.open(tmp_path / "side.jsonl") as reader:
        return {r["doc_id"]: SideRecord.from_json(r) for r in reader}


def test_rescue_off_returns_what_plain_vllm_returns(fake_vllm, tiny_model_dir, tmp_path):
    from lm_eval.models.vllm_causallms import VLLM

    from qr_adapters.vllm import QRVLLM

    questions = ["What is 1+1?", "Find x if 2x=4."]
    plain = VLLM(pretrained=str(tiny_model_dir), batch_size=2, max_model_len=512)
    ours = QRVLLM(pretrained=str(tiny_model_dir), batch_size=2, max_model_len=512, sidecar=str(tmp_path / "side.jsonl"))
    assert generate(ours, questions, 40) == generate(plain, questions, 40)
    records = side(tmp_path)
    assert all(r.completion_tokens == r.tokens["lowbit"] == 40 and r.finish_reason == "length" for r in records.values())


@pytest.mark.parametrize("engine_detects", [True, False], ids=["repetition_detection", "chunks"])
def test_commit_at_the_onset(engines, model_dirs, tok, tmp_path, monkeypatch, engine_detects):
    if not engine_detects:
        monkeypatch.delattr(sys.modules["vllm.sampling_params"], "RepetitionDetectionParams")
    lm = qr_vllm(model_dirs, tmp_path, rescue="commit", min_reasoning_tokens=0, chunk_tokens=8)
    (completion,) = generate(lm, ["LOOPANSWER: what is 6*7?"])
    assert completion == ANSWER_PREFIX + CLOSE + "The final answer is $\\boxed{42}$."
    record = side(tmp_path)[0]
    (event,) = record.rescue
    assert (event.kind, event.trigger, event.position, event.answer) == ("commit", "loop", len(ids(tok, ANSWER_PREFIX)), "42")
    assert event.period == len(ids(tok, BLOCK)) and record.finish_reason == "loop"
    (engine,) = engines.ENGINES
    prompts, params = engine.calls[0]
    if engine_detects:  # one call: the engine stopped the loop itself
        assert len(engine.calls) == 1
        detection = params[0].repetition_detection
        assert (detection.min_pattern_size, detection.max_pattern_size, detection.min_count) == (4, 256, 3)
    else:  # token-prompt continuations of 8 ids, each holding everything generated before it
        assert len(engine.calls) > 2 and all(p.max_tokens <= 8 for _, ps in engine.calls for p in ps)
        second_prompt = engine.calls[1][0][0]
        assert second_prompt[: len(prompts[0])] == prompts[0] and len(second_prompt) == len(prompts[0]) + 8


def test_a_stop_sequence_split_between_chunks_ends_the_row(engines, model_dirs, tok, tmp_path, monkeypatch):
    """The engine looks for stops in each chunk's text: "Question:" begins in the first
    chunk of 8 ids and ends in the second, and the loop written after it is not rescued."""
    monkeypatch.delattr(sys.modules["vllm.sampling_params"], "RepetitionDetectionParams")
    lm = qr_vllm(model_dirs, tmp_path, rescue="commit", min_reasoning_tokens=0, chunk_tokens=8)
    assert len(ids(tok, STOPPED)) < 8 < len(ids(tok, STOPPED + STOP))
    (completion,) = generate(lm, ["STOPSTRING: what is 1+2?"], until=[STOP])
    assert completion == STOPPED
    record = side(tmp_path)[0]
    assert record.rescue == [] and record.finish_reason == "stop"
    assert record.tokens["lowbit"] == len(ids(tok, STOPPED + STOP))
    (engine,) = engines.ENGINES
    assert len(engine.calls) == 2


def test_commit_without_answer_and_fallback_with_two_engines(engines, model_dirs, tok, tmp_path):
    lm = qr_vllm(model_dirs, tmp_path, rescue="commit_then_fallback", reference=str(model_dirs["reference"]),
                 min_reasoning_tokens=0, reference_gpu_memory_utilization=0.3)
    with_answer, without = generate(lm, ["LOOPANSWER: what is 6*7?", "LOOPNONE: what is 2+3?"])
    assert with_answer.endswith("$\\boxed{42}$.") and without == NO_ANSWER_PREFIX + REFERENCE_TAIL
    lowbit_engine, reference_engine = engines.ENGINES
    assert reference_engine.model_path == str(model_dirs["reference"])
    assert reference_engine.kwargs["gpu_memory_utilization"] == 0.3
    assert lowbit_engine.kwargs["gpu_memory_utilization"] == pytest.approx(0.6)
    assert lowbit_engine.kwargs["enable_prefix_caching"] is True
    records = side(tmp_path)
    assert [e.kind for e in records[1].rescue] == ["fallback"]
    assert records[1].tokens == {"lowbit": len(ids(tok, NO_ANSWER_PREFIX)), "reference": len(ids(tok, REFERENCE_TAIL))}


def test_planning_hands_over_after_exactly_n_tokens(engines, model_dirs, tok, tmp_path):
    lm = qr_vllm(model_dirs, tmp_path, plan_tokens=5, reference=str(model_dirs["reference"]))
    (completion,) = generate(lm, ["PLANME EASY: what is 1+1?"])
    assert completion == tok.decode(ids(tok, PLAN)[:5] + ids(tok, EASY))
    record = side(tmp_path)[0]
    assert record.plan_tokens == 5 and record.tokens == {"lowbit": len(ids(tok, EASY)), "reference": 5}


@pytest.mark.parametrize(
    ("args", "named"),
    [({"rescue": "commit", "data_parallel_size": 2}, "data_parallel_size=2"), ({"chunk_tokens": 0}, "chunk_tokens=0"),
     ({"rescue": "fallback"}, "rescue='fallback'"), ({"reference_gpu_memory_utilization": 1.5}, "1.5")],
)
def test_bad_arguments_fail_before_an_engine_starts(fake_vllm, args, named):
    from qr_adapters.vllm import QRVLLM

    with pytest.raises(ModelArgumentError, match=named):
        QRVLLM(pretrained="/nonexistent/model", **args)


def test_without_vllm_the_error_names_the_extra():
    done = subprocess.run([sys.executable, "-c", "import qr_adapters.vllm"], capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        pytest.skip("vLLM is installed here")
    assert done.stderr.strip().splitlines()[-1].endswith('qr-vllm needs vLLM (CUDA): pip install "qr-eval[vllm]"')
    cli = subprocess.run(
        [sys.executable, "-c", "from qr_adapters.lm_eval_entry import main; main()", "--model", "qr-vllm",
         "--model_args", "pretrained=any", "--tasks", "qr_math"],
        capture_output=True, text=True, timeout=300,
    )
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert cli.stderr.strip().splitlines()[-1] == 'qr-lm-eval: qr-vllm needs vLLM (CUDA): pip install "qr-eval[vllm]"'


def _real_vllm_with_gpu() -> bool:
    """Judged at collection, before the in-test engine is installed."""
    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


@pytest.mark.skipif(not _real_vllm_with_gpu(), reason="needs vLLM and a CUDA GPU (pip install \"qr-eval[vllm]\")")
def test_real_vllm(tiny_model_dir, tmp_path):
    from qr_adapters.vllm import QRVLLM

    lm = QRVLLM(pretrained=str(tiny_model_dir), reference=str(tiny_model_dir), rescue="commit_then_fallback",
                plan_tokens=4, min_reasoning_tokens=8, max_model_len=512, sidecar=str(tmp_path / "side.jsonl"),
                gpu_memory_utilization=0.3, reference_gpu_memory_utilization=0.3, enforce_eager=True)
    completions = generate(lm, ["What is 1+1?", "Find x if 2x=4."], 32)
    assert len(completions) == 2 and len(side(tmp_path)) == 2
