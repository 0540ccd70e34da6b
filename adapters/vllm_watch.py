"""qr-eval's loop watch inside vLLM's engine: a V1 logits processor that stops looping requests.

Build the engine with the processor and arm the requests to watch::

    llm = LLM(model, logits_processors=[LoopWatch])
    watch = LoopWatchArgs(eos_id=tokenizer.eos_token_id, close_id=think_close_id,
                          min_reasoning_tokens=64)
    llm.generate(prompts, SamplingParams(max_tokens=4096, extra_args=watch.extra_args()))

A request that ends in an exact loop (DESIGN.md section 3, no tail slack: what
``detect_exact_loop(ids, loop_tail_slack=0)`` reports on its ids so far), whose reasoning is
still open (no ``close_id`` yet) and that holds at least ``min_reasoning_tokens`` ids, is made
to emit ``eos_id`` next (its logits -inf everywhere else), as ``qr-hf`` does: it finishes with
finish reason ``stop`` and ``eos_id`` as its last id, and :meth:`LoopWatchArgs.stopped_at`
finds on its ids the loop it was stopped at. Requests without the key are not watched.

Why a logits processor, and why this one is cheap: vLLM's own ``repetition_detection`` runs
in the scheduler, in Python, once per request per step, pattern length by pattern length
(``check_sequence_repetition``), and chunked generation re-prefills every chunk; both cost
more as the batch grows. Here all watched requests are the dense rows 0..m-1 of one
:class:`~qr_metrics.loops.BatchLoopDetector` (per loop definition): on the usual step, when
every watched request gained one id, their last ids are read off vLLM's output lists in one
pass, pushed as one column, and the detector's update is a handful of numpy operations on
contiguous rows of its (periods x requests) state, so the step's cost is well below a
decoding step even at batch 256. Per-request Python work happens only when the batch changes
(a request joins, leaves or moves), for a request whose prompt is still being prefilled or
that brings several ids at once (a resumed request), and for a request found looping; a
batch with no watched request costs one check per step.

Needs the V1 model runner (vLLM's only one on CPU; on GPU, where vLLM 0.32 defaults to Model
Runner V2, start the engine with ``VLLM_USE_V2_MODEL_RUNNER=0``) and no speculative
decoding (vLLM refuses custom logits processors with it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from operator import itemgetter
from typing import Any, Sequence

import numpy as np

from qr_metrics.extras import MissingExtra
from qr_metrics.loops import BatchLoopDetector, PeriodicTail, detect_exact_loop
from qr_metrics.params import DEFAULT_PARAMS, MeasureParams, check, is_int

from .control.policy import may_rescue
from .errors import ModelArgumentError

try:
    import torch
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality
except ImportError as error:
    raise MissingExtra("qr_adapters.vllm_watch", "vllm", "vllm", needs="vLLM",
                       note=f"; import vllm: {error}") from None

__all__ = ["WATCH_KEY", "LoopWatch", "LoopWatchArgs"]

WATCH_KEY = "qr_loop_watch"
"""The key of ``SamplingParams.extra_args`` that arms a request (value: :class:`LoopWatchArgs`
as a dict)."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopWatchArgs:
    """What to watch in one request: ``SamplingParams.extra_args[WATCH_KEY]``, as a dict.

    eos_id: the id forced when the request loops; it must end the request (the model's eos,
        or one of the request's ``stop_token_ids``).
    close_id: the id that closes the reasoning (``</think>``); once written (or in the
        ``prompt_tail``), the request is never stopped. None: the reasoning never closes.
    min_reasoning_tokens: no stop before the request holds this many ids (``prompt_tail``
        included).
    prompt_tail: the last this-many prompt ids are reasoning already written (a plan, the
        chunks before a continuation): they are watched as if generated.
    loop_min_period, loop_max_period, loop_min_copies: the exact-loop definition
        (:class:`~qr_metrics.params.MeasureParams`; defaults are its defaults).
    """

    eos_id: int
    close_id: int | None = None
    min_reasoning_tokens: int = 0
    prompt_tail: int = 0
    loop_min_period: int = DEFAULT_PARAMS.loop_min_period
    loop_max_period: int = DEFAULT_PARAMS.loop_max_period
    loop_min_copies: int = DEFAULT_PARAMS.loop_min_copies

    def __post_init__(self) -> None:
        _check(is_int(self.eos_id) and self.eos_id >= 0, "eos_id", self.eos_id, "an integer >= 0")
        _check(self.close_id is None or (is_int(self.close_id) and self.close_id >= 0), "close_id",
               self.close_id, "an integer >= 0 or null")
        for name in ("min_reasoning_tokens", "prompt_tail"):
            _check(is_int(getattr(self, name)) and getattr(self, name) >= 0, name, getattr(self, name),
                   "an integer >= 0")
        _check(is_int(self.loop_min_period) and self.loop_min_period >= 1, "loop_min_period",
               self.loop_min_period, "an integer >= 1")
        _check(is_int(self.loop_max_period) and self.loop_max_period >= self.loop_min_period, "loop_max_period",
               self.loop_max_period, f"an integer >= loop_min_period ({self.loop_min_period})")
        _check(is_int(self.loop_min_copies) and self.loop_min_copies >= 3, "loop_min_copies",
               self.loop_min_copies, "an integer >= 3")

    @classmethod
    def from_extra_args(cls, extra_args: dict[str, Any] | None) -> LoopWatchArgs | None:
        """The watch a request's ``extra_args`` asks for, or None; ValueError (one line, naming
        the field) when it is malformed."""
        if not extra_args or WATCH_KEY not in extra_args:
            return None
        value = extra_args[WATCH_KEY]
        if not isinstance(value, dict):
            raise ValueError(f"extra_args[{WATCH_KEY!r}]={value!r} is invalid: must be a mapping of watch fields")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"extra_args[{WATCH_KEY!r}] has unknown field(s) {unknown}; known: {known}")
        if "eos_id" not in value:
            raise ValueError(f"extra_args[{WATCH_KEY!r}]['eos_id'] is missing: the id forced when the request loops")
        return cls(**value)

    def extra_args(self) -> dict[str, Any]:
        """``SamplingParams.extra_args`` that arm a request with this watch."""
        return {WATCH_KEY: asdict(self)}

    def measure(self) -> MeasureParams:
        """The detector's parameters (no tail slack: a live stream ends where it ends)."""
        return MeasureParams(
            loop_min_period=self.loop_min_period,
            loop_max_period=self.loop_max_period,
            loop_min_copies=self.loop_min_copies,
            loop_window=max(DEFAULT_PARAMS.loop_window, self.loop_max_period * self.loop_min_copies),
            loop_tail_slack=0,
        )

    def stopped_at(self, output_ids: Sequence[int], prompt_ids: Sequence[int] = ()) -> PeriodicTail | None:
        """The loop this watch stopped a request at, from the request's output ids (and its
        prompt ids, when ``prompt_tail`` is set); None when the watch did not stop it.

        The watch forces ``eos_id`` at the first step the ids so far qualify, so it stopped
        the request exactly when the output ends in ``eos_id`` and the ids before it qualify
        (a model that wrote eos there by itself would have been stopped there anyway).
        """
        if not output_ids or output_ids[-1] != self.eos_id:
            return None
        ids = _prompt_tail(prompt_ids, self.prompt_tail) + list(output_ids[:-1])
        closed = self.close_id is not None and self.close_id in ids
        if not may_rescue(True, len(ids), self.min_reasoning_tokens, closed, False):
            return None
        return detect_exact_loop(ids, self.measure())


