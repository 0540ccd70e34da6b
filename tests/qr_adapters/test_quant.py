"""Low-bit loading (``qr_adapters.quant``): RTN against a plain-Python reference, bitsandbytes
4-bit on CPU through transformers and lm-eval, and a GPTQ checkpoint made and loaded on CPU
(where the ``gptq`` extra is installed)."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch
from qr_adapters.quant import (
    RTNSpec,
    apply_rtn,
    check_checkpoint_libraries,
    parse_quant,
    quant_model_argument,
    quantization_kwargs,
)
from qr_adapters.errors import ModelArgumentError
from helpers.tiny_model import SUPPRESS, training_corpus
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

PROMPT = "Let me think step by step."
NEW_TOKENS = 5


def _load(model_dir, **kwargs):
    return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).eval()


@pytest.fixture(scope="module")
def full(tiny_model_dir):
    return _load(tiny_model_dir, dtype=torch.float32)


def _rounded(model_dir, quant, dtype=torch.float32):
    model = _load(model_dir, dtype=dtype)
    apply_rtn(model, parse_quant(quant))
    return model


def _linear_weights(model):
    return {name: m.weight for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def _groups(weight, size):
    return weight.detach().float().reshape(-1, size)


def _distinct_per_group(weight, size):
    ordered = _groups(weight, size).sort(dim=1).values
    return 1 + (ordered.diff(dim=1) != 0).sum(dim=1)


def reference_rtn(values, bits):
    """One group, element by element in numpy float32 scalars (the definition, written out)."""
    top = np.float32(2**bits - 1)
    values = [np.float32(v) for v in values]
    low, high = min(values), max(values)
    if low == high:
        return values
    scale = (high - low) / top
    zero = min(max(np.rint(-low / scale), np.float32(0)), top)
    return [(min(max(np.rint(v / scale) + zero, np.float32(0)), top) - zero) * scale for v in values]


@pytest.fixture(scope="module")
def probe(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)(training_corpus()[:4], return_tensors="pt", padding=True)


def _drift(model, reference, probe):
    """Mean absolute logit change over the tokens the tiny model does not suppress, and the
    share of positions whose greedy token stays the same."""
    with torch.no_grad():
        logits, expected = model(**probe).logits, reference(**probe).logits
    free = expected > SUPPRESS / 2
    agreement = (logits.argmax(-1) == expected.argmax(-1))[probe.attention_mask.bool()]
    return float((logits - expected).abs()[free].mean()), float(agreement.float().mean())


def _generate(model, tokenizer):
    ids = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    return out[0, ids.input_ids.shape[1]:]


def _generate_until(lm):
    from lm_eval.api.instance import Instance

    request = Instance(
        request_type="generate_until",
        doc={},
        arguments=(PROMPT, {"until": [], "max_gen_toks": NEW_TOKENS, "do_sample": False}),
        idx=0,
    )
    return lm.generate_until([request], disable_tqdm=True)


# -- parse_quant / RTNSpec ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, bits, group", [("rtn-w4g32", 4, 32), ("rtn-w2g128", 2, 128), ("rtn-w3g64", 3, 64), ("rtn-w8g1", 8, 1)]
)
def test_parse_quant_reads_bits_and_group(spec, bits, group):
    parsed = parse_quant(spec)
    assert parsed == RTNSpec(bits=bits, group_size=group)
    assert (parsed.skip_embeddings, parsed.skip_lm_head, parsed.name) == (True, True, spec)


@pytest.mark.parametrize(
    "spec", ["rtn-w5g0", "rtn-w5g32", "rtn-w4g0", "rtn-w4", "gptq", "rtn-w4g32 ", "RTN-W4G32", "rtn-w4g-1", ""]
)
def test_parse_quant_rejects_with_one_line_naming_the_value(spec):
    with pytest.raises(ValueError) as error:
        parse_quant(spec)
    message = str(error.value)
    assert message == (
        f"quant={spec!r} is invalid: expected rtn-w{{2,3,4,8}}g{{G}} with G a positive group size"
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bits": 5, "group_size": 32}, "bits must be one of 2, 3, 4, 8, got 5."),
        ({"bits": True, "group_size": 32}, "bits must be one of 2, 3, 4, 8, got True."),
        ({"bits": 4, "group_size": 0}, "group_size must be a positive integer, got 0."),
        ({"bits": 4, "group_size": 32.0}, "group_size must be a positive integer, got 32.0."),
    ],
)
def test_rtn_spec_names_parameter_value_and_range(kwargs, message):
    with pytest.raises(ValueError) as error:
        RTNSpec(**kwargs)
    assert str(error.value) == message


def test_quant_model_argument_is_one_line_and_excludes_other_quantization():
    """What qr-vllm checks before any engine starts."""
    assert quant_model_argument(None) is None and quant_model_argument("") is None
    assert quant_model_argument("rtn-w3g32", quantization=None) == RTNSpec(3, 32)
    with pytest.raises(ModelArgumentError) as error:
        quant_model_argument("rtn-w5g32")
    assert str(error.value) == "quant='rtn-w5g32' is invalid: expected rtn-w{2,3,4,8}g{G} with G a positive group size"
    with pytest.raises(ModelArgumentError) as error:
        quant_model_argument("rtn-w3g32", quantization="awq")
    assert str(error.value) == "quant='rtn-w3g32' is invalid: must not be combined with quantization='awq'"


# -- apply_rtn ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rtn_w4g32_matches_the_definition_group_by_group(tiny_model_dir, dtype):
    before = _load(tiny_model_dir, dtype=dtype)
    after = _rounded(tiny_model_dir, "rtn-w4g32", dtype)
    old, new = _linear_weights(before), _linear_weights(after)
    checked = 0
    for name, weight in new.items():
        if name == "lm_head":
            continue
        assert weight.dtype == dtype
        source, result = _groups(old[name], 32), _groups(weight, 32)
        for g in (0, 1, source.shape[0] // 2, source.shape[0] - 1):
            expected = torch.tensor(reference_rtn(source[g].tolist(), bits=4)).to(dtype).float()
            assert torch.equal(result[g], expected), (name, g)
            checked += 1
    assert checked == 14 * 4


def test_rtn_rounds_every_linear_but_the_head(tiny_model_dir, full):
    rounded = _load(tiny_model_dir, dtype=torch.float32)
    assert apply_rtn(rounded, parse_quant("rtn-w4g32")) == 14
    old = dict(full.named_parameters())
    for name, weight in rounded.named_parameters():
        untouched = torch.equal(weight, old[name])
        rtn = name.endswith("proj.weight")
        assert untouched != rtn, name  # embeddings, norms and lm_head stay; every projection moves
        assert torch.isfinite(weight).all()
    # the bias channel's zero rows (a constant group: no range) stay exactly zero
    assert not rounded.model.layers[0].self_attn.o_proj.weight[-1].any()


def test_rtn_levels_and_error_per_group(full, tiny_model_dir):
    for quant, bits in (("rtn-w2g32", 2), ("rtn-w4g32", 4), ("rtn-w8g32", 8)):
        rounded = _rounded(tiny_model_dir, quant)
        for name, weight in _linear_weights(rounded).items():
            if name == "lm_head":
                continue
            distinct = _distinct_per_group(weight, 32)
            assert distinct.max() <= 2**bits, (quant, name)
            source = _groups(_linear_weights(full)[name], 32)
            step = (source.amax(dim=1) - source.amin(dim=1)) / (2**bits - 1)
            error = (_groups(weight, 32) - source).abs().amax(dim=1)
            assert (error <= step / 2 * (1 + 1e-5) + 1e-9).all(), (quant, name)
    # 4 bits: random weights use (nearly) the whole grid
    assert _distinct_per_group(_rounded(tiny_model_dir, "rtn-w4g32").model.layers[0].mlp.up_proj.weight, 32).float().mean() > 12


def test_rtn_fewer_bits_are_coarser(full, tiny_model_dir, probe):
    weight_error, logit_error, agreement = {}, {}, {}
    source = full.model.layers[1].mlp.down_proj.weight.detach()
    for bits in (2, 4, 8):
        rounded = _rounded(tiny_model_dir, f"rtn-w{bits}g32")
        proj = rounded.model.layers[1].mlp.down_proj.weight.detach()
        weight_error[bits] = float((proj - source).abs().mean() / source.abs().mean())
        logit_error[bits], agreement[bits] = _drift(rounded, full, probe)
    assert weight_error[8] < 0.01 < weight_error[4] < weight_error[2]
    assert logit_error[8] < logit_error[4] < logit_error[2]
    assert agreement[8] == 1.0 > agreement[4] > agreement[2]


def test_rtn_skip_flags(tiny_model_dir, full):
    both = _load(tiny_model_dir, dtype=torch.float32)
    assert apply_rtn(both, RTNSpec(4, 32, skip_embeddings=False, skip_lm_head=False)) == 16
    assert not torch.equal(both.lm_head.weight, full.lm_head.weight)
    assert not torch.equal(both.model.embed_tokens.weight, full.model.embed_tokens.weight)
    assert _distinct_per_group(both.model.embed_tokens.weight, 32).max() <= 16


def test_rtn_group_that_does_not_divide_names_the_layer_and_leaves_the_model(tiny_model_dir, full):
    model = _load(tiny_model_dir, dtype=torch.float32)
    with pytest.raises(ValueError) as error:
        apply_rtn(model, RTNSpec(bits=4, group_size=48))
    assert str(error.value) == (
        "rtn-w4g48 cannot quantize 'model.layers.0.self_attn.q_proj': in_features=64 "
        "is not divisible by group_size=48"
    )
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), full.parameters()))


# -- bitsandbytes ------------------------------------------------------------------------------


def test_quantization_kwargs_builds_a_bitsandbytes_config():
    pytest.importorskip("bitsandbytes", reason='bitsandbytes is the bnb extra: pip install "qr-eval[bnb]"')
    (config,) = quantization_kwargs(load_in_4bit=True, bnb_4bit_quant_type="nf4").values()
    assert (config.load_in_4bit, config.load_in_8bit, config.bnb_4bit_quant_type) == (True, False, "nf4")
    assert quantization_kwargs(load_in_8bit=True)["quantization_config"].load_in_8bit
    with pytest.raises(ValueError, match="unknown BitsAndBytesConfig argument.*bnb_4bit_quant_typ$"):
        quantization_kwargs(load_in_4bit=True, bnb_4bit_quant_typ="nf4")
    for flags in ({}, {"load_in_4bit": True, "load_in_8bit": True}):
        with pytest.raises(ValueError, match="pass one of load_in_4bit=True or load_in_8bit=True"):
            quantization_kwargs(**flags)


def test_missing_bitsandbytes_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # what find_spec and import see when absent
    with pytest.raises(ModuleNotFoundError) as error:
        quantization_kwargs(load_in_4bit=True)
    assert str(error.value) == 'load_in_4bit=True needs bitsandbytes: pip install "qr-eval[bnb]"'


@pytest.fixture(scope="module")
def bnb_4bit(tiny_model_dir):
    pytest.importorskip("bitsandbytes", reason='bitsandbytes is the bnb extra: pip install "qr-eval[bnb]"')
    return _load(tiny_model_dir, **quantization_kwargs(load_in_4bit=True))


def test_bnb_4bit_loads_and_generates_on_cpu(bnb_4bit, full, tiny_model_dir, probe):
    import bitsandbytes as bnb

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert bnb_4bit.device.type == "cpu"
    assert isinstance(bnb_4bit.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    assert type(bnb_4bit.lm_head) is torch.nn.Linear  # transformers keeps the head full precision
    assert len(_generate(bnb_4bit, tokenizer)) == NEW_TOKENS  # the tiny model never stops early
    drift, agreement = _drift(bnb_4bit, full, probe)
    assert 0 < drift < 0.05 and agreement > 0.5  # quantized, and close to the full model


def test_bnb_4bit_model_generates_through_hflm(bnb_4bit, tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=bnb_4bit, tokenizer=str(tiny_model_dir), device="cpu")
    (completion,) = _generate_until(lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert completion == tokenizer.decode(_generate(bnb_4bit, tokenizer))  # the model's own greedy tokens


def test_qr_hf_loads_bitsandbytes_4bit_by_path_on_cpu(tiny_model_dir, bnb_4bit):
    """lm-eval's HFLM hands its own quantization_config to _create_model (and transformers 5
    takes no load_in_4bit=), so qr-hf passes the bitsandbytes config there itself."""
    import bitsandbytes as bnb

    from qr_adapters.hf import QRHFLM

    lm = QRHFLM(pretrained=str(tiny_model_dir), device="cpu", load_in_4bit=True)
    assert isinstance(lm.model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    (completion,) = _generate_until(lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert completion == tokenizer.decode(_generate(bnb_4bit, tokenizer))  # as the same 4-bit load generates


def test_qr_hf_quant_rounds_the_loaded_weights_as_apply_rtn_does(tiny_model_dir, full):
    from qr_adapters.hf import QRHFLM

    lm = QRHFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", quant="rtn-w4g32")
    expected = copy.deepcopy(full)
    apply_rtn(expected, parse_quant("rtn-w4g32"))
    for (name, ours), (_, theirs) in zip(lm.model.state_dict().items(), expected.state_dict().items()):
        assert torch.equal(ours, theirs), name
    assert not torch.equal(lm.model.model.layers[0].mlp.down_proj.weight, full.model.layers[0].mlp.down_proj.weight)


# -- pre-quantized checkpoints (GPTQ) ----------------------------------------------------------


def test_checkpoint_libraries_missing_is_one_line_naming_the_extra(monkeypatch):
    gptq = AutoConfig.for_model("llama", quantization_config={"quant_method": "gptq", "bits": 4})
    monkeypatch.setitem(sys.modules, "gptqmodel", None)
    with pytest.raises(ModuleNotFoundError) as error:
        check_checkpoint_libraries(gptq)
    assert str(error.value).startswith("a gptq checkpoint needs ")
    assert str(error.value).endswith('gptqmodel: pip install "qr-eval[gptq]"')
    check_checkpoint_libraries(AutoConfig.for_model("llama"))  # full precision: nothing needed


def test_gptq_checkpoint_made_and_loaded_on_cpu(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")
    monkeypatch.chdir(tmp_path)  # gptqmodel writes its quantization log to ./logs
    pytest.importorskip("optimum", reason='GPTQ needs the gptq extra: pip install "qr-eval[gptq]"')
    gptqmodel = pytest.importorskip("gptqmodel", reason='GPTQ needs the gptq extra: pip install "qr-eval[gptq]"')

    quantized = tmp_path / "tiny-gptq-w4g32"
    model = gptqmodel.GPTQModel.load(
        str(tiny_model_dir), gptqmodel.QuantizeConfig(bits=4, group_size=32, offload_to_disk=False)
    )
    model.quantize(training_corpus()[:16], batch_size=4)
    model.save(str(quantized))

    config = AutoConfig.from_pretrained(quantized)
    assert (config.quantization_config["quant_method"], config.quantization_config["bits"]) == ("gptq", 4)
    check_checkpoint_libraries(config)
    loaded = _load(quantized)
    assert not isinstance(loaded.model.layers[0].mlp.down_proj, torch.nn.Linear)  # a GPTQ kernel
    assert len(_generate(loaded, AutoTokenizer.from_pretrained(quantized))) == NEW_TOKENS
    from qr_adapters.hf import QRHFLM

    (completion,) = _generate_until(QRHFLM(pretrained=str(quantized), device="cpu"))
    assert completion
