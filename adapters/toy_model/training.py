"""Train the embedded tiny reasoning model on ``qr_toy`` (three-digit additions), on CPU.

``python -m qr_adapters.toy_model.training --out DIR`` writes a checkpoint that ``--model hf``
/ ``--model qr-hf`` load like any Hub model: a ``LlamaForCausalLM`` (not Qwen2: transformers 5
forces its ``Qwen2Tokenizer`` on ``model_type: qwen2``, so the tokenizer saved here would not be
the one that loads), a byte-level BPE tokenizer trained here on the task's own text with every
digit a token of its own, and the DeepSeek-R1 style chat template of ``chat_tokenizer`` (the
generation prompt opens ``<think>``; ``<think>`` and ``</think>`` are single, non-special tokens).
Everything comes from seeds: the problems (``lm_eval_tasks/qr_toy/utils.py``, train split
only), the weights' initialisation and the batch order. It prints progress, then the greedy accuracy on held-out test problems.

The checkpoint shipped beside this module, in ``qr_adapters/toy_model/`` (what ``qr-eval demo``
evaluates), is this script's output with the defaults.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainConfig:
    """Model shape and training schedule (the defaults made the shipped checkpoint)."""

    seed: int = 0
    hidden: int = 96
    layers: int = 2
    heads: int = 3
    kv_heads: int = 3
    intermediate: int = 192
    steps: int = 1200
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    slip_share: float = 0.4
    again_share: float = 0.35
    train_problems: int = 60000
    eval_problems: int = 100
    micro_batch: int = 8
    threads: int = 1


def _toy():
    from lm_eval_tasks.qr_toy import utils

    return utils


def toy_corpus(n: int = 3000, seed: int = 1) -> list[str]:
    """Text the tokenizer is trained on: prompts and solutions of train problems."""
    toy = _toy()
    rng = random.Random(seed)
    return [
        f"{toy.doc_to_text(p)}\n{toy.training_solution(p, rng, 0.5)}" for p in toy.problems(seed, n, "train")
    ]


def build_toy_tokenizer():
    """A byte-level BPE where every digit is a token (a space may precede it): arithmetic
    needs to see digits one by one."""
    from tokenizers import Regex, pre_tokenizers

    from .chat_tokenizer import build_tokenizer

    split = pre_tokenizers.Split(Regex(r" ?\d| ?[A-Za-z]+| ?[^\sA-Za-z\d]+|\s+"), behavior="isolated")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return build_tokenizer(
        vocab_size=512, corpus=toy_corpus(), pre_tokenizer=pre_tokenizers.Sequence([split, byte_level])
    )


def prompt_text(tokenizer, problem: dict) -> str:
    """The chat-templated prompt, as lm-eval's ``--apply_chat_template`` builds it."""
    messages = [{"role": "user", "content": _toy().doc_to_text(problem)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_example(tokenizer, problem: dict, completion: str) -> tuple[list[int], int]:
    """Prompt ids + completion ids + eos, and the length of the prompt part (no loss there)."""
    prompt = tokenizer(prompt_text(tokenizer, problem), add_special_tokens=False).input_ids
    target = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt + target, len(prompt)


def build_model(tokenizer, config: TrainConfig):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden,
            intermediate_size=config.intermediate,
            num_hidden_layers=config.layers,
            num_attention_heads=config.heads,
            num_key_value_heads=config.kv_heads,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    return model


def _batch(examples: list[tuple[list[int], int]], pad: int):
    import torch

    width = max(len(ids) for ids, _ in examples)
    inputs = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (ids, prompt_len) in enumerate(examples):
        inputs[i, : len(ids)] = torch.tensor(ids)
        labels[i, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
        mask[i, : len(ids)] = 1
    return inputs, mask, labels


def _accumulate(model, examples: list[tuple[list[int], int]], pad: int, micro_batch: int):
    """Backpropagate the batch's mean completion-token loss in micro-batches of similar
    lengths (less padding than one batch padded to its longest example); returns the loss."""
    examples = sorted(examples, key=lambda e: len(e[0]))
    targets = sum(len(ids) - prompt_len for ids, prompt_len in examples)
    total = 0.0
    for start in range(0, len(examples), micro_batch):
        chunk = examples[start : start + micro_batch]
        inputs, mask, labels = _batch(chunk, pad)
        share = sum(len(ids) - prompt_len for ids, prompt_len in chunk) / targets
        loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss * share
        loss.backward()
        total += loss.item()
    return total


def train(config: TrainConfig, log=print):
    """The trained model and its tokenizer."""
    import torch

    torch.set_num_threads(config.threads)
    toy = _toy()
    tokenizer = build_toy_tokenizer()
    model = build_model(tokenizer, config)
    log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, vocabulary {len(tokenizer)}")

    rng = random.Random(config.seed)
    pool = toy.problems(config.seed, config.train_problems, "train")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def rate(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    started, running = time.monotonic(), None
    for step in range(config.steps):
        chosen = [pool[rng.randrange(len(pool))] for _ in range(config.batch_size)]
        examples = [encode_example(tokenizer, p, toy.training_solution(p, rng, config.slip_share, config.again_share)) for p in chosen]
        optimizer.zero_grad(set_to_none=True)
        loss = _accumulate(model, examples, tokenizer.pad_token_id, config.micro_batch)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        running = loss if running is None else 0.95 * running + 0.05 * loss
        if (step + 1) % 50 == 0 or step + 1 == config.steps:
            log(f"step {step + 1}/{config.steps}  loss {running:.4f}  {time.monotonic() - started:.0f}s")
    model.eval()
    return model, tokenizer


def solve(model, tokenizer, problems: list[dict], max_new_tokens: int = 512, batch_size: int = 50) -> list[str]:
    """Greedy completions of ``problems`` (left-padded batches)."""
    import torch

    tokenizer.padding_side = "left"
    out = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        encoded = tokenizer(
            [prompt_text(tokenizer, p) for p in chunk], add_special_tokens=False, return_tensors="pt", padding=True
        )
        with torch.no_grad():
            ids = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False)
        out += tokenizer.batch_decode(ids[:, encoded.input_ids.shape[1] :], skip_special_tokens=True)
    return out


def accuracy(model, tokenizer, problems: list[dict], **kwargs) -> float:
    """Share of ``problems`` answered correctly, graded as the ``qr_toy`` task grades."""
    from qr_metrics.measure import measure

    completions = solve(model, tokenizer, problems, **kwargs)
    return sum(bool(measure(c, gold=p["answer"]).correct) for c, p in zip(completions, problems)) / len(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qr_adapters.toy_model.training",
        description="Train the tiny qr_toy reasoning model on CPU and save it as a transformers checkpoint.",
    )
    parser.add_argument("--out", required=True, help="directory to write the checkpoint to")
    tunable = ("seed", "steps", "batch_size", "lr", "hidden", "layers", "heads", "kv_heads", "intermediate",
               "slip_share", "again_share", "threads")
    for name in tunable:
        default = getattr(TrainConfig, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                            help=f"default {default}")
    args = parser.parse_args(argv)
    config = TrainConfig(**{name: getattr(args, name) for name in tunable})

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    model, tokenizer = train(config, log)
    out = Path(args.out)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    held_out = _toy().problems(_toy().TEST_SEED, config.eval_problems, "test")
    acc = accuracy(model, tokenizer, held_out)
    print(f"trained in {time.monotonic() - started:.0f}s; held-out accuracy {100 * acc:.1f}% "
          f"({len(held_out)} test problems, greedy); saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