def _prompt_tail(prompt_ids: Sequence[int] | None, count: int) -> list[int]:
    """The last ``count`` prompt ids (all of them when the prompt is shorter)."""
    return list(prompt_ids[max(0, len(prompt_ids) - count) :]) if count and prompt_ids else []


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    """A ``ModelArgumentError`` (a ``ValueError``) naming the field as ``extra_args[key][name]``."""
    check(None, ok, f"extra_args[{WATCH_KEY!r}][{name!r}]", value, allowed, ModelArgumentError)


@lru_cache(maxsize=64)
def _parse(items: tuple[tuple[str, Any], ...]) -> tuple[LoopWatchArgs, MeasureParams]:
    """A watch and its loop definition, once per distinct watch (requests usually share one)."""
    watch = LoopWatchArgs.from_extra_args({WATCH_KEY: dict(items)})
    return watch, watch.measure()


class _Request:
    """A watched request: its watch, its live output ids, its batch slot and its detector row."""

    __slots__ = ("watch", "output", "slot", "group", "row", "left", "tail", "stop_at")

    def __init__(self, watch: LoopWatchArgs, output: list[int], slot: int, group: _Group) -> None:
        self.watch, self.output, self.slot, self.group = watch, output, slot, group
        self.row, self.left = -1, False
        self.tail: list[int] = []  # the prompt's reasoning ids (prompt_tail)
        self.stop_at = -1  # how many output ids it held when it was to stop


