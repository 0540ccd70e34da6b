"""Length of a trace in tokens, words and steps.

Tokens are counted with the evaluated model's tokenizer, loaded lazily and cached; when no
tokenizer can be resolved, token fields are absent rather than estimated.
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from itertools import chain

import numpy as np

log = logging.getLogger(__name__)

_BLANK_LINE = re.compile(r"\n[ \t]*\n")


SPACE_BYTES = np.zeros(256, dtype=bool)
"""The ASCII bytes ``str.split()`` splits on."""
SPACE_BYTES[[ord(c) for c in " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"]] = True


def count_words(text: str) -> int:
    """Whitespace-separated words (as ``str.split``), the unit of papers that count words.

    ASCII text is counted on its bytes without building a list of words.
    """
    if not text.isascii():
        return len(text.split())
    space = np.take(SPACE_BYTES, np.frombuffer(text.encode("ascii"), dtype=np.uint8))
    return int(np.count_nonzero(space[:-1] & ~space[1:])) + int(len(space) > 0 and not space[0])


def count_steps(text: str) -> int:
    """Non-empty blocks separated by blank lines, the unit of papers that count steps."""
    return sum(map(bool, map(str.strip, _BLANK_LINE.split(text))))


MAX_COUNT = 2**53
"""The largest count (or budget) read from a file: every integer up to it is exact as a
float, and counts are averaged as floats (a larger JSON integer would overflow)."""


def is_count(value: object) -> bool:
    """A count read from JSON: an integer (not a boolean) in [0, ``MAX_COUNT``]."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


class TokenCounter:
    """Counts tokens with one Hugging Face tokenizer (``add_special_tokens=False``)."""

    def __init__(self, name_or_path: str):
        self.name = name_or_path
        self._tokenizer = _load_tokenizer(name_or_path)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and the char offset where each token starts.

        Calls the Rust tokenizer directly: the transformers wrapper costs as much again and
        warns about model lengths, which do not matter for counting.
        """
        enc = self._tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
        offsets = enc.offsets
        starts = np.fromiter(chain.from_iterable(offsets), np.int64, 2 * len(offsets))[::2]
        return np.asarray(enc.ids, dtype=np.int64), starts


@lru_cache(maxsize=8)
def _load_tokenizer(name_or_path: str):
    # transformers is heavy: imported here so that qr_metrics stays light at import time.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"tokenizer {name_or_path!r} has no fast (Rust) implementation; "
            "qr-eval needs one for token offsets"
        )
    return tokenizer


def tokenizer_problem(name_or_path: str) -> str | None:
    """Why the tokenizer ``name_or_path`` does not load, in one line; None when it loads."""
    if os.path.isabs(name_or_path) and not os.path.exists(name_or_path):
        return "no such directory"  # what the hub client would say instead misleads
    try:
        token_counter(name_or_path)
    except Exception as error:  # any loading failure means the same: no token counts
        return (str(error).strip().splitlines() or [type(error).__name__])[0]
    return None


def loadable_tokenizer(name_or_path: str) -> str | None:
    """``name_or_path`` if its tokenizer loads, else None with one warning: token counts are
    then left out, never estimated."""
    problem = tokenizer_problem(name_or_path)
    if problem is not None:
        log.warning(
            "tokenizer %r does not load (%s): token counts are left out, lengths are in words and steps",
            name_or_path,
            problem,
        )
        return None
    return name_or_path


@lru_cache(maxsize=8)
def token_counter(name_or_path: str) -> TokenCounter:
    """One cached counter per tokenizer name, shared by every sample of a run."""
    return TokenCounter(name_or_path)


def same_tokenizer(first: str | None, second: str | None) -> bool:
    """Whether two tokenizer names count alike: the same name, or two that load with the
    same vocabulary (a quantized checkpoint usually ships its base model's tokenizer)."""
    if first == second:
        return True
    if first is None or second is None:
        return False
    try:
        return _load_tokenizer(first).get_vocab() == _load_tokenizer(second).get_vocab()
    except Exception:  # one that does not load cannot be shown to count alike
        return False
