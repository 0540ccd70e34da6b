"""A tiny Llama checkpoint whose *weights* write scripted traces: loops on cue in any engine.

The rigged-logits model of ``scripted_model`` cannot enter vLLM (the engine loads weights
from disk), so this one is constructed, not trained: a one-layer Llama (heads of 32, a size
vLLM's CPU attention runs) whose greedy next id is a function of the current id and of a
*marker* token in the prompt. ``qr-hf``, ``qr-vllm`` and a ``vllm serve`` process load it
from its directory like any checkpoint.

How the weights do it (residual stream in four blocks: the current id one-hot, the marker's
mode one-hot, a constant one, the next id's scores):

- the embedding writes the current id and the constant;
- one attention head, query from the constant and key from marker ids only (in the
  lowest-frequency rotary pair, with a large rope theta, so position does not matter),
  copies the prompt's marker into the mode block at every later position;
- the MLP has one unit per transition: its gate fires (SiLU of +10) only when both the
  current id and the mode match, and adds the next id's score; a script's default
  transition fires on the mode alone, with half the weight, and a script without a marker
  applies to every prompt, weaker still;
- ``lm_head`` reads the scores; eos carries a small bias, so an id with no transition ends
  the trace.

A script is a set of :class:`Chain` s. Consecutive ids of a chain are transitions, so
within one script an id may be followed by one id only: the builder refuses texts that
break that, naming the id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from helpers.tiny_model import ASSISTANT, BOS, THINK_START, USER, build_tokenizer

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ '" + USER + "' + message['content'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '" + ASSISTANT + THINK_START + "' }}{%- endif -%}"
)
"""R1 style, but the generation prompt ends at the open tag, so every script starts after
one known id (``<think>``), never after a newline its text may hold."""

GATE = 20.0  # a unit's gate is +-GATE/2 when it fires / does not: SiLU(+10) = 10, SiLU(-10) ~ 0
RULE, MODE_DEFAULT, GLOBAL_RULE, GLOBAL_DEFAULT, EOS_BIAS = 1.0, 0.5, 0.3, 0.15, 0.05
KEY = 13.5  # query x key / sqrt(32) ~ 32: the marker takes all the attention


@dataclass(frozen=True)
class Chain:
    """After id ``after`` (None: after any id the script has no transition for) write
    ``ids``, then repeat ``repeat`` forever, or end with eos when it is empty."""

    after: int | None
    ids: tuple[int, ...]
    repeat: tuple[int, ...] = ()


@dataclass(frozen=True)
class Script:
    """What a model writes when ``marker`` is in the prompt (None: whatever the prompt)."""

    marker: str | None
    chains: tuple[Chain, ...] = field(default_factory=tuple)


def looping_tokenizer(markers: list[str]):
    """The tiny tokenizer with the markers as single ids and the chat template above."""
    from tokenizers import AddedToken

    tokenizer = build_tokenizer()
    tokenizer.add_tokens([AddedToken(m, special=False, normalized=False) for m in markers])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def transitions(chains: tuple[Chain, ...], eos: int) -> dict[int | None, int]:
    """{current id (None: any other): next id} of one script; a second successor is an error."""
    table: dict[int | None, int] = {}

    def add(current: int | None, following: int) -> None:
        if table.setdefault(current, following) != following:
            raise ValueError(f"id {current} is followed by both {table[current]} and {following} in one script")

    for chain in chains:
        ids = [chain.after, *chain.ids, *chain.repeat]
        for current, following in zip(ids, ids[1:]):
            add(current, following)
        if chain.repeat:
            add(ids[-1], chain.repeat[0])
        else:
            add(ids[-1], eos)
    return table


def build_looping_checkpoint(path: Path, tokenizer, scripts: list[Script], markers: list[str],
                             end_token: str | None = None) -> Path:
    """Write a checkpoint that writes ``scripts`` (markers: every mode the tokenizer knows, in
    the same order for models that must share a vocabulary). ``end_token``: chains end with
    this id instead of the tokenizer's eos, and the generation config lists both as eos ids
    (as Llama 3 and Qwen checkpoints do)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    vocab, modes = len(tokenizer), len(markers)
    if modes > 32:
        raise ValueError(f"{modes} markers: at most 32 (one value dimension each)")
    eos = tokenizer.eos_token_id if end_token is None else tokenizer.convert_tokens_to_ids(end_token)
    tok, mode, one, nxt = 0, vocab, vocab + modes, vocab + modes + 1
    hidden = -(-(2 * vocab + modes + 1) // 64) * 64
    units = []  # (mode or None, current id or None, next id, weight)
    for script in scripts:
        m = None if script.marker is None else markers.index(script.marker)
        for current, following in transitions(script.chains, eos).items():
            weight = (RULE if current is not None else MODE_DEFAULT) if m is not None else (
                GLOBAL_RULE if current is not None else GLOBAL_DEFAULT)
            units.append((m, current, following, weight))
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=max(32, -(-len(units) // 32) * 32),
        num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, head_dim=32,
        max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        tie_word_embeddings=False, rms_norm_eps=1e-6, dtype="float32",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        embed = model.model.embed_tokens.weight
        embed[torch.arange(vocab), tok + torch.arange(vocab)] = 1.0
        embed[:, one] = 1.0
        layer = model.model.layers[0]
        layer.input_layernorm.weight.fill_((2 / hidden) ** 0.5)  # id + constant: ones stay ones
        layer.post_attention_layernorm.weight.fill_((3 / hidden) ** 0.5)  # ... + mode
        model.model.norm.weight.fill_(1.0)
        attention = layer.self_attn
        attention.q_proj.weight[15, one] = KEY  # rotary pair (15, 31): the slowest
        for m, marker in enumerate(markers):
            marker_id = tokenizer.convert_tokens_to_ids(marker)
            attention.k_proj.weight[15, tok + marker_id] = KEY
            attention.v_proj.weight[m, tok + marker_id] = 1.0
            attention.o_proj.weight[mode + m, m] = 1.0
        mlp = layer.mlp
        for u, (m, current, following, weight) in enumerate(units):
            needed = (m is not None) + (current is not None)
            if m is not None:
                mlp.gate_proj.weight[u, mode + m] = GATE
            if current is not None:
                mlp.gate_proj.weight[u, tok + current] = GATE
            mlp.gate_proj.weight[u, one] = GATE * (0.5 - needed)
            mlp.up_proj.weight[u, one] = 1.0
            mlp.down_proj.weight[nxt + following, u] = weight
        model.lm_head.weight[torch.arange(vocab), nxt + torch.arange(vocab)] = 1.0
        model.lm_head.weight[eos, one] = EOS_BIAS
    eos_ids = sorted({tokenizer.eos_token_id, eos})
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=eos_ids if len(eos_ids) > 1 else eos,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


# -- the pair the adapter tests run: a low-bit model that loops on cue and its reference ----------

CLOSE = "\n</think>\n\n"  # RescueParams.close_text
ANSWER_PREFIX = "Let me see: the answer is \\boxed{42}.\n"
NO_ANSWER_PREFIX = "Hmm let me think!"
BLOCK = "Wait, check it again. "
LOWBIT_ANSWER = "So: \\boxed{5}"  # what the low-bit writes after a forced close
EASY = "Easy: two.</think>The answer is \\boxed{2}."
PLAN = "Plan: sum then verify."
REFERENCE_TAIL = "Thus 7.</think>Final: \\boxed{7}."
EARLY_PREFIX = "Ok!"
LONG_IDS = tuple(range(300, 700))  # a cycle of 400 ids: longer than any loop period, never closed
END = "<|User|>"  # the low-bit ends its traces with a generation-config eos id, not the tokenizer's
MARKERS = ["[LOOPANSWER]", "[LOOPNONE]", "[EASY]", "[PLANME]", "[LONG]", "[EARLY]"]


def build_rescue_pair(root: Path) -> tuple[Path, Path]:
    """(low-bit, reference) checkpoints sharing one tokenizer, for the rescue tests.

    Low-bit: [LOOPANSWER] writes ANSWER_PREFIX then BLOCK forever; [LOOPNONE] NO_ANSWER_PREFIX
    then BLOCK forever, and LOWBIT_ANSWER after a forced close (both start their script
    after a plan too); [EASY] writes EASY (after a plan too); [PLANME]
    writes EASY after whatever it is handed; [LONG] writes LONG_IDS; [EARLY] writes
    EARLY_PREFIX then BLOCK forever. Reference: [PLANME] writes PLAN, anything else
    REFERENCE_TAIL.
    """
    tokenizer = looping_tokenizer(MARKERS)
    ids = lambda text: tuple(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    think = tokenizer.convert_tokens_to_ids(THINK_START)
    lowbit = [
        Script("[LOOPANSWER]", (Chain(think, ids(ANSWER_PREFIX), ids(BLOCK)), Chain(None, ids(ANSWER_PREFIX), ids(BLOCK)))),
        Script("[LOOPNONE]", (Chain(think, ids(NO_ANSWER_PREFIX), ids(BLOCK)), Chain(None, ids(NO_ANSWER_PREFIX), ids(BLOCK)),
                              Chain(ids(CLOSE)[-1], ids(LOWBIT_ANSWER)))),
        Script("[EASY]", (Chain(think, ids(EASY)), Chain(None, ids(EASY)))),
        Script("[PLANME]", (Chain(None, ids(EASY)),)),
        Script("[LONG]", (Chain(think, (), LONG_IDS),)),
        Script("[EARLY]", (Chain(think, ids(EARLY_PREFIX), ids(BLOCK)),)),
    ]
    reference = [Script("[PLANME]", (Chain(think, ids(PLAN)),)), Script(None, (Chain(None, ids(REFERENCE_TAIL)),))]
    root = Path(root)
    return (build_looping_checkpoint(root / "lowbit", tokenizer, lowbit, MARKERS, end_token=END),
            build_looping_checkpoint(root / "reference", tokenizer, reference, MARKERS))


def prompt(marker: str, question: str) -> str:
    """The chat-templated prompt of a question that selects ``marker``'s script."""
    return f"{BOS}{USER}{marker} {question}{ASSISTANT}{THINK_START}"


# -- what the rescue tests of every backend share -------------------------------------------------

MAX_LEN = 1024
BUDGET = 160
COMMIT = "The final answer is $\\boxed{42}$."  # RescueParams.commit_template with [LOOPANSWER]'s answer
TIMINGS = ("wall_s", "decode_s_per_token")  # the side-record fields that differ from run to run

MATH_PROBLEMS = [("[LOOPANSWER] what is $6 \\cdot 7$?", "42"), ("[LOOPNONE] what is $3 + 4$?", "7"),
                 ("[EASY] what is $1 + 1$?", "2")]
"""A ``qr_math`` copy on which rescue commits (doc 0), falls back (doc 1) and stays off (doc 2)."""


def write_math_problems(path: Path) -> Path:
    """:data:`MATH_PROBLEMS` as a MATH-500 file (``--metadata '{"qr_data": PATH}'``)."""
    path.write_text("".join(json.dumps({"problem": p, "answer": a, "solution": "", "subject": "Algebra", "level": 1,
                                        "unique_id": f"t/{i}"}) + "\n" for i, (p, a) in enumerate(MATH_PROBLEMS)))
    return path


def generate(lm, questions: list[str], budget: int = BUDGET, repeats: int = 1) -> list[str]:
    """lm-eval's ``generate_until`` over questions that start with a script's marker."""
    from lm_eval.api.instance import Instance

    requests = [
        Instance("generate_until", {"question": q},
                 (lm.apply_chat_template([{"role": "user", "content": q}]),
                  {"until": [], "max_gen_toks": budget, "do_sample": False}), r, metadata=("qr_math", d, repeats))
        for d, q in enumerate(questions) for r in range(repeats)
    ]
    return lm.generate_until(requests)


def ids(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def rescue_event(record) -> tuple:
    """(kind, trigger, position, period, answer) of a side record's one rescue."""
    (e,) = record.rescue
    return e.kind, e.trigger, e.position, e.period, e.answer