class _Group:
    """The watched requests that share one loop definition, as rows 0..m-1 of one detector.

    The rows stay dense (a leaving request's row takes the last one; joining requests take
    the next ones), so that the usual step, one new id for every row, is one push to
    ``slice(0, m)`` and a handful of operations. Per row: how many output ids the detector
    holds (``clock - base``: the usual step only advances the clock), its prompt tail, its
    closing id and whether its reasoning closed (looked up only when the row loops: a row
    rarely does), and whether it was stopped.
    """

    def __init__(self, measure: MeasureParams, slots: int) -> None:
        # Sized to the rows in use (grown in powers of two): a step reads whole rows of the
        # detector's (periods x sequences) state, so spare columns would cost memory traffic.
        self.detector = BatchLoopDetector(8, measure, dtype=np.int32)
        self.requests: list[_Request] = []  # by row
        self.lists: list[list[int]] = []  # their output ids, by row
        self.clock = 0  # steps so far; a row holds clock - base[row] output ids
        self.base = np.zeros(slots, dtype=np.int64)
        self.base_total = 0  # base[:m].sum()
        self.prefix = np.zeros(slots, dtype=np.int64)  # prompt_tail ids in the detector
        self.close = np.full(slots, -1, dtype=np.int64)  # -1: no closing id
        self.closed = np.zeros(slots, dtype=bool)
        self.scanned = np.zeros(slots, dtype=np.int64)  # output ids looked through for close
        self.fired = np.zeros(slots, dtype=bool)
        self.min_length = np.zeros(slots, dtype=np.int64)
        self.pending = False  # a row may have gained several ids at once (a resumed request)
        self.joining: list[tuple[_Request, list[int] | None]] = []
        self.leaving = False

    def settle(self) -> None:
        """Apply the step's leaves and joins to the detector's rows."""
        state = (self.base, self.prefix, self.close, self.closed, self.scanned, self.fired, self.min_length)
        if self.leaving:
            old = len(self.requests)
            m = sum(not r.left for r in self.requests)
            holes = [row for row in range(m) if self.requests[row].left]
            movers = [r for r in self.requests[m:] if not r.left]
            if movers:
                src, dst = [r.row for r in movers], holes
                self.detector.move(src, dst)
                for array in state:
                    array[dst] = array[src]
                for r, row in zip(movers, holes):
                    r.row = row
                    self.requests[row] = r
            del self.requests[m:]
            self.detector.reset(slice(m, old))
            self.leaving = False
        if self.joining:
            first = len(self.requests)
            need = first + len(self.joining)
            if need > self.detector.batch:
                self.detector.resize(1 << (need - 1).bit_length())
            self.detector.reset(slice(first, need))
            for row, (request, prompt_ids) in enumerate(self.joining, start=first):
                watch = request.watch
                request.row = row
                self.requests.append(request)
                tail = request.tail = _prompt_tail(prompt_ids, watch.prompt_tail)
                if tail:
                    self.detector.push(np.array([tail], dtype=np.int32), rows=row)
                close = -1 if watch.close_id is None else watch.close_id
                values = (self.clock, len(tail), close, close in tail, 0, False, watch.min_reasoning_tokens)
                for array, value in zip(state, values):
                    array[row] = value
                self.pending |= bool(request.output)
            self.joining.clear()
        m = len(self.requests)
        self.lists = [r.output for r in self.requests]
        self.base_total = int(self.base[:m].sum())

    def step(self, stop: list[_Request], placeholders: bool) -> None:
        """Push this step's new ids; add to ``stop`` each request to stop."""
        lists = self.lists
        m = len(lists)
        self.clock += 1
        # A row gains one id a step, or none while its prompt is prefilled: all gained one
        # when the total is right (a resumed request, which may bring more, sets pending).
        if not self.pending and sum(map(len, lists)) == m * self.clock - self.base_total:
            last = np.fromiter(map(itemgetter(-1), lists), dtype=np.int32, count=m)
            if not placeholders or last.min() >= 0:  # -1: an async placeholder not filled in
                onset, period = self.detector.push(last[:, None], rows=slice(0, m))
                if onset is not period:  # (the same array when no row loops)
                    self._stop(np.flatnonzero(onset >= 0), stop)
                return
        self._step_rows(stop)

    def _step_rows(self, stop: list[_Request]) -> None:
        """A step where some rows gained no id (prefill) or several (a resumed request)."""
        lists, m = self.lists, len(self.lists)
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=m)
        seen = self.clock - 1 - self.base[:m]  # before this step
        fresh = lengths - seen
        ones = np.flatnonzero(fresh == 1)
        last = np.array([lists[row][-1] for row in ones], dtype=np.int32)
        ones, last = ones[last >= 0], last[last >= 0]
        gained = np.zeros(m, dtype=np.int64)
        gained[ones] = 1
        if ones.size:
            onset, _ = self.detector.push(last[:, None], rows=ones)
            found = ones[onset >= 0]
        else:
            found = ones
        pending = False
        for row in np.flatnonzero(fresh < 0).tolist():  # ids taken back (a failed KV load): start over
            request = self.requests[row]
            ids = list(request.output)
            if -1 in ids:  # async placeholders: take the ids before the first
                ids, pending = ids[: ids.index(-1)], True
            gained[row] = len(ids) - seen[row]
            self.detector.reset(row)
            self.scanned[row], self.closed[row] = 0, self.close[row] >= 0 and int(self.close[row]) in request.tail
            if request.tail or ids:
                onset, _ = self.detector.push(np.array([request.tail + ids], dtype=np.int32), rows=row)
                if onset[0] >= 0:
                    found = np.append(found, row)
        for row in np.flatnonzero(fresh > 1).tolist():
            ids = lists[row][seen[row] : lengths[row]]
            if -1 in ids:  # async placeholders: take the ids before the first
                ids, pending = ids[: ids.index(-1)], True
            gained[row] = len(ids)
            if ids:
                onset, _ = self.detector.push(np.array([ids], dtype=np.int32), rows=row)
                if onset[0] >= 0:
                    found = np.append(found, row)
        self.base[:m] += 1 - gained
        self.base_total = int(self.base[:m].sum())
        self.pending = pending
        self._stop(found, stop)

    def _stop(self, rows: np.ndarray, stop: list[_Request]) -> None:
        """Of ``rows`` (ending in a loop), note those eligible to stop (reasoning open, long
        enough, not stopped already)."""
        if not rows.size:
            return
        length = self.prefix[rows] + self.clock - self.base[rows]
        # ``closed`` as far as looked: the closing id is looked for below, only in rows the rule lets through
        rows = rows[may_rescue(True, length, self.min_length[rows], self.closed[rows], self.fired[rows])]
        for row in rows.tolist():
            if self.close[row] >= 0 and not self.closed[row]:  # look for the closing id
                ids, start = self.lists[row], int(self.scanned[row])
                self.scanned[row] = len(ids)
                try:
                    ids.index(int(self.close[row]), start, len(ids))
                    self.closed[row] = True
                except ValueError:
                    pass
            if not self.closed[row]:
                self.fired[row] = True
                request = self.requests[row]
                request.stop_at = len(request.output)
                stop.append(request)


