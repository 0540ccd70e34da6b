"""The tiny test model loads and generates through lm-eval's real HF backend.

Also pins down lm-eval 0.4.13 behaviour the qr tasks rely on: with ``until: []`` the HF
backend still appends the tokenizer's eos string to the stop list, and a completion ends
at the first eos token the model emits (``generate`` stops that row because the model's
generation_config names the eos id); nothing else cuts a trace.
"""

from __future__ import annotations

import pytest
import torch
from helpers.tiny_model import EOS, THINK_END, THINK_START, default_logit_bias
from transformers import AutoModelForCausalLM, AutoTokenizer

QUESTIONS = ["What is 1+1?", "Compute \\frac{1}{2} + \\frac{1}{3}."]
GREEDY = {"until": [], "max_gen_toks": 16, "do_sample": False}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _hflm(model_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(model_dir), device="cpu", batch_size=2, max_length=512)


def _requests(lm, gen_kwargs, questions=QUESTIONS):
    from lm_eval.api.instance import Instance

    return [
        Instance(
            request_type="generate_until",
            doc={"question": q},
            arguments=(lm.apply_chat_template([{"role": "user", "content": q}]), dict(gen_kwargs)),
            idx=0,
            metadata=("tiny", doc_id, 1),
        )
        for doc_id, q in enumerate(questions)
    ]


@pytest.fixture(scope="module")
def hflm(tiny_model_dir):
    return _hflm(tiny_model_dir)


def test_think_markers_are_single_non_special_tokens(tokenizer):
    for marker in (THINK_START, THINK_END):
        ids = tokenizer.encode(f"a {marker} b", add_special_tokens=False)
        assert tokenizer.convert_tokens_to_ids(marker) in ids
        assert tokenizer.encode(marker, add_special_tokens=False) == [
            tokenizer.convert_tokens_to_ids(marker)
        ]
        # lm-eval decodes with skip_special_tokens=True: the markers must survive it.
        assert marker in tokenizer.decode(ids, skip_special_tokens=True)
    assert tokenizer.eos_token == EOS
    assert tokenizer.pad_token_id not in (tokenizer.eos_token_id, tokenizer.bos_token_id)


def test_tokenizer_round_trips_math_text(tokenizer):
    text = "So $x = \\frac{3}{4}$, and the answer is \\boxed{12}."
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    assert 500 <= len(tokenizer) <= 1000


def test_chat_template_opens_think(tokenizer):
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1+1?"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|begin_of_text|><|User|>What is 1+1?<|Assistant|><think>\n"
    history = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "reasoning</think> 2"},
            {"role": "user", "content": "Again"},
        ],
        add_generation_prompt=False,
        tokenize=False,
    )
    assert history == (
        "<|begin_of_text|><|User|>Hi<|Assistant|>2<|endoftext|><|User|>Again"
    )


def test_build_is_deterministic(tiny_model_factory, tiny_model_dir):
    again = tiny_model_factory("default-again", seed=0)
    other = tiny_model_factory("seed-1", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


def test_greedy_generation_runs_to_budget(tiny_model_dir, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )
        for q in QUESTIONS
    ]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=24, do_sample=False)
    new = out[:, enc.input_ids.shape[1] :]
    assert new.shape[1] == 24
    suppressed = {tokenizer.convert_tokens_to_ids(t) for t in default_logit_bias()}
    assert not suppressed & set(new.flatten().tolist())


def test_hflm_chat_template_and_generate_until(hflm):
    context = hflm.apply_chat_template([{"role": "user", "content": "What is 1+1?"}])
    assert context.endswith("<|Assistant|><think>\n")
    requests = _requests(hflm, GREEDY)
    out = hflm.generate_until(requests, disable_tqdm=True)
    assert len(out) == 2 and all(isinstance(s, str) and s for s in out)
    # Greedy and batched: the same requests give the same strings.
    assert hflm.generate_until(_requests(hflm, GREEDY), disable_tqdm=True) == out


def test_hflm_keeps_think_end_in_completion(tiny_model_factory):
    lm = _hflm(tiny_model_factory("closes-think", logit_bias={THINK_END: 100.0}))
    out = lm.generate_until(_requests(lm, {**GREEDY, "max_gen_toks": 4}), disable_tqdm=True)
    assert out == [THINK_END * 4] * 2


def test_hflm_until_empty_still_stops_at_eos(tiny_model_factory):
    # lm-eval 0.4.13 appends the eos string to `until` even when it is [] ...
    from lm_eval.models.utils import handle_stop_sequences

    assert handle_stop_sequences([], eos=EOS) == [EOS]
    # ... and a row that emits the eos token ends there: text before it, none after.
    bias = {**default_logit_bias(), EOS: 0.15}
    model_dir = tiny_model_factory("sometimes-eos", logit_bias=bias)
    lm = _hflm(model_dir)
    tok = lm.tokenizer
    prompts = [lm.apply_chat_template([{"role": "user", "content": q}]) for q in QUESTIONS]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():  # reference: the same greedy run, with eos not treated as a stop
        ref = lm.model.generate(
            **enc, max_new_tokens=32, do_sample=False, eos_token_id=None,
            pad_token_id=tok.pad_token_id,
        )[:, enc.input_ids.shape[1] :].tolist()
    expected = []
    for row in ref:
        cut = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
        expected.append(tok.decode(row[:cut], skip_special_tokens=True))
    # Both rows emit eos mid-trace, at different steps (so one row goes on after the other's).
    stops = [row.index(tok.eos_token_id) for row in ref if tok.eos_token_id in row[1:]]
    assert len(set(stops)) == 2 and min(stops) > 0, "fixture should emit eos mid-trace"
    out = lm.generate_until(_requests(lm, {**GREEDY, "max_gen_toks": 32}), disable_tqdm=True)
    assert out == expected
