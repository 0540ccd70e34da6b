"""``qr_toy``: three-digit additions with a written-out chain of thought, made from a seed.

One generator serves the task (:func:`custom_dataset`, which lm-eval calls through the
YAML's ``custom_dataset: !function``) and the training of the embedded tiny reasoning model
(``qr_adapters.toy_model.training``), so both always see the same problems and the same trace style.

Problems are split once and for all: a pair belongs to ``test`` or ``train`` by a hash of the
unordered pair, so no test problem (nor its commuted form, which the verification step
writes) can be drawn for training, whatever the seeds.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

TEST_SEED = 2024
"""The seed of the evaluation set (``custom_dataset``'s default)."""
TEST_SIZE = 100
TEST_SHARE = 10
"""One pair in TEST_SHARE belongs to the test split."""
COLUMNS = ("ones", "tens", "hundreds")


def split_of(a: int, b: int) -> str:
    """``test`` or ``train``, the same for ``a + b`` and ``b + a``."""
    low, high = sorted((a, b))
    return "test" if zlib.crc32(f"{low}+{high}".encode()) % TEST_SHARE == 0 else "train"


@lru_cache(maxsize=2)
def split_size(split: str) -> int:
    """How many ordered pairs ``split`` holds (81,259 test, 728,741 train)."""
    return sum(split_of(a, b) == split for a in range(100, 1000) for b in range(100, 1000))


_SURELY_AVAILABLE = 10_000
"""Fewer problems than this are drawn without counting the split (which takes about a
second; each split holds far more)."""


def check_size(n: int, split: str) -> None:
    """ValueError unless ``split`` holds ``n`` distinct problems (asking for more would draw forever)."""
    if n < 1 or (n > _SURELY_AVAILABLE and n > split_size(split)):
        raise ValueError(f"cannot draw {n} distinct {split} problems: must be between 1 and {split_size(split)}")


def problems(seed: int, n: int, split: str = "test") -> list[dict[str, Any]]:
    """``n`` distinct problems of ``split``, drawn by ``random.Random(seed)``.

    Each is ``{"a", "b", "problem", "answer"}``, e.g. ``problem="What is 347 + 586?"`` and
    ``answer="933"``.
    """
    if split not in ("test", "train"):
        raise ValueError(f"split={split!r} is invalid: must be 'test' or 'train'")
    check_size(n, split)
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    out = []
    while len(out) < n:
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        if (a, b) in seen or split_of(a, b) != split:
            continue
        seen.add((a, b))
        out.append({"a": a, "b": b, "problem": f"What is {a} + {b}?", "answer": str(a + b)})
    return out


def doc_to_text(doc: dict[str, Any]) -> str:
    """The prompt (the task's ``doc_to_text``, and the training's), worded as ``qr_math``'s."""
    return f"{doc['problem']}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def _digits(n: int) -> list[int]:
    return [int(d) for d in reversed(f"{n:03d}")]


def _columns(a: int, b: int, slip: tuple[int, int] | None = None) -> tuple[list[str], list[int]]:
    """The column lines of ``a + b`` (ones first) and their sums; ``slip=(column, delta)``
    makes that column's sum off by ``delta`` (a mistake the check will catch)."""
    lines, totals, carry = [], [], 0
    for i, (x, y) in enumerate(zip(_digits(a), _digits(b))):
        total = x + y + carry
        if slip is not None and slip[0] == i:
            total = max(0, total + slip[1])
        terms = f"{x}+{y}" if i == 0 else f"{x}+{y}+{carry}"
        last = i == len(COLUMNS) - 1
        lines.append(f"{COLUMNS[i].capitalize()}: {terms}={total}" + ("." if last else f", carry {total // 10}."))
        totals.append(total)
        carry = total // 10
    return lines, totals


def _written(totals: list[int]) -> str:
    """The number the column sums write: the last sum whole, the others' units digits."""
    return str(totals[-1]) + "".join(str(t % 10) for t in reversed(totals[:-1]))


def _check(a: int, b: int, totals: list[int]) -> tuple[str, bool]:
    """The verification: ``b + a`` column by column, each sum compared with the attempt's
    sum of that column (``ok``), up to the first that differs (``no``): the verdict then
    follows the ``no`` at once, as a reasoning model's "wait" follows the step it doubts."""
    steps, carry = [], 0
    for i, (y, x) in enumerate(zip(_digits(b), _digits(a))):
        total = y + x + carry
        same = total == totals[i]
        steps.append((f"{y}+{x}={total}" if i == 0 else f"{y}+{x}+{carry}={total}") + (" ok" if same else " no"))
        if not same:
            return f"Check: {b}+{a}. " + ", ".join(steps) + ". Wrong, let me redo the sum.", False
        carry = total // 10
    return f"Check: {b}+{a}. " + ", ".join(steps) + ". Correct.", True


def _attempt(a: int, b: int, slip: tuple[int, int] | None = None) -> tuple[list[str], bool]:
    lines, totals = _columns(a, b, slip)
    lines.append(f"So the sum is \\boxed{{{_written(totals)}}}.")
    check, ok = _check(a, b, totals)
    return [*lines, check], ok


def solution(problem: dict[str, Any], slips: Sequence[tuple[int, int]] = ()) -> str:
    """The completion after the chat template's ``<think>\\n``: the columns, a candidate
    ``\\boxed{}`` answer, its check, the close and the answer.

    Each ``(column, delta)`` of ``slips`` is an attempt with that column's sum off by
    ``delta``: the check catches it (``no`` beside the columns that differ, "Wrong, let me
    redo the sum.") and the sum is done again, until a correct attempt passes: what a
    reasoning model's self-verification looks like when it catches its mistakes.
    """
    a, b = problem["a"], problem["b"]
    lines: list[str] = []
    for slip in slips:
        attempt, ok = _attempt(a, b, slip)
        if not ok:  # a slip that changes nothing is no slip
            lines += attempt
    lines += _attempt(a, b)[0]
    return "\n".join(lines) + f"\n</think>\n\nThe answer is \\boxed{{{a + b}}}."


def training_solution(problem: dict[str, Any], rng: random.Random, slip_share: float,
                      again_share: float = 0.35, max_slips: int = 3) -> str:
    """:func:`solution` drawn at random: a ``slip_share`` of the problems slip once, and
    each redo slips again with probability ``again_share`` (at most ``max_slips`` slips)."""
    slips = []
    share = slip_share
    while len(slips) < max_slips and rng.random() < share:
        slips.append((rng.randrange(len(COLUMNS)), rng.choice((-2, -1, 1, 2))))
        share = again_share
    return solution(problem, slips)


def custom_dataset(toy_seed: int = TEST_SEED, toy_n: int = TEST_SIZE, **metadata: Any):
    """The evaluation set for lm-eval (``custom_dataset: !function``): split ``test`` with
    columns ``problem``, ``answer``, ``a``, ``b``. ``--metadata '{"toy_seed": S, "toy_n": N}'``
    sets the seed and size; lm-eval passes every metadata key, and the others are ignored."""
    import datasets

    rows = problems(int(toy_seed), int(toy_n), "test")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
