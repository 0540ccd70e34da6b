"""Watching a low-bit generation for loops from outside the decoding loop, written once.

``qr-vllm`` (an engine in this process) and ``qr-completions`` (a served endpoint) cannot
look at every step as ``qr-hf`` does; they hand their generation call to :class:`Watch`,
which runs it either with the engine's own repetition detection (vLLM's finish reason
``repetition``) or in chunks with qr-eval's detector between them, and locates every loop's
onset on the returned ids with the same detector.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from qr_metrics.loops import BatchLoopDetector, detect_exact_loop
from qr_metrics.segments import split_reasoning

from .control import Batch, Trace, may_rescue, plan_batch, rescue_batch, through_stop
from .model_args import RescueParams

LowBitCall = Callable[[list[list[int]], list[int], "list[Any] | None"], tuple[list[list[int]], list[str]]]
"""One low-bit generation over token prompts: prefixes, a budget each and, optionally, each
one's repetition detection (None: unwatched) -> new ids (a final stop id dropped) and finish
reasons (``stop``, ``length`` or ``repetition``). It adds its time to the batch."""


@dataclass
class Watch:
    """The rescue parameters, the tokenizer's decode and the low-bit generation call."""

    params: RescueParams
    decode: Callable[[list[int]], str]
    call: LowBitCall

    def by_engine(self, live: list[Trace], budget: int, detection: Any) -> None:
        """The engine stops looping requests (finish reason ``repetition``); the detector finds
        the onset. A stop qr-eval would not rescue yet (before ``min_reasoning_tokens``) is
        resumed, still watched (vLLM looks for repetition in a request's own output only, so
        it stops it again a few copies later), and one after the reasoning closed is resumed
        unwatched. vLLM reports ``length`` when the budget's last id completes a loop (it
        checks the budget first), so a row at its budget is looked at too."""
        pending = [(row, [], detection) for row in live]  # (row, ids so far, its detection)
        while pending:
            new, reasons = self.call([r.prompt + r.ids + got for r, got, _ in pending],
                                     [budget - len(r.ids) - len(got) for r, got, _ in pending],
                                     [watch for _, _, watch in pending])
            resume = []
            for (row, got, _), ids, reason in zip(pending, new, reasons):
                got = got + ids
                loop = None if reason == "stop" else self.loop_at_end(row, row.ids + got)
                if reason == "repetition" and loop is None:
                    closed = not split_reasoning(self.decode(row.ids + got), self.params.measure, row.opened).unclosed
                    resume.append((row, got, None if closed else detection))
                    continue
                row.low_bit_ended(got, reason == "stop", loop, stopped_at_loop=reason == "repetition")
            pending = resume

    def in_chunks(self, live: list[Trace], budget: int, chunk_tokens: int, stops: list[str], lookback: int) -> None:
        """Generate ``chunk_tokens`` at a time (continuations of the token prompt) and run the
        detector between chunks, on every row's new ids. An engine looks for stop sequences
        in a chunk's own text, so one split between two chunks (``lookback`` ids read back)
        is looked for here."""
        detector = {id(row): BatchLoopDetector(1, self.params.measure) for row in live}
        generated: dict[int, list[int]] = {id(row): [] for row in live}
        for row in live:
            if row.ids:
                detector[id(row)].push([row.ids])
        active = list(live)
        while active:
            budgets = [min(chunk_tokens, budget - len(r.ids) - len(generated[id(r)])) for r in active]
            new, reasons = self.call([r.prompt + r.ids + generated[id(r)] for r in active], budgets, None)
            still = []
            for row, ids, reason in zip(active, new, reasons):
                so_far = generated[id(row)]
                before = len(so_far)
                so_far += ids
                recent = self.decode(so_far[max(0, before - lookback):]) if reason != "stop" and stops else ""
                if any(s in recent for s in stops):
                    del so_far[through_stop(so_far, stops, self.decode) or len(so_far):]
                    ids, reason = so_far[before:], "stop"
                onset, period = detector[id(row)].push([ids]) if ids else ([-1], [-1])
                full = row.ids + so_far
                loop = self.rescuable(row, full, (int(onset[0]), int(period[0])) if onset[0] >= 0 else None)
                at_budget = len(full) >= budget
                if reason == "stop" or loop is not None or at_budget:
                    stopped = loop is not None and not at_budget
                    row.low_bit_ended(so_far, reason == "stop", loop, stopped_at_loop=stopped)
                else:
                    still.append(row)
            active = still

    def loop_at_end(self, row: Trace, ids: list[int]) -> tuple[int, int] | None:
        """The loop a finished call's ids end in, when a rescue may act on it."""
        tail = detect_exact_loop(ids, replace(self.params.measure, loop_tail_slack=0))
        return self.rescuable(row, ids, tail and (tail.onset, tail.period))

    def rescuable(self, row: Trace, ids: list[int], loop: tuple[int, int] | None) -> tuple[int, int] | None:
        """The loop, when a rescue may act on it: late enough, and inside the reasoning."""
        if loop is None:
            return None
        closed = not split_reasoning(self.decode(ids), self.params.measure, row.opened).unclosed
        return loop if may_rescue(True, len(ids), self.params.min_reasoning_tokens, closed, False) else None


def run_watched(batch: Batch, params: RescueParams, engine, watch: Callable[[list[Trace]], None]) -> None:
    """Plan, generate the low-bit part (``watch(rows)`` when a rescue is armed), rescue."""
    if params.plan_tokens:
        plan_batch(batch, params, engine)
    live = [row for row in batch.rows if not row.done]
    if params.rescue == "off":
        new, ended = engine.generate("lowbit", [r.prompt + r.ids for r in live], batch.budget - len(live[0].ids),
                                     "generate") if live else ([], [])
        for row, ids, done in zip(live, new, ended):
            row.low_bit_ended(ids, done, None, stopped_at_loop=False)
    else:
        watch(live)
        rescue_batch(batch, params, engine)
