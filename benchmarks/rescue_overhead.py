"""What arming loop rescue costs, beside what it rides on (not run by CI).

Prints, from one run, for a randomly initialised model of a given shape:
- per batch size (1, 8, 64): one batched decoding step (one token per row, KV cache after a
  128-token prompt), its per-sequence share, and the loop detector's cost per generated
  token per sequence as ``qr-hf`` runs it (a block of ``check_every`` new ids copied off the
  device, then one ``BatchLoopDetector.push``), side by side with its share of a step;
  target: under 1 % at every batch size;
- tokens/s of lm-eval's ``hf`` and of ``qr-hf`` with rescue armed (the detector runs on
  every block, ``min_reasoning_tokens`` above the budget so that nothing fires), measured
  alternately on the same requests; target: a ratio of at least 0.95.

    python benchmarks/rescue_overhead.py                       # tiny Llama on CPU
    python benchmarks/rescue_overhead.py --shape qwen3-8b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qr_adapters.model_args import RescueParams
from qr_metrics.loops import BatchLoopDetector

SHAPES = {
    # A small Llama that still costs like a model on CPU (the tests' tiny one is 64 wide).
    "tiny": dict(architecture="llama", hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=4, vocab_size=32000),
    "qwen3-8b": dict(architecture="qwen3", hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936),
}
PROMPT = 128


def random_model(shape: str, device: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    spec = dict(SHAPES[shape])
    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[
        spec.pop("architecture")
    ]
    torch.manual_seed(0)
    config = config_class(**spec, max_position_embeddings=4096, tie_word_embeddings=False)
    with torch.device(device):
        model = model_class(config).to(dtype)
    return model.eval()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_of(fn, device: str, number: int, repeat: int = 3) -> float:
    """Seconds per call, best of ``repeat`` timings of ``number`` calls."""
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync(device)
        times.append((time.perf_counter() - start) / number)
    return min(times)


def step_s(model, batch: int, device: str) -> float:
    """One decoding step of ``batch`` rows after a ``PROMPT``-token prefill."""
    vocab = model.config.vocab_size
    with torch.inference_mode():
        out = model(input_ids=torch.randint(0, vocab, (batch, PROMPT), device=device), use_cache=True)
        state = {"past": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

        def step() -> None:
            result = model(input_ids=state["token"], past_key_values=state["past"], use_cache=True)
            state["past"], state["token"] = result.past_key_values, result.logits[:, -1:].argmax(-1)

        step()
        return best_of(step, device, number=10)


def detector_per_token_s(batch: int, check_every: int, device: str) -> float:
    """Detector cost per generated token of the whole batch, as the adapter pays it."""
    detector = BatchLoopDetector(batch)
    rng = np.random.default_rng(0)
    blocks = [torch.from_numpy(rng.integers(0, 150_000, (batch, check_every))).to(device) for _ in range(64)]
    for block in blocks:  # past the first loop_max_period ids, as in a real trace
        detector.push(block.cpu().numpy())
    position = iter(range(10**9))

    def check() -> None:
        detector.push(blocks[next(position) % len(blocks)].cpu().numpy())

    return best_of(check, device, number=50) / check_every


def throughput(model, device: str, batch: int, tokens: int, requests: int, rounds: int) -> dict[str, float]:
    """Generated tokens/s of ``hf`` and of ``qr-hf`` with rescue armed, alternating runs."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from qr_adapters.hf import QRHFLM
    # The tests' helpers: tests/ is on sys.path only while ``helpers`` is imported, since
    # there tests/qr_adapters/ ... would shadow the packages of those names.
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    sys.path.insert(0, tests)
    importlib.import_module("helpers")
    sys.path.remove(tests)
    from helpers.tiny_model import build_tokenizer

    folder = Path(tempfile.mkdtemp())
    build_tokenizer().save_pretrained(folder)
    common = dict(pretrained=model, tokenizer=str(folder), batch_size=batch, max_length=4096, device=device)
    models = {
        "hf": HFLM(**common),
        "qr-hf (rescue armed)": QRHFLM(**common, rescue="commit", min_reasoning_tokens=tokens + 1),
    }
    rng = np.random.default_rng(1)
    words = "so the sum of we get wait let me check that is then it gives".split()
    prompts = [" ".join(rng.choice(words, 60)) for _ in range(requests)]
    speed: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, lm in models.items():
            batch_requests = [
                Instance("generate_until", {}, (p, {"until": [], "max_gen_toks": tokens, "do_sample": False}), i)
                for i, p in enumerate(prompts)
            ]
            sync(device)
            start = time.perf_counter()
            lm.generate_until(batch_requests, disable_tqdm=True)
            sync(device)
            speed[name].append(requests * tokens / (time.perf_counter() - start))
    return {name: max(values) for name, values in speed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--check-every", type=int, default=RescueParams().check_every)
    parser.add_argument("--tokens", type=int, default=256, help="generated tokens per request (throughput)")
    parser.add_argument("--throughput-batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = random_model(args.shape, args.device, getattr(torch, args.dtype))
    print(f"{args.shape} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, random), "
          f"{args.dtype} on {args.device}, check_every={args.check_every}")
    print(f"{'batch':>5} {'step':>10} {'step/seq':>10} {'detector/token/seq':>19} {'share of step':>14}")
    for batch in (int(b) for b in args.batches.split(",")):
        step = step_s(model, batch, args.device)
        detector = detector_per_token_s(batch, args.check_every, args.device)
        print(f"{batch:>5} {step * 1e3:>8.2f}ms {step / batch * 1e6:>8.1f}us "
              f"{detector / batch * 1e6:>17.2f}us {detector / step:>14.2%}")
    speeds = throughput(model, args.device, args.throughput_batch, args.tokens,
                        requests=2 * args.throughput_batch, rounds=args.rounds)
    plain = speeds["hf"]
    print(f"\nthroughput, batch {args.throughput_batch}, {args.tokens} tokens per request (best of {args.rounds}):")
    for name, value in speeds.items():
        print(f"  {name:<22} {value:9.1f} tokens/s  ratio {value / plain:.3f}")


if __name__ == "__main__":
    main()
