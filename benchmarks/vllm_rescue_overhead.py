"""What watching for loops costs inside vLLM, for each way to watch (not run by CI).

Prints, from one run on one real vLLM engine (the CPU build on a CPU machine), for each batch
size: generated tokens/s with nothing armed, and armed with each watch while no loop occurs
(sampling at temperature 1 from random weights: no request loops, which the run checks):

- ``engine``: vLLM's ``SamplingParams.repetition_detection`` (max_pattern_size=256,
  min_pattern_size=4, min_count=3), which the scheduler checks per request per step;
- ``processor``: qr-eval's :class:`~qr_adapters.vllm_watch.LoopWatch` logits processor;
- ``chunks``: generation in chunks of ``--chunk`` ids (``TokensPrompt`` continuations,
  prefix caching on) with :class:`~qr_metrics.loops.BatchLoopDetector` between chunks;

each one's throughput ratio to plain, and its CPU time per engine step:

- engine: ``check_sequence_repetition`` timed in this process on the engine run's own
  output ids (as ``ConstantList``, as the scheduler holds them), once per request, summed
  over the batch, averaged over output lengths;
- processor: ``LoopWatch.update_state`` + ``apply`` timed inside the engine (a timed
  subclass writes its totals to a file), per step with watched requests; beside it, the
  same class driven in this process with the same batch shape (warm caches: inside the
  engine every step follows a forward pass that has flushed them);
- chunks: ``BatchLoopDetector.push`` of each chunk, timed in this process, per id.

Modes alternate within each round and each mode's best round is kept. Targets: at batch 256
the watch costs under 250 us a step and armed/plain throughput is at least 0.97. The engine
has the processor installed throughout; requests without the watch key skip it.

    python benchmarks/vllm_rescue_overhead.py                      # builds a small Llama
    python benchmarks/vllm_rescue_overhead.py --model DIR --batches 1,64,256 --tokens 1024
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch
from vllm import LLM, SamplingParams, TokensPrompt
from vllm.sampling_params import RepetitionDetectionParams
from vllm.v1.core.sched.utils import check_sequence_repetition
from vllm.v1.sample.logits_processor import BatchUpdate
from vllm.v1.utils import ConstantList

from qr_adapters.vllm_watch import LoopWatch, LoopWatchArgs
from qr_metrics.loops import BatchLoopDetector

TIMING_ENV = "QR_WATCH_TIMING"
WATCHES = ("engine", "processor", "chunks")
ENGINE_DETECTION = RepetitionDetectionParams(max_pattern_size=256, min_pattern_size=4, min_count=3)


def build_model(path: Path) -> Path:
    """The tests' tiny reasoning model (its tokenizer, its bias channel keeping eos and the
    special tokens out), at a size whose decoding step is not trivially small: hidden 512,
    4 layers, 8 query heads of 64, 2 key/value heads."""
    # The tests' helpers: tests/ is on sys.path only while ``helpers`` is imported, since
    # there tests/qr_adapters/ ... would shadow the packages of those names.
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    sys.path.insert(0, tests)
    importlib.import_module("helpers")
    sys.path.remove(tests)
    from helpers import tiny_model

    with mock.patch.multiple(tiny_model, HIDDEN=512, LAYERS=4, HEADS=8, KV_HEADS=2):
        return tiny_model.build_tiny_model(path)


class TimedLoopWatch(LoopWatch):
    """``LoopWatch`` adding up its own time; the totals go to ``$QR_WATCH_TIMING`` each time
    the last watched request has left the batch. (At module level: the engine process
    unpickles it by name.)"""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._timing = {"seconds": 0.0, "steps": 0}

    def update_state(self, batch_update) -> None:
        watched = bool(self._active)
        started = time.perf_counter()
        super().update_state(batch_update)
        self._timing["seconds"] += time.perf_counter() - started
        if watched and not self._active:
            path = Path(os.environ[TIMING_ENV])
            part = path.with_suffix(".part")
            part.write_text(json.dumps(self._timing))
            part.replace(path)
            self._timing = {"seconds": 0.0, "steps": 0}

    def apply(self, logits):
        started = time.perf_counter()
        logits = super().apply(logits)
        if self._active:
            self._timing["seconds"] += time.perf_counter() - started
            self._timing["steps"] += 1
        return logits


class Bench:
    def __init__(self, model: Path, max_batch: int, tokens: int, chunk: int, timing_file: Path) -> None:
        from transformers import AutoTokenizer

        self.tokens, self.chunk, self.timing_file = tokens, chunk, timing_file
        self.tok = AutoTokenizer.from_pretrained(model)
        self.llm = LLM(model=str(model), dtype="float32", enforce_eager=True, seed=0, max_num_seqs=max_batch,
                       max_model_len=64 + tokens + 8, logits_processors=[TimedLoopWatch])
        rng = np.random.default_rng(0)
        words = "so the sum of we get wait let me check that is then it gives x y n".split()
        chats = [[{"role": "user", "content": " ".join(rng.choice(words, 12))}] for _ in range(max_batch)]
        template = dict(add_generation_prompt=True, tokenize=True, return_dict=True)
        self.prompts = [list(self.tok.apply_chat_template(chat, **template)["input_ids"]) for chat in chats]
        self.watch = LoopWatchArgs(eos_id=self.tok.eos_token_id, close_id=self.tok.convert_tokens_to_ids("</think>"))

    def params(self, watch: str, max_tokens: int) -> SamplingParams:
        extra: dict = {}
        if watch == "engine":
            extra["repetition_detection"] = ENGINE_DETECTION
        elif watch == "processor":
            extra["extra_args"] = self.watch.extra_args()
        return SamplingParams(temperature=1.0, max_tokens=max_tokens, **extra)

    def run(self, watch: str, batch: int) -> dict:
        """Generate ``tokens`` ids for ``batch`` prompts: tokens/s, the ids, how many
        requests a watch stopped, and the watch's own seconds and steps."""
        prompts = self.prompts[:batch]
        result = {"fired": 0, "seconds": 0.0, "steps": 0}
        if watch != "chunks":
            self.timing_file.unlink(missing_ok=True)
            started = time.perf_counter()
            outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts],
                                        self.params(watch, self.tokens), use_tqdm=False)
            wall = time.perf_counter() - started
            ids = [list(o.outputs[0].token_ids) for o in outputs]
            result["fired"] = sum(o.outputs[0].finish_reason != "length" for o in outputs)
            if watch == "processor":
                self.flush()
                timing = json.loads(self.timing_file.read_text())
                result["seconds"], result["steps"] = timing["seconds"], timing["steps"]
        else:
            detector = BatchLoopDetector(batch)
            ids = [[] for _ in prompts]
            wall = 0.0
            while len(ids[0]) < self.tokens:
                size = min(self.chunk, self.tokens - len(ids[0]))
                started = time.perf_counter()
                outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p + i) for p, i in zip(prompts, ids)],
                                            self.params("plain", size), use_tqdm=False)
                block = np.array([list(o.outputs[0].token_ids) for o in outputs])
                pushed = time.perf_counter()
                onset, _ = detector.push(block)
                done = time.perf_counter()
                wall += done - started
                result["seconds"] += done - pushed
                result["steps"] += size
                result["fired"] += int((onset >= 0).sum())
                for row, new in zip(ids, block.tolist()):
                    row.extend(new)
        assert all(len(i) == self.tokens for i in ids), f"{watch}: a request ended before the budget"
        result["tokens_per_s"] = batch * self.tokens / wall
        result["ids"] = ids
        return result

    def flush(self) -> None:
        """One unwatched step, so that the engine has removed the finished requests (the timed
        processor then writes its totals)."""
        self.llm.generate([TokensPrompt(prompt_token_ids=self.prompts[0])], self.params("plain", 1), use_tqdm=False)


