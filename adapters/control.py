"""The rescue control logic, written once: ``qr-hf`` and ``qr-vllm`` call it with their engine.

A backend hands over a :class:`Batch` of :class:`Trace` rows (prompt ids in, completion ids
assembled here) and an :class:`Engine` that generates; :func:`plan` lets the reference write
the first ``plan_tokens`` ids, :func:`rescue` commits or falls back for every row cut at a loop
or at the budget, and :meth:`Batch.records` writes the side-file records.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import jsonlines

from qr_metrics.files import atomic_write
from qr_metrics.documents import prompt_hash
from qr_metrics.graders import grader_for_task
from qr_metrics.rescue import Rescue, choose_rescue
from qr_metrics.segments import prompt_opens_reasoning, split_reasoning
from qr_metrics.sidecar import RescueEvent, SideRecord

from .rescue import ModelArgumentError, RescueParams, commit_text


@dataclass
class Engine:
    """What the control logic needs from a backend for one batch.

    generate(model, prefixes, budget, phase): new ids per prefix (``model`` is ``lowbit`` or
    ``reference``; generation ends at eos, a stop sequence or ``budget`` ids) and whether each
    ended before its budget; it adds its time to the batch (``Batch.timing``).
    max_length: the longest prompt + completion the model takes (None: no limit); lm-eval
    leaves room for the budget only, so a forced close and its answer may need room made.
    """

    decode: Callable[[list[int]], str]
    encode: Callable[[str], list[int]]
    generate: Callable[[str, list[list[int]], int, str | None], tuple[list[list[int]], list[bool]]]
    clock: Callable[[], float] = time.perf_counter
    max_length: int | None = None


@dataclass
class Trace:
    """One request's completion as it is assembled, and what happened to it."""

    prompt: list[int]
    opened: bool
    task: str = ""
    ids: list[int] = field(default_factory=list)
    plan: int = 0
    lowbit: int = 0
    reference: int = 0
    finish: str = "length"
    final: str = "length"
    done: bool = False  # ended during planning
    loop: tuple[int, int] | None = None  # (onset, period) in completion ids
    events: list[RescueEvent] = field(default_factory=list)

    def keep(self, cut: int) -> None:
        """Drop ids after ``cut`` (before any rescue: the ids are the plan, then the low-bit's)."""
        self.ids = self.ids[:cut]
        self.lowbit = max(0, cut - self.plan)
        self.plan = min(self.plan, cut)

    def low_bit_ended(self, new: list[int], ended: bool, loop: tuple[int, int] | None, stopped_at_loop: bool) -> None:
        """Record the low-bit phase: its ids, and whether it stopped, ran out or looped."""
        self.ids, self.lowbit = self.ids + new, len(new)
        self.loop = loop
        if stopped_at_loop:
            self.finish = "loop"
        elif ended:
            self.finish = self.final = "stop"
            self.loop = None
        else:
            self.finish = self.final = "length"


@dataclass
class Batch:
    """The rows of one generation call, with their phase timings."""

    rows: list[Trace]
    prompts: list[str]
    keys: list[tuple[str, Any, int]]
    budget: int
    wall: dict[str, float] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0]))

    @classmethod
    def start(cls, prompts: list[str], prompt_ids: list[list[int]], keys: list[tuple], budget: int,
              params: RescueParams) -> "Batch":
        rows = [Trace(ids, prompt_opens_reasoning(text, params.measure), key[0])
                for text, ids, key in zip(prompts, prompt_ids, keys)]
        return cls(rows, list(prompts), list(keys), budget)

    def timing(self, phase: str | None, model: str, seconds: float, steps: int) -> None:
        """Add a generate call's time to its phase (None: counted by the caller) and model."""
        if phase is not None:
            self.wall[phase] = self.wall.get(phase, 0.0) + seconds
        total = self.steps[model]
        total[0], total[1] = total[0] + seconds, total[1] + max(steps, 0)

    def records(self, close_ids: list[int]) -> list[dict[str, Any]]:
        """The side-file records of the batch (``qr_metrics.sidecar``)."""
        per_token = {m: (s / n if n else None) for m, (s, n) in self.steps.items()}
        return [
            SideRecord(
                task=task, doc_id=doc_id, repeat=repeat, prompt_hash=prompt_hash(prompt),
                max_gen_toks=self.budget, completion_tokens=len(row.ids),
                reasoning_tokens=reasoning_tokens(row.ids, close_ids),
                tokens={"lowbit": row.lowbit, "reference": row.reference + row.plan},
                plan_tokens=row.plan, finish_reason=row.finish, final_finish_reason=row.final,
                rescue=row.events, wall_s=dict(self.wall), decode_s_per_token=per_token,
            ).as_json()
            for row, (task, doc_id, repeat), prompt in zip(self.rows, self.keys, self.prompts)
        ]


