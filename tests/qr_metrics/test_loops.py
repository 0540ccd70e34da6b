"""Tests of qr_metrics.loops: hand-made sequences, a brute-force reference, real traces."""

from __future__ import annotations

import json
import re
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qr_metrics import loops
from qr_metrics.loops import (
    BatchLoopDetector,
    NearLoop,
    PeriodicTail,
    StreamingLoopDetector,
    detect_exact_loop,
    detect_near_loop,
    lexical_ids,
    may_end_in_loop,
    normalize_sentence,
    sentences,
)
from qr_metrics.measure import measure
from qr_metrics.params import DEFAULT_PARAMS, MeasureParams

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "r1-distill-1.5b"
NO_SLACK = MeasureParams(loop_tail_slack=0)


def _reference_loop(ids, params: MeasureParams = DEFAULT_PARAMS):
    """The definition, written out slowly: (onset, period, end) or None."""
    n, s = len(ids), len(ids) - min(len(ids), params.loop_window)
    best = None
    for p in range(params.loop_min_period, params.loop_max_period + 1):
        for end in range(max(1, n - params.loop_tail_slack), n + 1):
            i, run = end - 1, 0
            while i - p >= 0 and ids[i] == ids[i - p]:
                run, i = run + 1, i - 1
            onset = end - run - p
            if run and end - max(onset, s) >= params.loop_min_copies * p:
                key = (onset, p, -end)
                best = key if best is None or key < best else best
    return None if best is None else (best[0], best[1], -best[2])


def _key(tail: PeriodicTail | None):
    return None if tail is None else (tail.onset, tail.period, tail.end)


def _random_tails(seed: int, count: int):
    """Small-alphabet sequences, most ending in a (possibly cut) periodic block plus noise."""
    rng = np.random.default_rng(seed)
    for trial in range(count):
        alphabet = int(rng.integers(2, 6))
        if trial % 3 == 0:
            yield rng.integers(0, alphabet, int(rng.integers(1, 400)))
            continue
        period = int(rng.integers(1, 40))
        block = rng.integers(0, alphabet, period)
        yield np.concatenate(
            [
                rng.integers(0, alphabet, int(rng.integers(0, 100))),
                np.tile(block, int(rng.integers(1, 12))),
                block[: int(rng.integers(0, period + 1))],
                rng.integers(0, alphabet, int(rng.integers(0, 3))),
            ]
        )


# ---------------------------------------------------------------------------------------------
# Exact loops, hand-made


def test_loop_at_end_found_with_onset_and_period():
    prefix = list(range(100, 150))
    ids = prefix + [1, 2, 3, 4, 5] * 6
    assert detect_exact_loop(ids) == PeriodicTail(onset=50, period=5, copies=6.0, end=80)


def test_partial_last_copy_is_still_a_loop():
    ids = list(range(100, 150)) + [1, 2, 3, 4, 5, 6] * 3 + [1, 2, 3]
    tail = detect_exact_loop(ids)
    assert (tail.onset, tail.period, tail.end, tail.copies) == (50, 6, len(ids), 3.5)


def test_two_copies_are_not_a_loop():
    assert detect_exact_loop(list(range(100, 150)) + [1, 2, 3, 4, 5, 6] * 2) is None
    # Two copies and most of a third: still short of three.
    assert detect_exact_loop(list(range(100, 150)) + [1, 2, 3, 4, 5, 6] * 2 + [1, 2, 3, 4]) is None


def test_varied_sequence_is_not_a_loop():
    rng = np.random.default_rng(0)
    assert detect_exact_loop(rng.integers(0, 50_000, 5000)) is None
    assert detect_exact_loop([]) is None and detect_exact_loop([7] * 11) is None


def test_loop_in_the_middle_is_not_a_tail_loop():
    rng = np.random.default_rng(1)
    ids = np.concatenate(
        [rng.integers(0, 1000, 200), np.tile([1, 2, 3, 4, 5], 50), rng.integers(0, 1000, 300)]
    )
    assert detect_exact_loop(ids) is None