def engine_check_s_per_step(outputs: list[list[int]], samples: int = 12) -> float:
    """``check_sequence_repetition`` as the scheduler runs it (once per request per step, on
    the request's ``ConstantList`` of output ids), per step, averaged over output lengths."""
    per_step = []
    for n in np.linspace(1, len(outputs[0]), samples).astype(int):
        lists = [ConstantList(ids[:n]) for ids in outputs]
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for ids in lists:
                check_sequence_repetition(ids, ENGINE_DETECTION)
            best = min(best, time.perf_counter() - started)
        per_step.append(best)
    return float(np.mean(per_step))


def processor_here_s_per_step(outputs: list[list[int]], watch: LoopWatchArgs, slots: int) -> float:
    """``LoopWatch`` driven in this process as the engine drives it (requests join, then one
    id per request per step, from the run's own output ids), per step."""
    config = SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=slots, async_scheduling=False))
    processor = LoopWatch(config, torch.device("cpu"), False)
    params = SamplingParams(extra_args=watch.extra_args())
    params._eos_token_id = watch.eos_id  # as the engine's input processor sets it
    lists: list[list[int]] = [[] for _ in outputs]
    logits = torch.zeros(len(outputs), 8)
    started = time.perf_counter()
    processor.update_state(BatchUpdate(len(outputs), [], [(i, params, [], out) for i, out in enumerate(lists)], []))
    for step in range(len(outputs[0])):
        processor.update_state(None)
        processor.apply(logits)
        for out, ids in zip(lists, outputs):
            out.append(ids[step])
    seconds = time.perf_counter() - started
    ids_appended = time.perf_counter()
    for step in range(len(outputs[0])):  # the appends alone, to take them out
        for out, ids in zip(lists, outputs):
            out.append(ids[step])
    return (seconds - (time.perf_counter() - ids_appended)) / len(outputs[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,64,256", help="comma-separated batch sizes (default 1,64,256)")
    parser.add_argument("--tokens", type=int, default=256, help="ids generated per request (default 256)")
    parser.add_argument("--chunk", type=int, default=128,
                        help="ids per chunk in the chunks watch (default 128, so that --tokens needs 2 chunks; "
                             "qr-vllm's chunk_tokens default is 512)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds; each mode's best is kept (default 3)")
    parser.add_argument("--model", help="model directory (default: a small random Llama built here)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = Path(tempfile.mkdtemp(prefix="qr-vllm-watch-"))
    os.environ[TIMING_ENV] = str(work / "timing.json")
    model = Path(args.model) if args.model else build_model(work / "model")
    bench = Bench(model, max(batches), args.tokens, args.chunk, work / "timing.json")

    rows = []
    bench.run("plain", 1)  # warm up
    for batch in batches:
        best: dict[str, dict] = {}
        fired = {watch: 0 for watch in ("plain", *WATCHES)}
        for _ in range(args.rounds):
            for watch in ("plain", *WATCHES):
                result = bench.run(watch, batch)
                fired[watch] += result["fired"]
                if watch not in best or result["tokens_per_s"] > best[watch]["tokens_per_s"]:
                    best[watch] = result
        assert not any(fired.values()), f"a watch fired or a request stopped early: {fired}"
        cost = {
            "engine": engine_check_s_per_step(best["engine"]["ids"]),
            "processor": best["processor"]["seconds"] / max(1, best["processor"]["steps"]),
            "here": processor_here_s_per_step(best["processor"]["ids"], bench.watch, max(batches)),
            "chunks": best["chunks"]["seconds"] / max(1, best["chunks"]["steps"]),
        }
        rows.append((batch, best, cost))
        print(f"batch {batch} done", flush=True)

    print(f"\n{args.tokens} ids per request, sampled at temperature 1 (no request looped, no watch fired); "
          f"chunks of {args.chunk}; best of {args.rounds} alternating rounds.")
    print("\ntokens/s (armed / plain)")
    print(f"{'batch':>5}  {'plain':>7}  " + "  ".join(f"{w:>15}" for w in WATCHES))
    for batch, best, _ in rows:
        plain = best["plain"]["tokens_per_s"]
        cells = "  ".join(f"{best[w]['tokens_per_s']:7.0f} ({best[w]['tokens_per_s'] / plain:5.3f})" for w in WATCHES)
        print(f"{batch:5d}  {plain:7.0f}  {cells}")
    print("\nwatch CPU time per step, us                                  plain step")
    print(f"{'batch':>5}  {'engine':>9}  {'processor':>9}  {'(here)':>9}  {'chunks':>9}  {'ms':>10}")
    for batch, best, cost in rows:
        step_ms = batch * 1e3 / best["plain"]["tokens_per_s"]
        print(f"{batch:5d}  {cost['engine'] * 1e6:9.1f}  {cost['processor'] * 1e6:9.1f}  {cost['here'] * 1e6:9.1f}  "
              f"{cost['chunks'] * 1e6:9.1f}  {step_ms:10.2f}")
    print("\nengine: check_sequence_repetition on the engine run's output ids, timed here, over the batch; "
          "processor: LoopWatch.update_state + apply, timed inside the engine (here: the same class driven in "
          "this process, warm caches); chunks: BatchLoopDetector.push of each chunk, timed here, per id.")
    print("Targets at batch 256: watch < 250 us per step, armed/plain >= 0.97.")


if __name__ == "__main__":
    main()
