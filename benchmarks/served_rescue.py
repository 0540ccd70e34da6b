"""What loop rescue through a served endpoint costs and saves (not run by CI).

Starts two local ``vllm serve`` processes (``qr_adapters.served``) of the embedded toy
reasoning model: full precision, and simulated RTN W2 (``qr-eval quantize``'s checkpoint).
Then, in one run, through lm-eval's ``generate_until`` on ``qr_toy`` prompts:

1. **cost**, on the full-precision server (it does not loop): requests/s and generated
   tokens/s of plain ``local-completions`` and of ``qr-completions`` armed (``rescue=commit``,
   side file on, vLLM's repetition detection in every request: ``watch=engine``, what
   ``auto`` picks), with ``watch=chunks`` in one chunk beside it (the same client, no
   detection in the engine), at concurrency 1 and 8, rounds alternating, each one's best
   kept; target armed/plain >= 0.95;
2. **saving**, on the W2 server: the wall time of the same requests through ``qr-completions``
   (side file on) with rescue off and with ``rescue=commit_then_fallback`` (the
   full-precision server as reference), the tokens each generated and the share answered
   correctly.

    python benchmarks/served_rescue.py                 # 64 problems, W2 in the demo's groups
    python benchmarks/served_rescue.py --problems 100 --quant rtn-w2g32 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from lm_eval.api.instance import Instance
from lm_eval.models.openai_completions import LocalCompletionsAPI

from lm_eval_tasks.qr_toy import utils as toy
from qr_adapters.completions import QRCompletions
from qr_adapters.quant import cached_quantized_checkpoint, parse_quant
from qr_adapters.served import vllm_server
from qr_adapters.toy_model import TOY_MODEL_DIR
from qr_leaderboard.demo.story import GROUP_SIZE, RESCUE
from qr_metrics.graders import grader_for_task

MAX_LEN = 1024
SERVE_ARGS = ("--dtype", "float32", "--max-model-len", str(MAX_LEN), "--enforce-eager", "--max-num-seqs", "16")
BUDGET = 512  # qr_toy's max_gen_toks


def requests_for(lm, docs: list[dict]) -> list[Instance]:
    chats = [[{"role": "user", "content": toy.doc_to_text(doc)}] for doc in docs]
    return [Instance("generate_until", doc, (lm.apply_chat_template(chat), {"until": [], "max_gen_toks": BUDGET,
                                                                            "do_sample": False}),
                     0, metadata=("qr_toy", i, 1)) for i, (doc, chat) in enumerate(zip(docs, chats))]


def timed(lm, docs: list[dict]) -> dict:
    """One ``generate_until`` over the docs: wall seconds, requests/s, generated tokens/s."""
    requests = requests_for(lm, docs)
    started = time.perf_counter()
    texts = lm.generate_until(requests, disable_tqdm=True)
    seconds = time.perf_counter() - started
    tokens = sum(len(lm.tokenizer.encode(t, add_special_tokens=False)) for t in texts)
    grade = grader_for_task("qr_toy")
    correct = sum(grade.is_correct(t, doc["answer"]) for t, doc in zip(texts, docs))
    return {"seconds": seconds, "requests_per_s": len(docs) / seconds, "tokens_per_s": tokens / seconds,
            "tokens": tokens, "accuracy": correct / len(docs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=64, help="qr_toy problems per run (default 64)")
    parser.add_argument("--quant", default=f"rtn-w2g{GROUP_SIZE}",
                        help=f"the low-bit server's RTN spec (default rtn-w2g{GROUP_SIZE}, the demo's W2)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds, best kept (default 2)")
    parser.add_argument("--model", default=str(TOY_MODEL_DIR), help="full-precision model (default: the toy model)")
    args = parser.parse_args()
    docs = toy.problems(toy.TEST_SEED, args.problems)
    lowbit_model = cached_quantized_checkpoint(args.model, parse_quant(args.quant))
    work = Path(tempfile.mkdtemp(prefix="qr-served-bench-"))

    with ExitStack() as stack:
        print("starting two vllm serve processes ...", flush=True)
        full = stack.enter_context(vllm_server(args.model, *SERVE_ARGS, log=work / "full.log"))
        low = stack.enter_context(vllm_server(lowbit_model, *SERVE_ARGS, log=work / "lowbit.log"))
        common = {"model": args.model, "tokenizer_backend": "huggingface", "max_length": MAX_LEN}

        def plain(concurrency: int):
            return LocalCompletionsAPI(base_url=full.url, num_concurrent=concurrency, **common)

        def armed(watch: str):
            return lambda concurrency: QRCompletions(
                base_url=full.url, num_concurrent=concurrency, rescue="commit", watch=watch, chunk_tokens=BUDGET,
                sidecar=str(work / "armed.jsonl"), **common)

        modes = {"plain": plain, "armed": armed("engine"), "chunks": armed("chunks")}
        timed(plain(8), docs[:8])  # warm up the server
        cost = {}
        for concurrency in (1, 8):
            best: dict[str, dict] = {}
            for _ in range(args.rounds):
                for name, make in modes.items():
                    result = timed(make(concurrency), docs)
                    if name not in best or result["tokens_per_s"] > best[name]["tokens_per_s"]:
                        best[name] = result
            assert len({r["tokens"] for r in best.values()}) == 1, "an armed run generated other tokens than plain"
            cost[concurrency] = best
            print(f"concurrency {concurrency} done", flush=True)

        saving = {}
        low_args = {**common, "model": str(lowbit_model), "num_concurrent": 8}
        saving["off"] = timed(QRCompletions(base_url=low.url, sidecar=str(work / "plain.jsonl"), **low_args), docs)
        saving["on"] = timed(QRCompletions(base_url=low.url, reference_base_url=full.url, reference=args.model,
                                           sidecar=str(work / "rescued.jsonl"), **RESCUE, **low_args), docs)

    print(f"\n{args.problems} qr_toy problems, greedy, max_gen_toks {BUDGET}; two local vllm serve (CPU build) "
          f"of {Path(args.model).name}; best of {args.rounds} alternating rounds")
    print("\n1. cost on the full-precision server (no loop): plain local-completions vs qr-completions armed "
          "(watch=engine, what auto picks on vLLM) and, beside it, watch=chunks in one chunk (no repetition_detection)")
    print(f"{'concurrency':>11}  {'plain req/s':>11}  {'armed req/s':>11}  {'plain tok/s':>11}  {'armed tok/s':>11}  "
          f"{'armed/plain':>11}  {'chunks/plain':>12}")
    for concurrency, best in cost.items():
        p, a, c = best["plain"], best["armed"], best["chunks"]
        print(f"{concurrency:11d}  {p['requests_per_s']:11.2f}  {a['requests_per_s']:11.2f}  {p['tokens_per_s']:11.0f}  "
              f"{a['tokens_per_s']:11.0f}  {a['tokens_per_s'] / p['tokens_per_s']:11.3f}  "
              f"{c['tokens_per_s'] / p['tokens_per_s']:12.3f}")
    print("target: armed/plain >= 0.95")
    off, on = saving["off"], saving["on"]
    print(f"\n2. saving on the {args.quant} server, concurrency 8: rescue off vs {RESCUE['rescue']} "
          "(reference: the full-precision server)")
    print(f"{'rescue':>6}  {'wall s':>8}  {'tokens':>8}  {'accuracy':>8}")
    for name, r in (("off", off), ("on", on)):
        print(f"{name:>6}  {r['seconds']:8.1f}  {r['tokens']:8d}  {100 * r['accuracy']:7.1f}%")
    print(f"rescue saves {off['seconds'] - on['seconds']:.1f} s of {off['seconds']:.1f} s "
          f"({100 * (1 - on['seconds'] / off['seconds']):.0f} %)")


if __name__ == "__main__":
    main()