def test_tail_slack():
    loop = list(range(100, 150)) + [1, 2, 3, 4, 5] * 4
    assert detect_exact_loop(loop + [77, 78]).end == len(loop)  # cut token merged differently
    assert detect_exact_loop(loop + [77, 78, 79]) is None
    assert detect_exact_loop(loop + [77], NO_SLACK) is None
    assert detect_exact_loop(loop + [77, 78, 79], MeasureParams(loop_tail_slack=3)).end == len(loop)


def test_periods_at_and_beyond_the_bounds():
    rng = np.random.default_rng(2)
    noise = list(rng.integers(10_000, 20_000, 300))
    assert detect_exact_loop(noise + [1, 2, 3, 4] * 3).period == 4
    block = list(rng.integers(0, 10_000, 256))
    assert detect_exact_loop(noise + block * 3).period == 256
    assert detect_exact_loop(noise + list(rng.integers(0, 10_000, 257)) * 3) is None
    # Period 3 is not searched and its multiples 6, 9 are too short here (4 copies of 3 ids).
    assert detect_exact_loop(noise + [1, 2, 3] * 4) is None
    # A period-2 pattern is periodic at 4 as well: reported as 4, the smallest searched.
    tail = detect_exact_loop(noise + [1, 2] * 6)
    assert (tail.onset, tail.period) == (300, 4)


def test_window_bounds_the_copies_but_not_the_onset():
    rng = np.random.default_rng(3)
    noise = list(rng.integers(10_000, 20_000, 2000))
    block = list(rng.integers(0, 10_000, 200))
    # 200 * 6 = 1200 ids of loop: more than the window, so the onset is extended back.
    ids = noise + block * 6
    assert detect_exact_loop(ids) == PeriodicTail(onset=2000, period=200, copies=6.0, end=3200)
    small = MeasureParams(loop_window=600, loop_max_period=200)
    assert detect_exact_loop(noise + block * 3, small).onset == 2000
    # Only the part of the run inside the window counts: after one more id, 3 copies do not fit.
    assert detect_exact_loop(noise + block * 3 + [5], small) is None


def test_matches_the_reference_on_random_sequences():
    rng = np.random.default_rng(4)
    for ids in _random_tails(5, 1500):
        max_period = int(rng.choice([8, 33]))
        params = MeasureParams(
            loop_max_period=max_period,
            loop_window=max(int(rng.choice([100, 150, 1024])), 3 * max_period),
            loop_tail_slack=int(rng.integers(0, 4)),
        )
        expected = _reference_loop(ids.tolist(), params)
        assert _key(detect_exact_loop(ids, params)) == expected, ids.tolist()


def test_accepts_lists_tuples_and_arrays():
    ids = list(range(100, 150)) + [1, 2, 3, 4, 5] * 6
    expected = detect_exact_loop(ids)
    assert detect_exact_loop(tuple(ids)) == detect_exact_loop(np.array(ids, np.int32)) == expected


# ---------------------------------------------------------------------------------------------
# Exact loops, streaming


def test_streaming_reports_each_prefix_like_the_batch_detector_without_slack():
    params = MeasureParams(loop_max_period=33, loop_window=120, loop_tail_slack=0)
    for ids in _random_tails(6, 100):
        detector = StreamingLoopDetector(params)
        for i, token in enumerate(ids.tolist()):
            assert detector.push(token) == detect_exact_loop(ids[: i + 1], params)


def test_streaming_matches_batch_with_default_params():
    for ids in _random_tails(7, 200):
        assert StreamingLoopDetector(NO_SLACK).extend(ids) == detect_exact_loop(ids, NO_SLACK)
    rng = np.random.default_rng(8)
    long_loop = np.concatenate([rng.integers(0, 9, 3000), np.tile(rng.integers(0, 9, 97), 30)])
    tail = StreamingLoopDetector().extend(long_loop)
    assert tail == detect_exact_loop(long_loop, NO_SLACK)
    assert tail.period == 97 and tail.copies >= 30


