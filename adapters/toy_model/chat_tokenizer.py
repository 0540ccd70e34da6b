"""The tokenizer and chat template of the embedded toy model (and of the tests' tiny models).

* a byte-level BPE tokenizer trained on a given corpus, saved as a ``transformers`` fast
  tokenizer;
* ``<think>`` and ``</think>`` are added tokens that are *not* special (as in
  DeepSeek-R1-Distill and Qwen3), so they stay single tokens and survive
  ``decode(..., skip_special_tokens=True)``, which is what lm-eval's HF backend uses;
* a DeepSeek-R1 style chat template: ``<|begin_of_text|>`` + ``<|User|>...`` and, with
  ``add_generation_prompt``, ``<|Assistant|><think>\\n``, so a completion holds only
  the closing ``</think>``.
"""

from __future__ import annotations

BOS = "<|begin_of_text|>"
EOS = "<|endoftext|>"
PAD = "<|pad|>"
USER = "<|User|>"
ASSISTANT = "<|Assistant|>"
THINK_START = "<think>"
THINK_END = "</think>"

SPECIAL_TOKENS = [BOS, EOS, PAD, USER, ASSISTANT]
THINK_TOKENS = [THINK_START, THINK_END]

MAX_POSITIONS = 4096

# DeepSeek-R1 style: previous assistant turns keep only the text after </think>;
# the generation prompt opens the assistant turn and the reasoning block.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{ message['content'] }}"
    "{%- elif message['role'] == 'user' -%}"
    "{{ '<|User|>' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{%- set content = message['content'] -%}"
    "{%- if '</think>' in content -%}"
    "{%- set content = content.split('</think>')[-1] | trim -%}"
    "{%- endif -%}"
    "{{ '<|Assistant|>' + content + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|Assistant|><think>\\n' }}"
    "{%- endif -%}"
)


def build_tokenizer(vocab_size: int, corpus: list[str], pre_tokenizer=None):
    """Train a byte-level BPE on ``corpus``; return a transformers fast tokenizer with the
    tokens and chat template above. ``pre_tokenizer`` replaces the plain ``ByteLevel`` one (it
    must end in a ``ByteLevel``, which the decoder undoes)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer or pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    # Not special: they must survive skip_special_tokens=True decoding (R1 / Qwen3 do the same).
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    # Prepend BOS like DeepSeek-R1-Distill; lm-eval skips it when the chat template already has it.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS} $B",
        special_tokens=[(BOS, tok.token_to_id(BOS))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=MAX_POSITIONS,
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
