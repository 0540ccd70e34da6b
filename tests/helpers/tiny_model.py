"""A tiny reasoning-style causal LM built offline, for the tests (``helpers.tiny_model``).

``build_tiny_model(path)`` writes a directory that ``lm_eval --model hf
--model_args pretrained=DIR --apply_chat_template`` loads like any Hub checkpoint:

* the toy model's tokenizer and chat template (``qr_adapters.toy_model.chat_tokenizer``:
  ``<think>`` and ``</think>`` single, non-special tokens; the generation prompt opens
  ``<think>``), its byte-level BPE trained here on a small built-in corpus of math
  reasoning text (digits, LaTeX such as ``\\boxed{}`` and ``\\frac``);
* a ``LlamaForCausalLM`` (the DeepSeek-R1-Distill-Llama architecture) with random
  weights (fixed seed), hidden size 64, 2 layers, 2 heads of 32 (a head size vLLM's CPU
  build runs), saved as safetensors. Not Qwen2:
  transformers 5 forces its ``Qwen2Tokenizer`` on ``model_type: qwen2`` and rebuilds the
  pre-tokenizer, so the tokenizer saved here would not be the one that loads.

Random weights decode greedily into arbitrary token soup. To keep that soup from ending
early (or to force a given token), the model carries a *bias channel*: one residual
dimension is a positive constant for every position, invisible to the transformer layers,
and the ``lm_head`` column for that dimension adds about ``logit_bias[token]`` to the
token's logit (calibrated on the corpus; the sign is exact). The random logits themselves
spread over only ~0.2, so a bias of +-0.1 changes some greedy choices and +-10 decides
them all. By default the eos, bos, pad, role and
``<think>`` tokens get a large negative bias: greedy decoding never stops early and always
runs to ``max_gen_toks``. Pass ``logit_bias={EOS: 100.0}`` to get a model that emits eos
at once, or ``{THINK_END: 100.0}`` for one that closes its reasoning at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from qr_adapters.toy_model import chat_tokenizer
from qr_adapters.toy_model.chat_tokenizer import (
    ASSISTANT,
    BOS,
    EOS,
    MAX_POSITIONS,
    PAD,
    SPECIAL_TOKENS,
    THINK_END,
    THINK_START,
    THINK_TOKENS,
    USER,
)

__all__ = [  # the tokens are the toy model's (``chat_tokenizer``), imported by the tests from here
    "ASSISTANT", "BOS", "EOS", "PAD", "SUPPRESS", "THINK_END", "THINK_START", "THINK_TOKENS", "USER",
    "build_tiny_model", "build_tokenizer", "default_logit_bias", "training_corpus",
]

VOCAB_SIZE = 800
HIDDEN = 64
LAYERS = 2
HEADS = 2  # head size 32: vLLM's CPU attention takes 32, 64, 80, 96, 112, 128, ...
KV_HEADS = 1
SUPPRESS = -100.0

_FIXED_SENTENCES = [
    "Let me think step by step.",
    "First, I need to find the value of x.",
    "Wait, let me double-check that calculation.",
    "So the answer is \\boxed{42}.",
    "Therefore, the final answer is \\boxed{\\frac{3}{4}}.",
    "We have \\frac{a}{b} + \\frac{c}{d} = \\frac{ad + bc}{bd}.",
    "Hmm, that doesn't seem right. Let me try again.",
    "The sum of the roots is -\\frac{b}{a} and the product is \\frac{c}{a}.",
    "Solve for $x$: $2x + 3 = 11$, so $x = 4$.",
    "Alternatively, we can use the quadratic formula $x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}$.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many in May.",
    "How many clips did Natalia sell altogether in April and May?",
    "The area of the triangle is \\frac{1}{2} \\cdot base \\cdot height.",
    "Since $n$ is an integer, $n^2 \\equiv 0$ or $1 \\pmod{4}$.",
    "Okay, so I need to figure out how many ways there are to choose 3 items from 10.",
    "That is \\binom{10}{3} = 120.",
    "Let me verify: 12 \\times 12 = 144, and 144 - 44 = 100.",
    "I think I made a mistake earlier. Let me recompute.",
    "The probability is \\frac{5}{36}, so $m + n = 41$.",
]

_SUBJECTS = ["apples", "books", "students", "marbles", "dollars", "minutes", "cookies"]
_VERBS = ["has", "buys", "sells", "gives away", "finds", "loses", "needs"]


def training_corpus() -> list[str]:
    """The small, deterministic corpus the tokenizer is trained on."""
    lines = list(_FIXED_SENTENCES)
    for i in range(200):
        a, b = (7 * i + 3) % 97, (13 * i + 5) % 89
        subject = _SUBJECTS[i % len(_SUBJECTS)]
        verb = _VERBS[(i // 3) % len(_VERBS)]
        lines.append(
            f"Tom {verb} {a} {subject}, then {b} more. {a} + {b} = {a + b}, "
            f"so the answer is \\boxed{{{a + b}}}."
        )
        lines.append(
            f"Step {i % 9 + 1}: compute \\frac{{{a}}}{{{b + 1}}} \\cdot {i % 11} "
            f"and simplify; $x^{{{i % 5}}} = {a * b}$."
        )
    return lines


def build_tokenizer(vocab_size: int = VOCAB_SIZE, corpus: list[str] | None = None, pre_tokenizer=None):
    """The package's :func:`~qr_adapters.toy_model.chat_tokenizer.build_tokenizer`, trained by
    default on :func:`training_corpus` with ``VOCAB_SIZE`` tokens."""
    return chat_tokenizer.build_tokenizer(vocab_size, training_corpus() if corpus is None else corpus, pre_tokenizer)


def default_logit_bias() -> dict[str, float]:
    """Tokens a random model must not emit if generation is to reach its budget."""
    return {t: SUPPRESS for t in (*SPECIAL_TOKENS, THINK_START)}


def build_tiny_model(
    path: Path,
    seed: int = 0,
    *,
    logit_bias: Mapping[str, float] | None = None,
) -> Path:
    """Write tokenizer, config, generation config and safetensors weights to ``path``.

    ``logit_bias`` maps token strings to an approximate additive logit bias; ``None``
    means :func:`default_logit_bias` (no eos, bos, pad, role or ``<think>`` tokens, so
    greedy generation runs to ``max_gen_toks``). Pass ``{}`` for plain random weights.
    Returns ``path``.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    vocab = len(tokenizer)
    bias = default_logit_bias() if logit_bias is None else dict(logit_bias)

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()

    with torch.no_grad():
        # Bias channel: the last residual dimension is a constant c for every token.
        d = HIDDEN - 1
        embed = model.model.embed_tokens.weight
        c = float(embed[:, :d].norm(dim=1).mean())
        embed[:, d] = c
        for layer in model.model.layers:
            # The layers neither read nor write that dimension ...
            layer.input_layernorm.weight[d] = 0.0
            layer.post_attention_layernorm.weight[d] = 0.0
            layer.self_attn.o_proj.weight[d, :] = 0.0
            layer.mlp.down_proj.weight[d, :] = 0.0
        # ... so after the final norm it is positive and nearly constant, and lm_head's
        # column d acts as a per-token logit bias once divided by that value.
        lm_head = model.lm_head.weight
        lm_head[:, d] = 0.0
        probe = tokenizer(training_corpus()[:8], return_tensors="pt", padding=True)
        hidden = model.model(**probe).last_hidden_state[..., d]
        scale = float(hidden[probe.attention_mask.bool()].mean())
        for token, value in bias.items():
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(f"logit_bias: unknown token {token!r}")
            lm_head[token_id, d] = value / scale

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