def test_streaming_reset_and_first_detection():
    detector = StreamingLoopDetector()
    assert detector.extend([1, 2, 3, 4] * 2 + [1, 2, 3]) is None
    assert detector.push(4) == PeriodicTail(onset=0, period=4, copies=3.0, end=12)
    detector.reset()
    assert detector.extend([]) is None and detector.push(1) is None


def test_streaming_state_does_not_grow():
    def state_bytes(detector):
        state = {**vars(detector), **vars(detector._batch)}
        return sum(v.nbytes for v in state.values() if isinstance(v, np.ndarray))

    detector = StreamingLoopDetector()
    before = state_bytes(detector)
    rng = np.random.default_rng(9)
    detector.extend(rng.integers(0, 50, 1000))
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    detector.extend(rng.integers(0, 50, 5000))
    detector.extend(np.tile(np.arange(11), 500))
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    assert state_bytes(detector) == before
    assert grown < 10_000


# ---------------------------------------------------------------------------------------------
# Near loops and lexical ids


def test_near_loop_of_copies_that_differ_by_a_word():
    head = "The sum is 733 halves. Let me recompute the average.\n\nSo the mean is 366.5.\n\n"
    text = head + "Wait, 366.5 is 366.5.\n\nWait, so 366.5 is 366.5.\n\n" * 10 + "Wait, 366"
    assert detect_near_loop(text) == NearLoop(onset_char=len(head), sentences=21, distinct=2)


def test_near_loop_onset_when_the_tail_is_longer_than_what_is_read_first():
    text = "Intro sentence here. " * 3 + "Again the same words. " * 2000
    found = detect_near_loop(text)
    assert found.onset_char == len("Intro sentence here. ") * 3 and found.sentences == 2000


def test_varied_paragraph_and_short_text_are_not_near_loops():
    paragraph = (
        "We need the number of divisors of 56. Its prime factorisation is 2^3 * 7. "
        "So it has (3+1)(1+1) = 8 divisors. They are 1, 2, 4, 7, 8, 14, 28 and 56. "
        "Each divisor d gives n = d - 1. The smallest is n = 0, which is excluded. "
        "That leaves seven values.\nTheir sum is 1 + 3 + 6 + 7 + 13 + 27 + 55 = 112. "
        "Let me double-check the arithmetic! Yes, 112 is right. Is any value repeated? "
        "No. So the answer is 112."
    )
    assert detect_near_loop(paragraph) is None
    assert detect_near_loop("Wait, 366.5 is 366.5. " * 11) is None  # fewer than 12 sentences
    assert detect_near_loop("Wait, 366.5 is 366.5. " * 12) == NearLoop(onset_char=0, sentences=12, distinct=1)
    assert detect_near_loop("") is None


def test_near_loop_sentence_rules():
    # Decimal points do not split; case, spacing and surrounding punctuation do not matter;
    # lines of only punctuation (display-math brackets) are skipped.
    text = "Start.\n" + "\\[\nx = 2.5\n\\]\nTherefore X  =  2.5!\n" * 6
    first = len("Start.\n\\[\n")
    assert detect_near_loop(text) == NearLoop(onset_char=first, sentences=12, distinct=2)


@pytest.mark.parametrize("ascii_spaces_only", [True, False])
def test_sentences_equal_normalising_each_piece_of_the_break_regex(ascii_spaces_only):
    breaks = re.compile(r"(?<=[.!?])\s+|\n")
    parts = ["Wait.", " ", "\n", "\n\n", ".  \n ", "x = 2.5", "So!", "  ", "\\]", "a b", "?", "...",
             " .", "!!", "A.B", "Why? "]
    if not ascii_spaces_only:  # the other path: tabs, CR, Unicode spaces and case
        parts += ["Why?\t", "\u2028", "\u00a0", "\r\n", "\u0130x", "\x0b", "\x1c", "\x85", "\u00e9. ", "\t"]
    rng = np.random.default_rng(10)
    for _ in range(1000):
        text = "".join(rng.choice(parts, 200))
        expected = [norm for norm in map(normalize_sentence, breaks.split(text)) if norm]
        assert sentences(text) == expected


