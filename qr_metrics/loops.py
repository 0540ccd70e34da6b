"""Repetitive tails of reasoning traces (DESIGN.md section 3, ``loop``).

Two kinds of loop, both judged on the END of the reasoning only:

- exact: the id sequence (token ids, or :func:`lexical_ids` without a tokenizer) ends in a
  periodic run, id[i] == id[i - p], that covers at least ``loop_min_copies`` copies of a block
  of period p. :func:`detect_exact_loop` judges a finished sequence; :class:`StreamingLoopDetector`
  does the same online, at a constant cost per generated token, for the model adapters.
- near: the last sentences hold only a handful of distinct ones (copies that differ by a word):
  :func:`detect_near_loop`.

Pure functions over plain data; every threshold comes from :class:`MeasureParams`.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from operator import methodcaller
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .counts import SPACE_BYTES
from .params import DEFAULT_PARAMS, MeasureParams

__all__ = [
    "BatchLoopDetector",
    "NearLoop",
    "PeriodicTail",
    "StreamingLoopDetector",
    "detect_exact_loop",
    "detect_near_loop",
    "lexical_ids",
    "loop_end_length",
    "may_end_in_loop",
    "normalize_sentence",
    "sentences",
]


@dataclass(frozen=True)
class PeriodicTail:
    """A periodic run at the end of an id sequence.

    onset: index of the first id of the repetitive tail (first match minus the period).
    period: length of the repeated block, in ids.
    copies: covered length / period; a fractional part means the last copy is cut short.
    end: index after the last matching id (the sequence may hold up to
        ``loop_tail_slack`` more ids after it).
    """

    onset: int
    period: int
    copies: float
    end: int


@dataclass(frozen=True)
class NearLoop:
    """A tail of sentences drawn from a handful of distinct (normalised) sentences.

    onset_char: character offset in the text of the first sentence of the tail.
    sentences: how many sentences the tail holds.
    distinct: how many distinct normalised sentences the last ``near_loop_sentences`` hold.
    """

    onset_char: int
    sentences: int
    distinct: int


# ---------------------------------------------------------------------------------------------
# Exact loops, batch


def detect_exact_loop(
    ids: Sequence[int] | np.ndarray, params: MeasureParams = DEFAULT_PARAMS
) -> PeriodicTail | None:
    """The periodic tail of ``ids``, or None.

    A run of r matches at period p covers r + p ids; it qualifies when the part of it inside
    the last ``loop_window`` ids is at least ``loop_min_copies * p`` long and it ends at most
    ``loop_tail_slack`` ids before the end (a budget cuts the last copy, so a run may end on
    a partial copy). Of several qualifying periods the earliest onset wins, ties going to
    the smallest period; a block of period 2 also shows as period 4, which is then reported.

    Only the last ``loop_window + loop_max_period`` ids are compared, all periods at once;
    when the chosen run reaches back past the window its onset is extended over the whole
    sequence (one 1-D comparison), so ``onset`` is exact and ``copies`` may exceed the window.
    """
    pmin, pmax = params.loop_min_period, params.loop_max_period
    k, slack = params.loop_min_copies, params.loop_tail_slack
    n = len(ids)
    width = min(n, params.loop_window)  # the window: positions s .. n-1
    if width < k * pmin:
        return None
    s = n - width
    lo = max(0, s - pmax)
    seg = np.asarray(ids[lo:n], dtype=np.int64)
    if s - lo < pmax:
        # Distinct values below every id stand in for the ids before the start: never a match.
        pad = seg.min() - 1 - np.arange(pmax - (s - lo), dtype=np.int64)
        seg = np.concatenate([pad[::-1], seg])
    current = seg[pmax:]  # ids[s:n]
    # earlier[j, c] = ids[s + c - periods[j]]: a strided view, row j starts pmax - p into seg.
    step = seg.strides[0]
    earlier = as_strided(seg[pmax - pmin :], shape=(pmax - pmin + 1, width), strides=(-step, step))
    periods = np.arange(pmin, pmax + 1)

    # Keep the periods that match at the end, so a varied sequence costs one small comparison.
    keep = _matching_at_end(seg, params)  # seg's padding never matches, like ids before the start
    if not keep.any():
        return None
    periods, earlier = periods[keep], earlier[keep]
    match = earlier == current

    # A run may end at any of the last slack + 1 columns; measure the run ending at each from
    # the latest mismatch before them (-1: none in the window) and those among them.
    rows = np.arange(len(periods))
    first_end = max(0, width - 1 - slack)
    last_false = np.full(len(periods), -1)
    if first_end:
        back = match[:, first_end - 1 :: -1]
        first = back.argmin(axis=1)
        found = ~back[rows, first]
        last_false[found] = first_end - 1 - first[found]
    cols = np.arange(first_end, width)
    last_false = np.maximum(
        np.maximum.accumulate(np.where(match[:, first_end:], -1, cols), axis=1), last_false[:, None]
    )
    run = cols - last_false  # 0 where the column itself mismatches
    p = periods[:, None]
    ok = (run > 0) & (np.minimum(run + p, cols + 1) >= k * p)
    ends = s + cols + 1
    never = np.iinfo(np.int64).max
    onsets = np.where(ok, ends - run - p, never)
    # Per period the earliest onset, ties going to the later end (it covers more).
    at = onsets.shape[1] - 1 - np.argmin(onsets[:, ::-1], axis=1)
    best_onset, best_end = onsets[rows, at], ends[at]
    capped = last_false[rows, at] < 0
    qualifies = best_onset != never
    if not qualifies.any():
        return None

    # A run reaching the window start may go on before it. All such periods share the smallest
    # one's onset or start later (Fine and Wilf), so extending that one alone suffices.
    candidates = qualifies & ~capped
    reach = np.flatnonzero(qualifies & capped)
    if reach.size:
        j = reach[0]
        best_onset[j] = _extend_onset(ids, int(periods[j]), s)
        candidates[j] = True
    pick = np.flatnonzero(candidates)
    j = pick[np.argmin(best_onset[pick])]  # argmin takes the first: the smallest period
    onset, period, end = int(best_onset[j]), int(periods[j]), int(best_end[j])
    return PeriodicTail(onset=onset, period=period, copies=(end - onset) / period, end=end)


def may_end_in_loop(ids: Sequence[int] | np.ndarray, params: MeasureParams = DEFAULT_PARAMS) -> bool:
    """False when :func:`detect_exact_loop` finds no loop because no period matches at the end.

    Reads only the last :func:`loop_end_length` ids, so the answer holds for any longer
    sequence that ends with them: a caller that splits text into ids can rule a loop out
    from a short tail of a varied trace.
    """
    need = loop_end_length(params)
    return bool(_matching_at_end(np.asarray(ids[max(0, len(ids) - need) :]), params).any())


def loop_end_length(params: MeasureParams = DEFAULT_PARAMS) -> int:
    """How many trailing ids :func:`may_end_in_loop` reads."""
    return params.loop_max_period + (params.loop_min_copies - 1) * params.loop_min_period


def _matching_at_end(ids: np.ndarray, params: MeasureParams) -> np.ndarray:
    """For each period (``loop_min_period``..``loop_max_period``): ids[j] == ids[j - p] at
    every j in [n - (loop_min_copies - 1) * loop_min_period, n - loop_tail_slack).

    Any qualifying run covers those positions: it ends within the slack and its matches span
    (copies - 1) * p >= (loop_min_copies - 1) * loop_min_period ids. Ids before the start
    never match.
    """
    pmin, pmax = params.loop_min_period, params.loop_max_period
    n = len(ids)
    c0, c1 = max(0, n - (params.loop_min_copies - 1) * pmin), n - params.loop_tail_slack
    keep = np.zeros(pmax - pmin + 1, dtype=bool)
    if c1 <= c0:
        keep[:] = True
        return keep
    reachable = max(0, min(pmax, c0) - pmin + 1)  # periods p <= c0 have ids at c0 - p
    if reachable:
        step = ids.strides[0]  # row j: ids[c0 - pmin - j : c1 - pmin - j], period pmin + j
        earlier = as_strided(ids[c0 - pmin :], shape=(reachable, c1 - c0), strides=(-step, step))
        keep[:reachable] = (earlier == ids[c0:c1]).all(axis=1)
    return keep


def _extend_onset(ids: Sequence[int] | np.ndarray, period: int, s: int) -> int:
    """Onset of the run at ``period`` that holds at position ``s``, searched over ids[:s]."""
    head = np.asarray(ids[:s], dtype=np.int64)
    differ = np.flatnonzero(head[period:] != head[:-period]) if s > period else np.empty(0, int)
    first_match = period + int(differ[-1]) + 1 if differ.size else period
    return first_match - period


# ---------------------------------------------------------------------------------------------
# Exact loops, online


_INT16_MAX = int(np.iinfo(np.int16).max)

RowSelection = Union[int, Sequence[int], np.ndarray, slice]
"""Rows of a :class:`BatchLoopDetector`: a row number, distinct row numbers, or a slice."""


class BatchLoopDetector:
    """The exact-loop test run online over a batch of sequences that grow together.

    The adapters call it on every generated token of every row (or on blocks of
    ``check_every`` tokens), so its cost must be far below a decoding step at serving batch
    sizes: state is the last ``loop_max_period`` ids of each row and one run-length counter
    per (row, period), updated for a whole block of ids with a few vectorised operations.
    Runs are counted without a cap (in int16 until one nears 32767, then in int32), so
    onsets are exact. With no tail slack (a live stream ends where it ends) each row reports
    what :func:`detect_exact_loop` reports for ``loop_tail_slack=0`` on that row's ids so far.

    Rows are also independent slots, for a persistent batch such as vLLM's: ``push(block,
    rows)`` feeds some rows only (rows may hold different numbers of ids), ``reset(rows)``
    hands slots to new sequences, ``move`` follows rows that the batch moves or swaps,
    ``resize`` grows or shrinks the batch, and ``lengths`` counts each row's ids.
    ``dtype=np.int32`` halves the ids' memory where they fit (token ids).

    Layout: time (or period) by row, sequence by column, so that a step reads and writes
    whole contiguous rows (twice as fast as the transpose when a decoding step has just
    flushed the caches). The last ids of every sequence live in a ring written twice over,
    newest first, at a write position shared by all sequences, so the ids p back, for
    every period p, are one contiguous block of rows. One id for every sequence, or for
    sequences 0..m-1 while the ones after them hold no id (a batch kept dense), costs a
    handful of operations on views; a push to other sequences rewrites their columns of the
    ring at the shared position. Whatever a sequence's ring held before its first id
    (zeros, an earlier sequence's ids) is compared like ids: a counted run that reaches back
    past the sequence's start means that all of its ids match back to the start, so the
    true run is the counted one capped at ``length - period``. The cap is applied where runs
    are read, in the rare steps where some run is long enough, not on every push.
    """

    def __init__(self, batch: int, params: MeasureParams = DEFAULT_PARAMS, dtype: np.dtype | type = np.int64) -> None:
        self.params = params
        self.batch = batch
        self.dtype = np.dtype(dtype)
        self._periods = np.arange(params.loop_min_period, params.loop_max_period + 1)
        # Reads of runs work in int32: (periods x rows) temporaries of int64 cost several times more.
        self._periods32 = self._periods.astype(np.int32)
        # r + p >= k * p; the window does not bind because loop_window >= k * loop_max_period.
        self._min_run = (params.loop_min_copies - 1) * self._periods32
        self._first_run = int(self._min_run[0])  # no shorter run qualifies at any period
        self._span = params.loop_min_copies * self._periods  # ids that k copies need
        self._rows = np.arange(batch)
        self.reset()

    @property
    def length(self) -> int:
        """Ids seen by the longest row: by every row, while rows are only pushed together."""
        return int(self.lengths.max()) if self.batch else 0

    def reset(self, rows: RowSelection | None = None) -> None:
        """Forget every id seen (new sequences start), or only the ids of ``rows`` (new
        sequences take those slots)."""
        pmax = self.params.loop_max_period
        if rows is None:
            # Sequence b's last pmax ids are ring[phase : phase + pmax, b], newest first; every
            # id is written at rows c and c + pmax, c one before the previous id's.
            self._ring = np.zeros((2 * pmax, self.batch), dtype=self.dtype)
            self._phase = 0
            # Run lengths, period x sequence: int16 (half the memory traffic) until a run gets
            # near its limit, then int32 (see _widen).
            self._runs = np.zeros((len(self._periods), self.batch), dtype=np.int16)
            self._top = 0  # no run is longer
            self.lengths = np.zeros(self.batch, dtype=np.int64)  # ids seen, per row
            self._live_end = 0  # rows from here on hold no id
            self._none: dict[int, np.ndarray] = {}  # m -> read-only -1s, the usual answer
            return
        sel, _ = self._select(rows)
        self._runs[:, sel] = 0
        self.lengths[sel] = 0
        self._set_live_end()

    def resize(self, batch: int) -> None:
        """Hold ``batch`` rows: rows below both sizes keep their state, new rows are empty.
        (A persistent batch that grows; state sized to the rows in use is faster to read.)"""
        keep = min(batch, self.batch)
        ring, runs, lengths, phase = self._ring, self._runs, self.lengths, self._phase
        self.batch = batch
        self._rows = np.arange(batch)
        self.reset()
        self._phase = phase  # the kept rows' ids are where they were
        self._runs = self._runs.astype(runs.dtype, copy=False)
        self._top = max(self._top, int(runs[:, :keep].max(initial=0)))
        self._ring[:, :keep] = ring[:, :keep]
        self._runs[:, :keep] = runs[:, :keep]
        self.lengths[:keep] = lengths[:keep]
        self._set_live_end()

    def move(self, src: RowSelection, dst: RowSelection) -> None:
        """Rows ``dst`` take the state of rows ``src``, as vLLM's persistent batch moves and
        swaps requests. Every source row is read before any row is written, so
        ``move([a, b], [b, a])`` swaps two rows; a source row that is not also a destination
        keeps its state until it is reset."""
        _, src = self._select(src)
        _, dst = self._select(dst)
        self._ring[:, dst] = self._ring[:, src]
        self._runs[:, dst] = self._runs[:, src]
        self.lengths[dst] = self.lengths[src]
        self._set_live_end()

    def push(self, block: np.ndarray, rows: RowSelection | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Add ``block`` (batch x k ids, the next k of every row; with ``rows``, one row of
        k ids for each of those rows, which must be distinct).

        Returns ``(onset, period)``, one entry per row of ``block``, of the loop each row now
        ends in (earliest onset, ties to the smallest period); -1 in both where a row ends in
        none. When no row ends in a loop, both are the same read-only array (``onset is
        period`` tells it without looking).

        Fastest with one id for every row, or for ``slice(0, m)`` while the rows after m hold
        no id (a batch kept dense).
        """
        if rows is None:
            sel, m = slice(0, self.batch), self.batch
        elif isinstance(rows, slice) and not rows.start and rows.step in (None, 1):
            m = self.batch if rows.stop is None else max(0, min(rows.stop, self.batch))
            sel = slice(0, m)
        else:
            sel, index = self._select(rows)
            m = len(index)
        ready = isinstance(block, np.ndarray) and block.dtype == self.dtype and block.ndim == 2
        if not (ready and block.shape[0] == m):
            block = np.asarray(block, dtype=self.dtype).reshape(m, -1)
        k = block.shape[1]
        if k == 1 and isinstance(sel, slice) and sel.start == 0 and m >= self._live_end:
            return self._push_column(block[:, 0], m)
        if m == 0 or k == 0:
            return self._found(self._runs[:, sel], self.lengths[sel])
        self._widen(k)
        pmax, phase = self.params.loop_max_period, self._phase
        runs = self._runs[:, sel]  # a view when sel is a slice, else a copy written back below
        last = self._ring[phase : phase + pmax, sel][::-1].T  # oldest first
        newest = self._block_runs(last, block, runs.T)[:, ::-1].T  # pmax x m, newest first
        # The new last ids at the shared position, and the other copy of each, pmax away.
        self._ring[phase : phase + pmax, sel] = newest
        self._ring[phase + pmax :, sel] = newest[: pmax - phase]
        self._ring[:phase, sel] = newest[pmax - phase :]
        if not isinstance(sel, slice):
            self._runs[:, sel] = runs
        self.lengths[sel] += k
        last_row = sel.stop if isinstance(sel, slice) else int(index.max()) + 1
        self._live_end = max(self._live_end, last_row)
        return self._found(runs, self.lengths[sel])

    def _push_column(self, ids: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``push`` of one id to rows 0..m-1 while the rows after them hold no id: a few
        operations on contiguous rows of the state (the empty rows' ids are written nowhere
        and need not be)."""
        self._widen(1)
        phase = self._phase
        pmin, pmax = self.params.loop_min_period, self.params.loop_max_period
        runs = self._runs[:, :m]
        runs += 1
        # The ids p back, for p = pmin .. pmax: ring rows phase + p - 1.
        runs *= self._ring[phase + pmin - 1 : phase + pmax, :m] == ids
        phase = self._phase = phase - 1 if phase else pmax - 1
        self._ring[phase, :m] = ids
        self._ring[phase + pmax, :m] = ids
        lengths = self.lengths[:m]
        lengths += 1
        self._live_end = max(self._live_end, m)
        return self._found(runs, lengths)

    def _block_runs(self, last: np.ndarray, block: np.ndarray, runs: np.ndarray) -> np.ndarray:
        """Updates ``runs`` (m x periods, in place) for ``block`` (k ids per row) given each
        row's ``last`` pmax ids; returns the rows' last pmax ids after the block."""
        pmin, pmax = self.params.loop_min_period, self.params.loop_max_period
        m, k = block.shape
        history = np.concatenate([last, block], axis=1)
        # earlier[b, j, t] = id[n + t - p_j] of row b = history[b, pmax - pmin - j + t]: a
        # strided view (built directly, np.lib.stride_tricks costs more than the compare).
        step_row, step = history.strides
        earlier = np.ndarray(
            (m, len(self._periods), k), self.dtype, history,
            offset=(pmax - pmin) * step, strides=(step_row, -step, step),
        )
        match = earlier == block[:, None, :]
        # A run goes on only where the block's last id matches (few (row, period) pairs in a
        # varied sequence): there it is the matches after the block's last mismatch, or all
        # k added to the run before it. Elsewhere it is 0.
        row, at = np.nonzero(match[:, :, -1])
        mismatch = ~match[row, at]
        since = np.argmax(mismatch[:, ::-1], axis=1)
        going = np.where(mismatch.any(axis=1), since, runs[row, at] + k)
        runs[:] = 0
        runs[row, at] = going
        return history[:, k:]

    def _found(self, runs: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(onset, period) per row from its runs (periods x rows) and its length (``ends``)."""
        m = len(ends)
        none = self._none.get(m)
        if none is None:
            none = self._none[m] = np.full(m, -1)
            none.flags.writeable = False
        if not m:
            return none, none
        top = int(runs.max())
        if top > self._top:
            self._top = top
        if top < self._first_run:
            return none, none
        ok = runs >= self._min_run[:, None]
        if m == 1:
            return self._found_one(runs[:, 0], ok[:, 0], int(ends[0]), none)
        hit = np.flatnonzero(ok.any(axis=0))  # the rows that hold a long enough run
        if not hit.size:
            return none, none
        if len(hit) < m:
            ok, runs, ends = ok[:, hit], runs[:, hit], ends[hit]
        # The true run is min(run, end - p) (see the class doc): it qualifies when the counted
        # one does and end >= k * p; then run + p, where the copies reach back to, is capped
        # at end. Only short rows need the first, only runs past a row's start the second.
        if ends.min() < self._span[-1]:
            ok &= self._span[:, None] <= ends
        # onset = end - (run + period): the earliest has the largest reach (0: no copies);
        # the first row holding the maximum is the smallest period.
        reach = runs + self._periods32[:, None]
        reach *= ok
        top = reach.max(axis=0)
        if (top > ends).any():
            np.minimum(reach, ends, out=reach, casting="unsafe")
            top = reach.max(axis=0)
        best = (reach == top).argmax(axis=0)
        found = top > 0
        onset, period = np.full(m, -1), np.full(m, -1)
        onset[hit] = np.where(found, ends - top, -1)
        period[hit] = np.where(found, self._periods[best], -1)
        return onset, period

    def _widen(self, k: int) -> None:
        """Runs in int32 before a push of ``k`` ids could take one past int16's range."""
        if self._top + k > _INT16_MAX and self._runs.dtype == np.int16:
            self._runs = self._runs.astype(np.int32)

    def _found_one(
        self, runs: np.ndarray, ok: np.ndarray, end: int, none: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``_found`` for one row (the streaming detector's case), with scalars where it can."""
        if not ok.any():
            return none, none
        if end < self._span[-1]:
            ok &= self._span <= end
        reach = np.where(ok, runs + self._periods32, np.int32(-1))
        best = int(reach.argmax())
        top = int(reach[best])
        if top > end:
            reach = np.minimum(reach, end)
            best = int(reach.argmax())
            top = int(reach[best])
        if top < 0:
            return none, none
        return np.array([end - top]), self._periods[best : best + 1].copy()

    def _select(self, rows: RowSelection) -> tuple[slice | np.ndarray, np.ndarray]:
        """``rows`` as an index into the state (a slice stays a view) and as row numbers."""
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.batch)
            if step == 1:
                return slice(start, max(start, stop)), self._rows[start:stop]
        index = np.atleast_1d(self._rows[rows])  # negative rows count from the end, as in numpy
        return index, index

    def _set_live_end(self) -> None:
        live = np.flatnonzero(self.lengths)
        self._live_end = int(live[-1]) + 1 if live.size else 0


_EXTEND_BLOCK = 256
"""Ids pushed at once by ``extend``: bounds the (periods x block) temporaries."""


class StreamingLoopDetector:
    """:class:`BatchLoopDetector` for one sequence, one id at a time."""

    def __init__(self, params: MeasureParams = DEFAULT_PARAMS) -> None:
        self.params = params
        self._batch = BatchLoopDetector(1, params)

    def reset(self) -> None:
        """Forget every id seen (a new sequence starts)."""
        self._batch.reset()

    def push(self, token_id: int) -> PeriodicTail | None:
        """Add one id; the loop the sequence now ends in, or None."""
        return self._tail(self._batch.push(np.array([[token_id]])))

    def extend(self, ids: Iterable[int]) -> PeriodicTail | None:
        """Push the ids in blocks; the loop the sequence then ends in (None for no ids)."""
        ids = np.fromiter((int(i) for i in ids), dtype=np.int64)
        found = None
        for start in range(0, len(ids), _EXTEND_BLOCK):
            found = self._batch.push(ids[None, start : start + _EXTEND_BLOCK])
        return None if found is None else self._tail(found)

    def _tail(self, found: tuple[np.ndarray, np.ndarray]) -> PeriodicTail | None:
        onset, period = int(found[0][0]), int(found[1][0])
        if onset < 0:
            return None
        end = self._batch.length
        return PeriodicTail(onset=onset, period=period, copies=(end - onset) / period, end=end)


# ---------------------------------------------------------------------------------------------
# Near loops

# A sentence ends at . ! ? followed by whitespace, or at a newline ("366.5" does not split).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n")
_STRIP = string.punctuation + string.whitespace


def normalize_sentence(raw: str) -> str:
    """Lowercased, whitespace-collapsed, stripped of surrounding punctuation."""
    return " ".join(raw.lower().split()).strip(_STRIP)


_STRIP_SENTENCE = methodcaller("strip", _STRIP)
_OTHER_ASCII_SPACE = [chr(b) for b in np.flatnonzero(SPACE_BYTES) if chr(b) not in " \n"]


def sentences(text: str) -> list[str]:
    """The normal forms of the non-empty sentences of ``text``, in order (split as near loops do).

    Same result as ``normalize_sentence`` on each piece of the break regex, found with str
    methods over the whole text (this runs on every trace, and a regex scan costs several
    times more): once whitespace is single spaces within lines, a break is a newline or
    ``. ``/``! ``/``? ``. ASCII text spaced only by " " and newlines, the usual trace, is
    collapsed without splitting it into words.
    """
    flat = text.lower()
    if flat.isascii() and not any(space in flat for space in _OTHER_ASCII_SPACE):
        while "  " in flat:
            flat = flat.replace("  ", " ")
    else:
        flat = "\n".join([" ".join(line.split()) for line in flat.split("\n")])
    flat = flat.replace(". ", ".\n").replace("! ", "!\n").replace("? ", "?\n")
    return [norm for norm in map(_STRIP_SENTENCE, flat.split("\n")) if norm]


# Characters read first (a dozen sentences of a math trace); each further read doubles.
_NEAR_CHUNK = 2048


def detect_near_loop(
    text: str, params: MeasureParams = DEFAULT_PARAMS, norms: list[str] | None = None
) -> NearLoop | None:
    """The tail of ``text`` made of a handful of distinct sentences, or None.

    Sentences are split on ``.``/``!``/``?`` followed by whitespace and on newlines, then
    lowercased, whitespace-collapsed and stripped of surrounding punctuation; empty ones (a
    lone ``\\]``) are skipped. If the last ``near_loop_sentences`` hold at most
    ``near_loop_max_distinct`` distinct ones, the tail is walked back while its sentences
    belong to that set. A last, unterminated sentence that starts one of the others is a copy
    cut by the budget and counts as that one. The text is read from its end, backwards, only
    as far as needed: a varied trace costs the same whatever its length, a loop costs in
    proportion to its own length (its onset is exact).

    ``norms``, when the caller already has ``sentences(text)``, rejects a varied tail without
    reading the text again (the cut-copy rule can merge at most one sentence away).
    """
    need, most = params.near_loop_sentences, params.near_loop_max_distinct
    if norms is not None and (len(norms) < need or len(set(norms[-need:])) > most + 1):
        return None
    sentences = _sentences_backwards(text)
    tail = list(islice(sentences, need))
    if len(tail) < need:
        return None
    norms = [norm for _, _, norm in tail]
    start, stop, _ = tail[0]
    if stop == len(text) and not text[start:stop].rstrip().endswith((".", "!", "?")):
        norms[0] = next((norm for norm in norms[1:] if norm.startswith(norms[0])), norms[0])
    distinct = set(norms)
    if len(distinct) > most:
        return None
    onset, count = tail[-1][0], need
    for start, _, norm in sentences:
        if norm not in distinct:
            break
        onset, count = start, count + 1
    return NearLoop(onset_char=onset, sentences=count, distinct=len(distinct))


def _sentences_backwards(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, stop, normal form) of the non-empty sentences of ``text``, last first.

    Reads chunks of doubling size from the end. The piece a chunk starts in may be cut, so
    it is left to the next chunk, which ends where that piece ends.
    """
    normalised: dict[str, str] = {}  # raw sentence -> normal form: a loop repeats raw text
    stop, chunk = len(text), _NEAR_CHUNK
    while stop > 0:
        lo = max(0, stop - chunk)
        chunk *= 2
        begin = lo
        if lo > 0:
            brk = _SENTENCE_BREAK.search(text, lo, stop)
            if brk is None:
                continue
            begin = brk.end()
        spans = []
        for brk in _SENTENCE_BREAK.finditer(text, begin, stop):
            spans.append((begin, brk.start()))
            begin = brk.end()
        spans.append((begin, stop))
        for begin, end in reversed(spans):
            raw = text[begin:end]
            norm = normalised.get(raw)
            if norm is None:
                norm = normalised[raw] = normalize_sentence(raw)
            if norm:
                yield begin + len(raw) - len(raw.lstrip()), end, norm
        stop = spans[0][0] if lo > 0 else 0


# ---------------------------------------------------------------------------------------------
# Lexical ids

# A piece is a run of at most 16 word bytes or one other non-space byte. The cap splits a
# degenerate digit run ("5555...", "1818..." to the budget) into equal pieces, so it shows as
# a loop, as it does with a real tokenizer; it leaves words and numbers whole. Bytes of
# non-ASCII characters count as word bytes. A piece's id is a polynomial hash of its bytes
# (mod 2**64, odd radix): prefix sums give every piece's hash without a loop over pieces.
_SPACE, _WORD, _OTHER = 0, 1, 2
_BYTE_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_BYTE_CLASS[[ord(c) for c in string.ascii_letters + string.digits + "_"]] = _WORD
_BYTE_CLASS[0x80:] = _WORD
_BYTE_CLASS[SPACE_BYTES] = _SPACE
_MAX_PIECE = 16
_RADIX = 0x9E3779B97F4A7C15
_WORD_END = re.compile(r"\w*")


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


@lru_cache(maxsize=4)
def _radix_powers(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """RADIX**i and RADIX**-i (mod 2**64) for i < 2**bits."""
    def powers(base: int) -> np.ndarray:
        out = np.full(1 << bits, base, dtype=np.uint64)
        out[0] = 1
        return np.multiply.accumulate(out, out=out)

    return powers(_RADIX), powers(pow(_RADIX, -1, 1 << 64))


def lexical_ids(text: str, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ids and start offsets of the word/number/punctuation pieces of ``text[start:]``.

    The fallback for exact loops when no tokenizer is at hand: ``"Therefore, 15625=5^6."``
    gives 8 pieces. Equal pieces get equal ids (a 64-bit hash of their bytes, so distinct
    pieces collide only by a vanishing chance). Offsets index ``text`` (not the slice).

    ``start`` tokenises a tail only (a word it cuts is left out). The whole text costs
    about as much as it is long; to find a loop cheaply, split a tail that holds the
    detection window, and a longer one when the loop found starts at the first piece: the
    run may reach further back.
    """
    if 0 < start < len(text) and _is_word(text[start - 1]) and _is_word(text[start]):
        start = _WORD_END.search(text, start).end()
    tail = text[start:]
    raw = np.frombuffer(tail.encode("utf-8"), dtype=np.uint8)
    n = len(raw)
    kind = np.take(_BYTE_CLASS, raw)
    word = kind == _WORD
    begins = kind == _OTHER
    if n:
        begins[0] |= word[0]
        begins[1:] |= word[1:] & ~word[:-1]
    first = np.flatnonzero(begins)
    if len(first) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ends = np.empty_like(first)  # a piece's bytes, then any spaces up to the next piece
    ends[:-1], ends[-1] = first[1:], n
    if (ends - first > _MAX_PIECE).any():
        first = _split_long_words(first, ends - first, word)
        ends = np.append(first[1:], n)
    powers, inverse_powers = _radix_powers(max(12, n.bit_length()))
    prefix = np.zeros(n + 1, dtype=np.uint64)  # spaces weigh 0, so a span hashes its piece
    np.cumsum(np.where(kind == _SPACE, 0, raw) * powers[:n], out=prefix[1:])
    ids = ((prefix[ends] - prefix[first]) * inverse_powers[first]).view(np.int64)
    starts = first
    if not tail.isascii():  # byte offsets -> char offsets
        starts = (np.cumsum((raw & 0xC0) != 0x80) - 1)[starts]
    return ids, starts + start


def _split_long_words(first: np.ndarray, span: np.ndarray, word: np.ndarray) -> np.ndarray:
    """Piece starts with word runs longer than ``_MAX_PIECE`` bytes cut every 16 bytes.

    Only spans over 16 bytes are looked at (rare: a long word, or many spaces after a piece).
    """
    extra = []
    for i in np.flatnonzero(span > _MAX_PIECE):
        begin = int(first[i])
        run = word[begin : begin + int(span[i])]
        length = len(run) if run.all() else int(np.argmin(run))
        if length > _MAX_PIECE:
            extra.append(np.arange(begin + _MAX_PIECE, begin + length, _MAX_PIECE))
    return np.sort(np.concatenate([first, *extra])) if extra else first
