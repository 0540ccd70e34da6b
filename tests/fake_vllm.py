"""A small stand-in for vLLM that honours the calls lm-eval's ``VLLM`` and ``qr-vllm`` make.

vLLM needs CUDA; this engine runs tiny transformers models greedily on CPU behind vLLM's
offline API: ``LLM(model=...)``, ``LLM.generate`` over ``TokensPrompt`` with one
``SamplingParams`` per prompt (``max_tokens``, ``stop``, and ``repetition_detection`` when the
installed version is made to have it), outputs with ``token_ids``, ``text`` and
``finish_reason`` (``stop``, ``length``, ``repetition``). Every engine built and every call
made is recorded, so tests can check what the adapter asked for.

``install(monkeypatch)`` puts it in ``sys.modules`` as ``vllm`` (version 0.8.0 to lm-eval)
and returns the module; ``module.MODELS`` maps a model path to the model object its engine
runs (default: the checkpoint at that path), and deleting
``vllm.sampling_params.RepetitionDetectionParams`` makes it a version without repetition
detection. lm-eval registers its ``vllm`` model class once per process, so install it once
(a session fixture) and import the adapters against it then.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import sys
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


@dataclass
class RepetitionDetectionParams:
    max_pattern_size: int = 0
    min_pattern_size: int = 0
    min_count: int = 0


class SamplingParams:
    def __init__(self, max_tokens: int = 16, stop=None, temperature: float = 1.0, repetition_detection=None, **other):
        self.max_tokens, self.stop, self.temperature = max_tokens, stop or [], temperature
        self.repetition_detection = repetition_detection
        self.other = other

    def clone(self) -> "SamplingParams":
        return SamplingParams(self.max_tokens, list(self.stop), self.temperature, self.repetition_detection,
                              **self.other)

    def __repr__(self) -> str:
        return f"SamplingParams(max_tokens={self.max_tokens}, stop={self.stop}, temperature={self.temperature})"


def TokensPrompt(prompt_token_ids):  # a TypedDict in vLLM
    return {"prompt_token_ids": list(prompt_token_ids)}


def repeats_at_end(ids: list[int], params: RepetitionDetectionParams) -> bool:
    """vLLM's rule: the last n ids equal each of the min_count - 1 blocks of n before them."""
    for n in range(max(1, params.min_pattern_size), params.max_pattern_size + 1):
        if n * params.min_count > len(ids):
            return False
        if all(ids[-n:] == ids[len(ids) - n * (m + 1) : len(ids) - n * m] for m in range(1, params.min_count)):
            return True
    return False


class LLM:
    def __init__(self, model: str, tokenizer=None, **kwargs):
        module = sys.modules["vllm"]
        self.model_path, self.kwargs = model, kwargs
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        self.model = module.MODELS.get(model) or AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        self.calls: list[tuple[list[list[int]], list[SamplingParams]]] = []
        module.ENGINES.append(self)

    def generate(self, prompts, sampling_params=None, use_tqdm=False, lora_request=None):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        ids = [p["prompt_token_ids"] for p in prompts]
        self.calls.append((ids, params))
        return [self._one(prompt, p) for prompt, p in zip(ids, params)]

    def _one(self, prompt: list[int], params: SamplingParams):
        eos = self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(torch.tensor([prompt]), max_new_tokens=params.max_tokens, do_sample=False,
                                      eos_token_id=eos, pad_token_id=self.tokenizer.pad_token_id)
        new = out[0, len(prompt):].tolist()
        reason = "length"
        for n in range(1, len(new) + 1):  # the engine checks after every token
            if new[n - 1] == eos:
                new, reason = new[:n], "stop"
                break
            text = self.tokenizer.decode(new[:n])
            if any(s and s in text for s in params.stop):
                new, reason = new[:n], "stop"
                break
            if params.repetition_detection is not None and repeats_at_end(new[:n], params.repetition_detection):
                new, reason = new[:n], "repetition"
                break
        text = self.tokenizer.decode([t for t in new if t != eos])
        return SimpleNamespace(prompt_token_ids=prompt,
                               outputs=[SimpleNamespace(token_ids=new, text=text, finish_reason=reason)])


def install(monkeypatch) -> ModuleType:
    vllm = ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.LLM, vllm.SamplingParams, vllm.TokensPrompt = LLM, SamplingParams, TokensPrompt
    vllm.MODELS, vllm.ENGINES = {}, []
    sampling = ModuleType("vllm.sampling_params")
    sampling.SamplingParams = SamplingParams
    sampling.RepetitionDetectionParams = RepetitionDetectionParams
    lora, lora_request = ModuleType("vllm.lora"), ModuleType("vllm.lora.request")
    lora_request.LoRARequest = object
    tokenizers = ModuleType("vllm.tokenizers")
    tokenizers.get_tokenizer = lambda name, **kwargs: AutoTokenizer.from_pretrained(name)
    modules = {"vllm": vllm, "vllm.sampling_params": sampling, "vllm.lora": lora,
               "vllm.lora.request": lora_request, "vllm.tokenizers": tokenizers}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.8.0" if name == "vllm" else real_version(name))
    return vllm