def test_reading_backwards_in_chunks_splits_like_reading_everything(monkeypatch):
    rng = np.random.default_rng(10)
    parts = ["Wait.", " ", "\n", "\n\n", ".  \n ", "x = 2.5", "So!", "  ", "Why?\t", "\\]", "a b"]
    texts = ["".join(rng.choice(parts, 300)) for _ in range(20)]
    pair = "Wait, 366.5 is 366.5.\n\nWait, so 366.5 is 366.5.\n\n"
    texts.append("Intro.\n" + pair * 40 + "Wait, 36")
    for text in texts:
        monkeypatch.setattr(loops, "_NEAR_CHUNK", len(text) + 1)
        whole = list(loops._sentences_backwards(text))
        monkeypatch.setattr(loops, "_NEAR_CHUNK", 7)
        assert list(loops._sentences_backwards(text)) == whole
        in_chunks = detect_near_loop(text)
        monkeypatch.undo()
        assert in_chunks == detect_near_loop(text) == detect_near_loop(text, norms=sentences(text))


@pytest.mark.parametrize(
    "params", [DEFAULT_PARAMS, MeasureParams(loop_min_period=1, loop_max_period=6, loop_window=24, loop_tail_slack=0)]
)
def test_may_end_in_loop_rules_loops_out_from_a_short_tail(params):
    need = params.loop_max_period + (params.loop_min_copies - 1) * params.loop_min_period
    assert not may_end_in_loop(np.arange(2000), params)
    assert may_end_in_loop(np.tile(np.arange(5), 300), params)
    rng = np.random.default_rng(4)
    for _ in range(500):
        head = rng.integers(0, 3, int(rng.integers(0, 600)))
        block = rng.integers(0, 3, int(rng.integers(1, 10)))
        ids = np.concatenate([head, np.tile(block, int(rng.integers(0, 60)))])
        if ids.size and rng.random() < 0.5:
            ids[rng.integers(0, ids.size)] = 9
        found = detect_exact_loop(ids, params)
        assert may_end_in_loop(ids[-need:] if ids.size > need else ids, params) == may_end_in_loop(ids, params)
        assert found is None or may_end_in_loop(ids, params)


def _pattern(ids) -> list[int]:
    """Ids renumbered by first appearance: equal pieces, equal numbers."""
    first: dict[int, int] = {}
    return [first.setdefault(int(i), len(first)) for i in ids]


def test_lexical_ids():
    ids, starts = lexical_ids("Therefore, 15625=5^6.")
    assert _pattern(ids) == list(range(8))
    assert starts.tolist() == [0, 9, 11, 16, 17, 18, 19, 20]
    ids, starts = lexical_ids("ab cd ab  cd")
    assert _pattern(ids) == [0, 1, 0, 1] and starts.tolist() == [0, 3, 6, 10]
    ids, starts = lexical_ids("skip this, then x = x", start=10)
    assert _pattern(ids) == [0, 1, 2, 1] and starts.tolist() == [11, 16, 18, 20]
    ids, starts = lexical_ids("skip this, then x = x", start=13)  # "then" is cut: left out
    assert _pattern(ids) == [0, 1, 0] and starts.tolist() == [16, 18, 20]
    # Words longer than 16 bytes fall into 16-byte pieces; equal pieces stay equal.
    ids, starts = lexical_ids("abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrst")
    assert _pattern(ids) == [0, 1, 0, 2] and starts.tolist() == [0, 16, 27, 43]
    # Non-ASCII: offsets are characters, not bytes.
    ids, starts = lexical_ids("é café, x→y café")
    assert _pattern(ids) == [0, 1, 2, 3, 1] and starts.tolist() == [0, 2, 6, 8, 12]
    assert [len(a) for a in lexical_ids("   ")] == [0, 0]
    # A degenerate digit run falls into equal pieces, so it shows as a loop.
    ids, _ = lexical_ids("The value is 1/" + "5" * 200)
    pieces = 200 // 16  # 12 equal 16-digit pieces after "The value is 1 /", then one of 8 digits
    assert len(ids) == 5 + pieces + 1
    # the shortest block searched (loop_min_period), repeated over the equal pieces; the last,
    # shorter piece is the tail's slack
    period = DEFAULT_PARAMS.loop_min_period
    assert detect_exact_loop(ids) == PeriodicTail(onset=5, period=period, copies=pieces / period, end=5 + pieces)


