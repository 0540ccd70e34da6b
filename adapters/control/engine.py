"""What the control logic needs from a backend: its tokenizer and its generation call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


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
