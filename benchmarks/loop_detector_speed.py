"""How much the loop detectors cost, beside what they ride on (not run by CI).

Prints, from one run:
- the streaming detector's cost per token, one id per push and in blocks, against one
  decoding step of a tiny random Llama (hidden 256, 4 layers, one token with a KV cache,
  CPU): the adapters run the detector on every generated token, so it must be a small
  fraction of even a toy model's step;
- the batch cost per 3000-word trace of ``lexical_ids``, ``detect_exact_loop`` and
  ``detect_near_loop`` (offline analysis targets >= 1000 samples/s per core).

    python benchmarks/loop_detector_speed.py [--threads 1]
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from qr_metrics.loops import StreamingLoopDetector, detect_exact_loop, detect_near_loop, lexical_ids


def per_call_s(fn, number: int, repeat: int = 5) -> float:
    """Best of ``repeat`` timings of ``number`` calls, per call (the least disturbed run)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def traces(rng: np.random.Generator) -> dict[str, str]:
    """A varied 3000-word reasoning-like trace, and one whose last 1000 words are a loop."""
    vocab = "so the sum of we get wait let me check that is then it gives so x y n".split()

    def sentence() -> str:
        words = rng.choice(vocab, int(rng.integers(6, 14))).tolist()
        equation = f"{rng.integers(2, 999)}={rng.integers(2, 99)}^2"
        words.insert(int(rng.integers(0, len(words))), equation)
        return " ".join(words).capitalize() + "."

    def text(words: int) -> str:
        out, count = [], 0
        while count < words:
            out.append(sentence())
            count += len(out[-1].split())
        return "\n\n".join(out)

    varied = text(3000)
    copy = "Therefore, 15625=5^6.\n\n"
    loop = text(2000) + "\n\n" + copy * (1000 // 2)
    return {"varied": varied, "looping": loop[: len(loop) - 7]}  # the budget cuts the last copy


def tiny_llama_step_s(threads: int) -> float:
    """Seconds for one decoding step (one token, KV cache) of a small random Llama on CPU."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.inference_mode():
        out = model(input_ids=torch.randint(0, 32000, (1, 128)), use_cache=True)
        state = {"past": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

        def step() -> None:
            result = model(input_ids=state["token"], past_key_values=state["past"], use_cache=True)
            state["past"], state["token"] = result.past_key_values, result.logits[:, -1:].argmax(-1)

        return per_call_s(step, number=50)


def streaming_per_token_s(rng: np.random.Generator) -> dict[str, float]:
    """Per-token cost of ``StreamingLoopDetector`` on varied ids and inside a loop, one id per
    ``push`` and in ``extend``'s blocks (the adapters push blocks of ``check_every`` ids of the
    whole batch: ``benchmarks/rescue_overhead.py``).

    Each timing repeat goes on with the same stream: the cost does not depend on its length.
    """
    streams = {
        "varied ids": rng.integers(0, 150_000, 20_000).tolist(),
        "inside a loop": np.tile(rng.integers(0, 150_000, 13), 1600).tolist(),
    }
    costs = {}
    for name, ids in streams.items():
        detector = StreamingLoopDetector()
        costs[f"{name}, extend"] = per_call_s(lambda: detector.extend(ids), number=1) / len(ids)
        head = ids[:2000]
        costs[f"{name}, push"] = per_call_s(lambda: [detector.push(t) for t in head], number=1) / len(head)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for the model step (1: per core)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    step = tiny_llama_step_s(args.threads)
    model = f"tiny Llama decoding step (hidden 256, 4 layers, {args.threads} thread(s))"
    print(f"{model}: {step * 1e6:9.1f} us")
    for name, cost in streaming_per_token_s(rng).items():
        print(
            f"streaming detector per token, {name:>21}: {cost * 1e6:9.1f} us"
            f" = {cost / step:6.1%} of a step"
        )

    print("\nbatch, per 3000-word trace (samples/s = 1 / (lexical + exact + near)):")
    for name, text in traces(rng).items():
        whole = per_call_s(lambda: lexical_ids(text), number=20)
        tail_start = max(0, len(text) - 8192)
        tail = per_call_s(lambda: lexical_ids(text, tail_start), number=20)
        ids, _ = lexical_ids(text)
        exact = per_call_s(lambda: detect_exact_loop(ids), number=200)
        near = per_call_s(lambda: detect_near_loop(text), number=50)
        found = "exact" if detect_exact_loop(ids) else "no loop"
        print(
            f"  {name:>8} ({len(text)} chars, {len(ids)} ids, {found}): "
            f"lexical_ids {whole * 1e3:.2f} ms "
            f"(last 8 KB {tail * 1e3:.2f} ms), detect_exact_loop {exact * 1e6:.0f} us, "
            f"detect_near_loop {near * 1e6:.0f} us -> {1 / (whole + exact + near):.0f} samples/s "
            f"({1 / (exact + near):.0f} samples/s on token ids already at hand)"
        )


if __name__ == "__main__":
    main()