# ---------------------------------------------------------------------------------------------
# Real traces (shared/fixtures, outside the repository)


def _generations() -> dict[str, list[dict]]:
    folder = FIXTURES / "generations"
    if not folder.is_dir():
        pytest.skip(f"real-trace fixtures not found at {folder} (they live outside the repository)")
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_measure_finds_the_loop_that_the_whole_text_holds():
    # measure() splits only tails of the text into pieces; the onset must be the one found
    # on the whole text, for loops shorter and far longer than the tails it reads first.
    rng = np.random.default_rng(8)
    words = ["so", "x", "=", "2", "wait", "then", "y", "3.5", "check", ",", ".", "\n"]
    loops_found = 0
    for _ in range(150):
        head = " ".join(rng.choice(words, int(rng.integers(0, 6000))))
        block = " ".join(rng.choice(words, int(rng.integers(1, 40))))
        spaced = [block, block.replace(" ", "  ", 1)]  # copies that differ only in spacing
        copies = " ".join(rng.choice(spaced, int(rng.integers(0, 900))))
        text = head + " " + copies + block[: int(rng.integers(0, len(block) + 1))]
        ids, starts = lexical_ids(text)
        found, measured = detect_exact_loop(ids), measure(text)
        if found is None:
            assert measured.loop_kind != "exact"
        else:
            loops_found += 1
            assert measured.loop_kind == "exact" and measured.loop_onset_char == int(starts[found.onset])
    assert loops_found > 50


def _exact_on_text(text: str) -> tuple[PeriodicTail | None, np.ndarray, np.ndarray]:
    """The lexical_ids recipe: tokenise a tail, and the whole text when the loop reaches back."""
    start = max(0, len(text) - 8192)
    ids, starts = lexical_ids(text, start)
    tail = detect_exact_loop(ids)
    if start and tail is not None and tail.onset == 0:
        ids, starts = lexical_ids(text)
        tail = detect_exact_loop(ids)
    return tail, ids, starts


@pytest.fixture(scope="module")
def fixture_figures():
    figures = {}
    for name, samples in _generations().items():
        row = {"samples": len(samples), "unclosed": 0, "unclosed_flagged": 0, "exact": 0, "near": 0}
        row |= {"closed_flagged": []}
        for i, sample in enumerate(samples):
            text = sample["generated_text"]
            closed = DEFAULT_PARAMS.think_close in text
            reasoning = text.split(DEFAULT_PARAMS.think_close)[0]
            exact, near = _exact_on_text(reasoning)[0], detect_near_loop(reasoning)
            if closed:
                if exact or near:
                    row["closed_flagged"].append(i)
                continue
            row["unclosed"] += 1
            row["exact"] += exact is not None
            row["near"] += near is not None
            row["unclosed_flagged"] += bool(exact or near)
        figures[name] = row
        print(f"{name}: {row}")
    return figures


def test_real_unclosed_traces_mostly_end_in_loops(fixture_figures):
    row = fixture_figures["kvquant_star-kv3_MATH-500.json"]
    assert row["unclosed"] == 13
    assert row["unclosed_flagged"] > row["unclosed"] / 2


def test_real_closed_reasoning_is_not_flagged(fixture_figures):
    flagged = {name: row["closed_flagged"] for name, row in fixture_figures.items()}
    assert {name: rows for name, rows in flagged.items() if rows} == {}


