"""A tiny Llama whose logits are rigged to write scripted ids: traces that loop on cue.

At the prefill call each row picks the first rule whose text occurs in its input (or, for
``ends=True`` rules, ends it) and finds how much of the script its input already ends with
(a continuation, as vLLM's chunked generation sends, resumes the script where it was); every
decoding step then forces the rule's next id, and eos once the script is spent. Real transformers generation (KV cache, batching, padding) runs
around it, so the adapters are tested on the code path a real checkpoint takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM


@dataclass(frozen=True)
class Rule:
    marker: str
    script: list[int]
    ends: bool = False


class ScriptedLlama(LlamaForCausalLM):
    def setup(self, tokenizer, rules: list[Rule]) -> "ScriptedLlama":
        self.tokenizer, self.rules = tokenizer, rules
        self.scripts: list[list[int]] = []
        self.positions: list[int] = []
        return self

    def _pick(self, ids: list[int]) -> list[int]:
        text = self.tokenizer.decode([t for t in ids if t != self.tokenizer.pad_token_id])
        for rule in self.rules:
            if (text.endswith(rule.marker) if rule.ends else rule.marker in text):
                return rule.script
        return []

    @staticmethod
    def _resume_at(ids: list[int], script: list[int]) -> int:
        """Length of the longest start of ``script`` that ``ids`` ends with."""
        for k in range(min(len(ids), len(script)), 0, -1):
            if ids[-k:] == script[:k]:
                return k
        return 0

    def forward(self, input_ids=None, **kwargs):
        out = super().forward(input_ids=input_ids, **kwargs)
        if input_ids.shape[1] > 1:  # prefill: a new batch
            rows = input_ids.tolist()
            self.scripts = [self._pick(row) for row in rows]
            self.positions = [self._resume_at(row, script) for row, script in zip(rows, self.scripts)]
        logits = torch.full_like(out.logits, -100.0)
        for row, (script, at) in enumerate(zip(self.scripts, self.positions)):
            logits[row, -1, script[at] if at < len(script) else self.tokenizer.eos_token_id] = 100.0
        self.positions = [at + 1 for at in self.positions]
        out.logits = logits
        return out


def scripted(model_dir, tokenizer, rules: list[Rule]) -> ScriptedLlama:
    """The tiny model at ``model_dir`` with its logits replaced by the scripts of ``rules``."""
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = ScriptedLlama(base.config)
    model.load_state_dict(base.state_dict())
    model.generation_config = base.generation_config
    return model.eval().setup(tokenizer, rules)