class SideLog:
    """Which lm-eval request each generation answers, and the side-file records so far.

    The model side sees prompts, not requests: ``expect`` notes the requests of a
    ``generate_until`` call under a key of their prompt (its text for ``qr-hf``, its token ids
    for ``qr-vllm``); the k-th request for a document is its repeat k, and identical prompts
    are answered in request order, as lm-eval's stable sort hands them out.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path or None  # ``sidecar=`` with no value writes none
        self.records: list[dict[str, Any]] = []
        self._repeats: dict[tuple[str, Any], int] = defaultdict(int)
        self._pending: dict[Hashable, deque] = defaultdict(deque)

    @property
    def recording(self) -> bool:
        return self.path is not None

    def expect(self, requests, key_of: Callable[[Any], Hashable]) -> None:
        """Note the requests; ``key_of(request)`` is the key the model side will see (for token
        ids: after the backend's own truncation)."""
        for request in requests:
            doc = (request.task_name, request.doc_id)
            self._pending[key_of(request)].append(((*doc, self._repeats[doc]), request.args[0]))
            self._repeats[doc] += 1

    def take(self, key: Hashable) -> tuple[tuple[str, Any, int], str]:
        """The (task, doc_id, repeat) and prompt text of the next request with this prompt key."""
        return self._pending[key].popleft()

    def write(self, suffix: str = "") -> None:
        """All records so far, atomically (a rerun of generate_until rewrites the whole file)."""
        if self.path is not None:
            with atomic_write(f"{self.path}{suffix}") as handle:
                jsonlines.Writer(handle).write_all(self.records)


def through_stop(ids: list[int], stop: list[str], decode: Callable[[list[int]], str]) -> int | None:
    """Length of the shortest prefix of ``ids`` whose text holds a stop sequence, or None
    (binary search: a text that holds one goes on holding it as ids are added)."""
    def holds(n: int) -> bool:
        text = decode(ids[:n])
        return any(s and s in text for s in stop)

    if not stop or not holds(len(ids)):
        return None
    low, high = 1, len(ids)
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if holds(mid) else (mid + 1, high)
    return low


def stop_lookback(stop: list[str], encode: Callable[[str], list[int]]) -> int:
    """Ids read back, before those just generated, for a stop sequence begun earlier (the
    stop's own length and 2, as lm-eval's stop criterion reads)."""
    return max((len(encode(s)) for s in stop if s), default=0) + 2


def stop_ids(eos: int | None, config_eos: int | list[int] | None) -> set[int]:
    """The ids a model's generation stops at by itself: the tokenizer's eos and every eos id of
    its generation config (Llama 3 and Qwen list several); engines keep the one they stop at."""
    more = config_eos if isinstance(config_eos, list) else [config_eos]
    return {i for i in (eos, *more) if i is not None}


def check_same_vocabulary(pretrained: Any, reference: str) -> None:
    """Planning and fallback splice ids of one model into the other: same vocabulary needed."""
    if not (isinstance(pretrained, str) and isinstance(reference, str)):
        return  # model objects (Python API): the caller vouches for them
    from transformers import AutoTokenizer  # (only here: control needs no model library)

    ours, theirs = (AutoTokenizer.from_pretrained(name).get_vocab() for name in (pretrained, reference))
    if ours != theirs:
        raise ModelArgumentError(
            f"reference={reference!r} is invalid: its vocabulary ({len(theirs)} tokens) differs from "
            f"{pretrained!r}'s ({len(ours)} tokens); planning and fallback need the same tokenizer"
        )


def reasoning_tokens(ids: list[int], close_ids: list[int]) -> int | None:
    """Ids before the last closing tag; all of them when unclosed; None if the tag is not one id."""
    if len(close_ids) != 1:
        return None
    close = close_ids[0]
    return len(ids) - 1 - ids[::-1].index(close) if close in ids else len(ids)


def plan(batch: Batch, params: RescueParams, engine: Engine) -> None:
    """The reference writes the first ``plan_tokens`` ids of every row."""
    budget = min(params.plan_tokens, batch.budget)
    new, ended = engine.generate("reference", [row.prompt for row in batch.rows], budget, "plan")
    for row, ids, done in zip(batch.rows, new, ended):
        row.ids, row.plan = list(ids), len(ids)
        if done:
            row.done, row.finish, row.final = True, "stop", "stop"
        elif len(ids) >= batch.budget:
            row.done, row.finish, row.final = True, "length", "length"


def rescue(batch: Batch, params: RescueParams, engine: Engine) -> None:
    """Commit or fall back for every row cut at a loop or at the budget inside its reasoning."""
    started = engine.clock()
    answer_jobs, fallback_jobs = [], []  # (row, prefix ids, new-token budget)
    close = engine.encode(params.close_text)
    for row in batch.rows:
        trigger = _trigger(row, params, engine)
        if trigger is None:
            continue
        cut = row.loop[0] if trigger == "loop" else len(row.ids)
        choice = _choose(row, cut, params, engine)
        room = _answer_room(row, params, engine, close)
        if _writes_answer(choice, trigger) and cut > room:
            cut = room  # the end of the reasoning makes way for the close and the answer
            choice = _choose(row, cut, params, engine)
        tokens_cut = len(row.ids) - cut
        row.keep(cut)
        row.events.append(RescueEvent(
            kind=choice.kind, trigger=trigger, position=cut,
            period=row.loop[1] if trigger == "loop" else None, answer=choice.answer, tokens_cut=tokens_cut,
        ))
        job = _apply(choice, row, trigger, batch.budget, params, engine, close)
        if job is not None:
            (answer_jobs if choice.kind == "commit" else fallback_jobs).append(job)
    for model, jobs in (("lowbit", answer_jobs), ("reference", fallback_jobs)):
        if jobs:
            _finish(model, jobs, engine)
    batch.wall["rescue"] = batch.wall.get("rescue", 0.0) + engine.clock() - started


def _choose(row: Trace, cut: int, params: RescueParams, engine: Engine) -> Rescue:
    reasoning = split_reasoning(engine.decode(row.ids[:cut]), params.measure, row.opened).reasoning
    return choose_rescue(params.rescue, reasoning, grader_for_task(row.task))


def _writes_answer(choice: Rescue, trigger: str) -> bool:
    """Whether the rescue closes the reasoning and has a model write the answer."""
    return (choice.kind == "commit" and choice.answer is None) or (choice.kind == "fallback" and trigger == "length")


def _answer_room(row: Trace, params: RescueParams, engine: Engine, close: list[int]) -> int:
    """How many completion ids fit before a forced close and ``answer_tokens``."""
    if engine.max_length is None:
        return len(row.ids)
    return max(0, engine.max_length - len(row.prompt) - len(close) - params.answer_tokens)


def _trigger(row: Trace, params: RescueParams, engine: Engine) -> str | None:
    """``loop`` when the detector cut the row, ``length`` when the budget ran out in reasoning;
    None before the trace holds ``min_reasoning_tokens`` (or after a plan used the budget)."""
    if len(row.ids) < params.min_reasoning_tokens or row.done:
        return None
    if row.loop is not None and row.finish in ("loop", "length"):
        return "loop"
    if row.finish == "length" and split_reasoning(engine.decode(row.ids), params.measure, row.opened).unclosed:
        return "length"
    return None


def _apply(choice: Rescue, row: Trace, trigger: str, budget: int, params: RescueParams, engine: Engine,
           close: list[int]) -> tuple[Trace, list[int], int] | None:
    """Append the committed answer, or the job that writes one or continues the trace."""
    if choice.kind == "commit" and choice.answer is not None:
        row.ids = row.ids + engine.encode(commit_text(params, choice.answer))
        row.final = "stop"
        return None
    if choice.kind == "commit":
        return row, row.ids + close, params.answer_tokens
    if trigger == "loop":
        return row, row.ids, max(1, budget - len(row.ids))
    return row, row.ids + close, params.answer_tokens


def _finish(model: str, jobs: list[tuple[Trace, list[int], int]], engine: Engine) -> None:
    """Run the jobs of one model as one batch; each row keeps at most its own budget."""
    budget = max(need for _, _, need in jobs)
    new, ended = engine.generate(model, [row.prompt + prefix for row, prefix, _ in jobs], budget, None)
    for (row, prefix, need), ids, done in zip(jobs, new, ended):
        row.final = "stop" if done and len(ids) <= need else "length"
        ids = ids[:need]
        row.ids = prefix + ids
        setattr(row, model, getattr(row, model) + len(ids))
