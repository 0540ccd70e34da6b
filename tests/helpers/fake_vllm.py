"""vLLM's offline engine (``vllm.LLM``) for what the CPU build cannot run: tensor and data
parallelism. Everything else is tested on the real engine (``qr_adapters/test_vllm.py``).

``FakeLLM`` takes vLLM's arguments, records them and every ``generate`` call, and decodes
greedily with transformers, stopping as vLLM's scheduler does, in its order: the request's
eos id, then the generation config's eos ids (kept in ``token_ids``), then the budget
(``max_tokens``, or the context reaching ``max_model_len``), then repetition detection; stop
strings last, as vLLM's detokenizer finds them. A prompt longer than ``max_model_len`` is
refused, as vLLM refuses it. ``install(monkeypatch)`` makes lm-eval's ``VLLM`` and
``qr-vllm`` build it instead of the real engine and returns the list of engines built.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from vllm.v1.core.sched.utils import check_sequence_repetition

from qr_adapters.control import stop_ids


class FakeLLM:
    built: list["FakeLLM"] = []

    def __init__(self, model: str, tokenizer: str | None = None, max_model_len: int | None = None, **kwargs) -> None:
        from vllm.engine.arg_utils import EngineArgs

        self.model_path, self.kwargs = model, {"tokenizer": tokenizer, "max_model_len": max_model_len, **kwargs}
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        self.max_model_len = max_model_len or self.model.config.max_position_embeddings
        self.eos = self.tokenizer.eos_token_id
        self.stop_token_ids = stop_ids(None, GenerationConfig.from_pretrained(model).eos_token_id) - {self.eos}
        config = EngineArgs(model=model, tokenizer=tokenizer or model, max_model_len=self.max_model_len)
        self.llm_engine = SimpleNamespace(model_config=config.create_model_config())  # lm-eval reads its chat template
        self.calls: list[dict] = []
        FakeLLM.built.append(self)

    def generate(self, prompts, sampling_params=None, use_tqdm=False, lora_request=None):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        ids = [p["prompt_token_ids"] for p in prompts]
        self.calls.append({"prompts": ids, "params": params, "lora_request": lora_request})
        return [self._one(prompt, p) for prompt, p in zip(ids, params)]

    def _one(self, prompt: list[int], params):
        if len(prompt) > self.max_model_len:
            raise ValueError(f"The decoder prompt (length {len(prompt)}) is longer than the maximum model length "
                             f"of {self.max_model_len}.")
        budget = min(params.max_tokens, self.max_model_len - len(prompt))
        with torch.no_grad():
            out = self.model.generate(torch.tensor([prompt]), max_new_tokens=max(budget, 1), do_sample=False,
                                      eos_token_id=None, pad_token_id=self.tokenizer.pad_token_id)
        new = out[0, len(prompt):].tolist()
        for n in range(1, len(new) + 1):
            reason = self._stop(new[:n], budget, params)
            if reason is not None:
                new = new[:n]
                break
        text = self.tokenizer.decode([t for t in new if t != self.eos and t not in self.stop_token_ids],
                                     skip_special_tokens=getattr(params, "skip_special_tokens", True))
        return SimpleNamespace(prompt_token_ids=prompt,
                               outputs=[SimpleNamespace(token_ids=new, text=text, finish_reason=reason)])

    def _stop(self, ids: list[int], budget: int, params) -> str | None:
        """vLLM's ``check_stop``, then its detokenizer's stop strings."""
        if ids[-1] == self.eos or ids[-1] in self.stop_token_ids:
            return "stop"
        if len(ids) >= budget:
            return "length"
        if params.repetition_detection is not None and check_sequence_repetition(ids, params.repetition_detection):
            return "repetition"
        text = self.tokenizer.decode(ids)
        if any(s and s in text for s in params.stop or ()):
            return "stop"
        return None


def install(monkeypatch) -> list[FakeLLM]:
    """Build ``FakeLLM`` wherever lm-eval's ``VLLM`` and ``qr-vllm`` build an engine."""
    import qr_adapters.vllm as qr_vllm  # first: it imports lm-eval's vLLM model where the CPU build is installed
    import lm_eval.models.vllm_causallms as lm_eval_vllm

    monkeypatch.setattr(lm_eval_vllm, "LLM", FakeLLM)
    monkeypatch.setattr(qr_vllm, "LLM", FakeLLM)
    monkeypatch.setattr(FakeLLM, "built", [])
    return FakeLLM.built
