"""Which lm-eval request each generation answers, and the side file's records."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Callable, Hashable

import jsonlines

from qr_metrics.files import atomic_write


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