class LoopWatch(LogitsProcessor):
    """Stops watched requests that loop (see the module docstring); one per engine.

    Watched requests are grouped by loop definition (usually one group); each group keeps
    its requests as the dense rows of one :class:`BatchLoopDetector`, and their state (ids
    pushed, reasoning closed, stopped) beside it. Slots of the persistent batch map to
    requests, so that vLLM's removals, additions and moves only change that map and, for
    requests that leave or join, the group's rows.
    """

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self._slots = vllm_config.scheduler_config.max_num_seqs
        # With async scheduling a list may end in a -1 placeholder (filled before sampling).
        self._placeholders = bool(getattr(vllm_config.scheduler_config, "async_scheduling", True))
        self._by_slot: list[_Request | None] = [None] * self._slots
        self._groups: dict[MeasureParams, _Group] = {}
        self._active: list[_Group] = []
        self._stops: list[_Request] = []  # requests to stop, until their forced id is sampled

    @property
    def watching(self) -> int:
        """How many requests of the batch are watched."""
        return sum(len(group.requests) for group in self._active)

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        if LoopWatchArgs.from_extra_args(sampling_params.extra_args) is not None and sampling_params.ignore_eos:
            raise ValueError(f"extra_args[{WATCH_KEY!r}] needs ignore_eos=False: the forced eos must end the request")

    def is_argmax_invariant(self) -> bool:
        return False  # it forces eos

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is not None:
            self._update_batch(batch_update)
        # The ids sampled last step are in the output lists now with synchronous scheduling
        # (with asynchronous scheduling, only in apply: vLLM fills their placeholders just
        # before sampling). Read here, before the forward pass rather than after it, they
        # cost a little less.
        if self._active and not self._placeholders:
            for group in self._active:
                group.step(self._stops, False)

    def _update_batch(self, batch_update: BatchUpdate) -> None:
        touched = False
        for slot in batch_update.removed:
            touched |= self._leave(slot)
        for slot, params, prompt_ids, output_ids in batch_update.added:
            touched |= self._leave(slot)
            extra = params.extra_args
            if extra and WATCH_KEY in extra:
                watch, measure = _parse(tuple(sorted(extra[WATCH_KEY].items())))
                self._join(slot, watch, measure, params, prompt_ids, output_ids)
                touched = True
        if batch_update.moved:
            touched |= self._move(batch_update.moved)
        if touched:
            for group in self._groups.values():
                group.settle()
            self._groups = {m: g for m, g in self._groups.items() if g.requests}
            self._active = list(self._groups.values())

    def _leave(self, slot: int) -> bool:
        request = self._by_slot[slot]
        if request is None:
            return False
        self._by_slot[slot] = None
        self._leave_request(request)
        return True

    def _leave_request(self, request: _Request) -> None:
        request.left = True
        group = request.group
        if request.row < 0:  # joined in this very update
            group.joining = [(r, p) for r, p in group.joining if r is not request]
        else:
            group.leaving = True

    def _join(self, slot: int, watch: LoopWatchArgs, measure: MeasureParams, params: SamplingParams,
              prompt_ids: list[int] | None, output_ids: list[int]) -> None:
        if watch.eos_id != params.eos_token_id and watch.eos_id not in (params.stop_token_ids or ()):
            logger.warning("%s: eos_id %d is neither the request's eos (%s) nor a stop id: a stop will not end it",
                           WATCH_KEY, watch.eos_id, params.eos_token_id)
        group = self._groups.get(measure)
        if group is None:
            group = self._groups[measure] = _Group(measure, self._slots)
        request = _Request(watch, output_ids, slot, group)
        group.joining.append((request, prompt_ids))
        self._by_slot[slot] = request

    def _move(self, moved: Sequence[tuple[int, int, MoveDirectionality]]) -> bool:
        """vLLM's moves, in order: requests change slots (rows do not change)."""
        holds: dict[int, int | None] = {}  # slot -> the slot whose request it holds now (None: empty)
        for a, b, direction in moved:
            held_a, held_b = holds.get(a, a), holds.get(b, b)
            holds[b] = held_a
            holds[a] = held_b if direction == MoveDirectionality.SWAP else None
        before = {slot: self._by_slot[slot] for slot in holds}
        after = {slot: None if src is None else self._by_slot[src] for slot, src in holds.items()}
        if not any(before.values()) and not any(after.values()):
            return False
        kept = {id(r) for r in after.values() if r is not None}
        for request in before.values():
            if request is not None and id(request) not in kept:  # overwritten: it left
                self._leave_request(request)
        for slot, request in after.items():
            self._by_slot[slot] = request
            if request is not None:
                request.slot = slot
        return True

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if self._placeholders:
            for group in self._active:
                group.step(self._stops, True)
        if self._stops:
            # Forced until the forced id is sampled: a step that only prefilled part of a
            # (resumed) request's ids samples nothing.
            self._stops = stop = [r for r in self._stops if not r.left and len(r.output) <= r.stop_at]
            if stop:
                index = torch.tensor([r.slot for r in stop], device=logits.device)
                logits[index] = -float("inf")
                logits[index, torch.tensor([r.watch.eos_id for r in stop], device=logits.device)] = 0.0
        return logits
