"""Analysis throughput: samples measured per second on synthetic traces of realistic length.

Prints samples/s without a tokenizer (words, steps, lexical loop detection) and with one
(the tiny locally trained BPE tokenizer of the tests), measured in this one run, single
process (one core). Traces: a few thousand words of varied reasoning, a quarter of them
ending in a loop cut by the budget, the rest closing and answering. They are drawn from a
pool of distinct texts (generating 100k texts of 15 KB would take longer than measuring
them); every sample is measured from scratch, nothing is cached between samples.

    python benchmarks/analyze_speed.py            # 100,000 samples without a tokenizer
    python benchmarks/analyze_speed.py --n 20000 --n-tokenizer 5000
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import tempfile
import time
from pathlib import Path

from qr_metrics.measure import measure

WORDS = (
    "we have the equation so x = y + 2 let me check that again wait maybe the area of "
    "triangle is half base times height then 3 5 12 \\frac{1}{2} hmm compute sum of roots"
).split()
LOOP = "Therefore, 15625=5^6. "


def synthetic_trace(rng: random.Random, looping: bool) -> str:
    sentences = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))) + "." for _ in range(rng.randint(120, 260))
    ]
    text = "\n\n".join(" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4))
    if looping:
        return text + " " + LOOP * rng.randint(50, 300) + LOOP[: rng.randint(1, len(LOOP) - 1)]
    return text + "\n</think>\nSo the answer is \\boxed{" + str(rng.randint(1, 99)) + "}."


def throughput(pool: list[str], n: int, tokenizer: str | None) -> float:
    start = time.perf_counter()
    for i in range(n):
        measure(pool[i % len(pool)], correct=True, tokenizer=tokenizer, max_gen_toks=32768)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="samples measured without a tokenizer")
    parser.add_argument("--n-tokenizer", type=int, default=10_000, help="samples measured with a tokenizer")
    parser.add_argument("--pool", type=int, default=1000, help="distinct synthetic traces")
    args = parser.parse_args()

    rng = random.Random(0)
    pool = [synthetic_trace(rng, looping=i % 4 == 0) for i in range(args.pool)]
    words = sum(len(t.split()) for t in pool) / len(pool)
    print(f"traces: {len(pool)} distinct, mean {words:.0f} words, {sum(map(len, pool)) / len(pool) / 1024:.1f} KiB")

    without = throughput(pool, args.n, None)
    print(f"without tokenizer: {without:8.0f} samples/s  ({args.n} samples; target >= 1000/s per core)")

    # The tests' helpers: tests/ is on sys.path only while ``helpers`` is imported, since
    # there tests/qr_adapters/ ... would shadow the packages of those names.
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    sys.path.insert(0, tests)
    importlib.import_module("helpers")
    sys.path.remove(tests)
    from helpers.tiny_model import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer().save_pretrained(tmp)
        measure(pool[0], tokenizer=tmp)  # load once, outside the timing
        with_tok = throughput(pool, args.n_tokenizer, tmp)
    print(f"with tokenizer:    {with_tok:8.0f} samples/s  ({args.n_tokenizer} samples)")
    print(f"ratio without/with: {without / with_tok:.2f}")


if __name__ == "__main__":
    main()