def test_real_loop_cut_mid_copy_is_found_with_its_onset():
    samples = _generations()["kvquant_star-kv3_MATH-500.json"]
    texts = (sample["generated_text"] for sample in samples)
    text = next(text for text in texts if text.endswith("Therefore, 15625=5"))
    copy = "Therefore, 15625=5^6.\n\n"
    tail, ids, starts = _exact_on_text(text)
    assert tail.period == 8 and tail.end == len(ids) and tail.copies > 1000
    onset_char = int(starts[tail.onset])
    # From the onset on, the text repeats one 8-piece block to the end (cut mid-copy) ...
    block = text[onset_char : int(starts[tail.onset + 8])]
    assert (block * (len(text) // len(block) + 1)).startswith(text[onset_char:])
    # ... and the piece before it breaks the pattern: "So, 15625=5^6." precedes the run.
    assert text[int(starts[tail.onset - 1]) : onset_char] == "So"
    near = detect_near_loop(text)
    assert near.distinct == 1 and text[near.onset_char :].startswith(copy)
    assert 0 < near.onset_char - onset_char < len(copy)
    assert StreamingLoopDetector().extend(ids) == detect_exact_loop(ids, NO_SLACK) == tail


def test_batch_detector_rows_and_blocks_match_batch_detection():
    """Each row, pushed in blocks of any size, reports what detect_exact_loop reports for its ids."""
    rng = np.random.default_rng(11)
    rows = [
        rng.integers(0, 40, 600),  # varied
        np.concatenate([rng.integers(0, 40, 200), np.tile(rng.integers(0, 40, 7), 60)]),
        np.concatenate([rng.integers(0, 40, 50), np.tile(rng.integers(0, 40, 131), 5)])[:600],
        np.tile([5, 5, 6, 5], 150),
    ]
    ids = np.stack([row[:600] for row in rows])
    for block in (1, 7, 16, 600):
        detector = BatchLoopDetector(len(rows), NO_SLACK)
        for start in range(0, ids.shape[1], block):
            onset, period = detector.push(ids[:, start : start + block])
            for b in range(len(rows)):
                expected = detect_exact_loop(ids[b, : start + block], NO_SLACK)
                if expected is None:
                    assert (onset[b], period[b]) == (-1, -1)
                else:
                    assert (onset[b], period[b]) == (expected.onset, expected.period)


def test_batch_detector_rows_are_independent():
    loop, varied = np.tile(np.arange(4), 10), np.arange(40)
    onset, period = BatchLoopDetector(2).push(np.stack([varied, loop]))
    assert onset.tolist() == [-1, 0] and period.tolist() == [-1, 4]


# ---------------------------------------------------------------------------------------------
# Exact loops, online over a persistent batch (rows that join, leave and move, as in vLLM)


def _expected(ids, params):
    """What a row should report: detect_exact_loop without tail slack, as (onset, period)."""
    tail = detect_exact_loop(np.asarray(ids, dtype=np.int64), replace(params, loop_tail_slack=0))
    return (-1, -1) if tail is None else (tail.onset, tail.period)


def _sequences(seed: int, count: int, alphabet: int = 6):
    """Sequences long enough to outlive many steps: noise, then mostly a loop, then noise."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        block = rng.integers(0, alphabet, int(rng.integers(1, 30)))
        yield np.concatenate([
            rng.integers(0, alphabet, int(rng.integers(0, 60))),
            np.tile(block, int(rng.integers(1, 15))),
            rng.integers(0, alphabet, int(rng.integers(0, 40))),
        ])


def test_persistent_batch_rows_match_batch_detection():
    """Random joins, resets, one-way moves, swaps and pushes of any size to any rows: every
    pushed row reports what detect_exact_loop (no slack) reports for its sequence so far."""
    rng = np.random.default_rng(21)
    for trial in range(12):
        pmax = int(rng.choice([8, 33]))
        params = MeasureParams(
            loop_min_period=int(rng.integers(1, 5)),
            loop_max_period=pmax,
            loop_min_copies=int(rng.choice([3, 4])),
            loop_window=4 * pmax,
        )
        batch = int(rng.integers(1, 7))
        detector = BatchLoopDetector(batch, params, dtype=np.int32 if trial % 2 else np.int64)
        source = _sequences(100 + trial, 10_000)
        slots = [next(source) for _ in range(batch)]  # each row's sequence
        seen = [0] * batch  # ids of it pushed so far
        for _ in range(150):
            action = rng.random()
            if action < 0.1:  # a new sequence takes some slots
                rows = rng.choice(batch, int(rng.integers(1, batch + 1)), replace=False)
                detector.reset(rows if rng.random() < 0.5 else [int(r) for r in rows])
                for row in rows:
                    slots[row], seen[row] = next(source), 0
            elif action < 0.2:  # rows move or swap (all sources read before any write)
                src = rng.permutation(batch)[: int(rng.integers(1, batch + 1))]
                dst = rng.permutation(src) if rng.random() < 0.5 else rng.choice(batch, len(src), replace=False)
                detector.move(src, dst)
                moved = [(slots[s], seen[s]) for s in src]
                for d, (sequence, count) in zip(dst, moved):
                    slots[d], seen[d] = sequence, count
            else:  # push k ids to some rows (all rows, a slice, an array, one row)
                k = int(rng.choice([1, 1, 1, 2, 5, 40]))
                form = rng.integers(0, 4)
                if form == 0:
                    rows, selection = list(range(batch)), None
                elif form == 1:
                    start = int(rng.integers(0, batch))
                    stop = int(rng.integers(start + 1, batch + 1))
                    rows, selection = list(range(start, stop)), slice(start, stop)
                elif form == 2:
                    rows = [int(r) for r in rng.choice(batch, int(rng.integers(1, batch + 1)), replace=False)]
                    selection = np.array(rows)
                else:
                    rows = [int(rng.integers(0, batch))]
                    selection = rows[0]
                for row in rows:  # a sequence that runs out is followed by a fresh one
                    if seen[row] + k > len(slots[row]):
                        slots[row] = np.concatenate([slots[row], next(source), next(source)])
                block = np.stack([slots[row][seen[row] : seen[row] + k] for row in rows])
                onset, period = detector.push(block, selection)
                for j, row in enumerate(rows):
                    seen[row] += k
                    assert (onset[j], period[j]) == _expected(slots[row][: seen[row]], params)
            assert detector.lengths.tolist() == seen


def test_new_sequence_in_a_slot_forgets_the_old_one():
    detector = BatchLoopDetector(2, NO_SLACK)
    noise = np.arange(100, 170)
    detector.push(np.stack([np.concatenate([noise[:50], [1, 2, 3, 4] * 5]), noise]))
    assert detector.push(np.array([[1], [7]]))[0].tolist() == [50, -1]
    detector.reset(0)
    assert detector.lengths.tolist() == [0, 71] and detector.length == 71
    # The slot's history is gone: the old copies of [1, 2, 3, 4] count for nothing.
    onset, _ = detector.push(np.array([[2, 3, 4, 1, 2, 3, 4]]), rows=[0])
    assert onset.tolist() == [-1]
    onset, period = detector.push(np.array([[1, 2, 3, 4, 1]]), rows=0)
    assert (onset.tolist(), period.tolist()) == ([0], [4])
    assert detector.lengths.tolist() == [12, 71]


def test_rows_follow_moves_and_swaps():
    """vLLM's condense moves the last row into a hole; its reordering swaps two rows."""
    rng = np.random.default_rng(22)
    loop = np.concatenate([rng.integers(100, 200, 30), np.tile([1, 2, 3, 4, 5, 6], 20)])
    varied = rng.integers(100, 200, len(loop))
    other = np.concatenate([rng.integers(100, 200, 70), np.tile([7, 8, 9, 10], 25)])
    detector = BatchLoopDetector(3, NO_SLACK)
    detector.push(np.stack([varied[:60], loop[:60], other[:60]]))
    detector.move([0, 1], [1, 0])  # swap: row 0 now holds the loop, row 1 the varied ids
    onset, period = detector.push(np.stack([loop[60:80], varied[60:80]]), rows=slice(0, 2))
    assert (onset.tolist(), period.tolist()) == ([_expected(loop[:80], NO_SLACK)[0], -1], [6, -1])
    detector.move(2, 1)  # one way: row 2 (behind in time) fills the hole at row 1
    assert detector.lengths.tolist() == [80, 60, 60]
    onset, period = detector.push(other[60:150][None], rows=[1])
    assert (onset[0], period[0]) == _expected(other[:150], NO_SLACK) == (70, 4)
    # Rows at different lengths go on together, one id each, read through one gather.
    for i in range(150, 160):
        onset, period = detector.push(np.array([[loop[i - 70]], [other[i]]]), rows=[0, 1])
        assert (onset[1], period[1]) == _expected(other[: i + 1], NO_SLACK)
    assert (onset[0], period[0]) == _expected(loop[:90], NO_SLACK)


def test_rows_pushed_in_any_order_and_none():
    detector = BatchLoopDetector(3, NO_SLACK)
    ids = np.tile([1, 2, 3, 4], 3)
    onset, _ = detector.push(np.stack([ids, ids + 10]), rows=[2, 0])
    assert onset.tolist() == [0, 0] and detector.lengths.tolist() == [12, 0, 12]
    onset, period = detector.push(np.zeros((0, 1), np.int64), rows=[])
    assert onset.shape == period.shape == (0,)
    with pytest.raises(IndexError):
        detector.push(np.array([[1]]), rows=[3])


def test_dense_batch_rows_match_batch_detection():
    """Rows kept dense, as qr-eval's vLLM watch keeps them: sequences join at the end (the
    detector grows when full, and shrinks now and then), a leaving one is replaced by the
    last row (a one-way move), rows 0..m-1 take one id each per step as ``slice(0, m)``,
    and now and then a joining one brings ids of its own."""
    rng = np.random.default_rng(23)
    params = MeasureParams(loop_max_period=24, loop_window=96)
    detector = BatchLoopDetector(1, params, dtype=np.int32)
    source = _sequences(200, 10_000)
    rows: list[list] = []  # [sequence, ids pushed]
    for step in range(600):
        if rows and rng.random() < 0.05:  # one leaves; the last row fills its place
            gone = int(rng.integers(len(rows)))
            last = len(rows) - 1
            if gone != last:
                detector.move(last, gone)
                rows[gone] = rows[last]
            detector.reset(last)
            rows.pop()
        while len(rows) < 8 and rng.random() < 0.1:  # one joins at the end, maybe with ids
            sequence, at = next(source), len(rows)
            if at == detector.batch:
                detector.resize(2 * at)
            detector.reset(at)
            head = int(rng.choice([0, 0, 0, 3, 40]))
            if head:
                onset, period = detector.push(sequence[None, :head], rows=at)
                assert (onset[0], period[0]) == _expected(sequence[:head], params)
            rows.append([sequence, head])
        if rows and rng.random() < 0.02:
            detector.resize(len(rows))
        if not rows:
            continue
        for row in rows:
            if row[1] + 1 > len(row[0]):
                row[0] = np.concatenate([row[0], next(source)])
        block = np.array([[sequence[seen]] for sequence, seen in rows])
        onset, period = detector.push(block, rows=slice(0, len(rows)))
        for j, row in enumerate(rows):
            row[1] += 1
            assert (onset[j], period[j]) == _expected(row[0][: row[1]], params), (step, j)
    assert detector.lengths[: len(rows)].tolist() == [seen for _, seen in rows]


def test_runs_past_32767_ids_stay_exact():
    """Runs are counted in int16 until one nears its range, then in int32."""
    noise = list(range(1000, 1100))
    ids = noise + [1, 2, 3, 4, 5] * 6600  # a run of 32_995 matches at period 5
    detector = StreamingLoopDetector(NO_SLACK)
    assert detector.extend(ids[:32_700]) == detect_exact_loop(ids[:32_700], NO_SLACK)
    for n in range(32_701, 32_901):  # one id at a time across the limit
        assert detector.push(ids[n - 1]) == detect_exact_loop(ids[:n], NO_SLACK)
    assert detector._batch._runs.dtype == np.int32
    tail = detector.extend(ids[32_900:])
    assert tail == detect_exact_loop(ids, NO_SLACK) and tail.onset == 100 and tail.period == 5
    batch = BatchLoopDetector(2, NO_SLACK)
    batch.push(np.stack([ids, ids[::-1]]))  # one block of 33_100 ids
    onset, period = batch.push(np.array([[1], [7]]))
    assert onset.tolist() == [100, -1] and period.tolist() == [5, -1]
