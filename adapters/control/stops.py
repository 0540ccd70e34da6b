"""Where a generation stops: stop sequences found in decoded ids, and a model's own stop ids."""

from __future__ import annotations

from typing import Callable


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
