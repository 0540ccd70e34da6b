"""How a generation is keyed across files: by its document and by its prompt.

Across runs a sample is keyed by :func:`sample_key` ``(task, doc_id, repeat)`` and its item
(the repeats of one document together) by :func:`item_key` ``(task, doc_id)``, with the
``doc_id`` written by :func:`doc_id_key`; :func:`item_indices` numbers items for the
statistics.

lm-eval's ``process_results`` sees a document but not its ``doc_id``, so in-harness
comparisons match samples by document content (:func:`doc_key`); the model side sees only
the prompt string, so the adapters' side file is joined to lm-eval's samples by
:func:`prompt_hash`, the value lm-eval logs as ``prompt_hash``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Iterable

import numpy as np

from .params import is_int

_INTEGRAL = re.compile(r"-?(0|[1-9][0-9]*)(\.0+)?")
"""A string that writes an integer or an integral float (``"12"``, ``"12.0"``; not ``"012"``)."""


def doc_key(doc: Any) -> str:
    """A document's identity by content, canonically serialised."""
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str)


def doc_id_key(doc_id: Any) -> str:
    """A ``doc_id`` as samples pair by it across files: an integer, an integral float and
    their strings are one id (``1``, ``1.0``, ``"1"`` and ``"1.0"`` give ``"1"``); other
    numbers and strings are kept as written. ``ValueError`` for anything else (a boolean,
    null, a list, a non-finite number): ``true`` is no document id."""
    if isinstance(doc_id, bool) or not isinstance(doc_id, (int, float, str)):
        raise ValueError(f"must be a string or a number, got {json.dumps(doc_id, default=str)}")
    if isinstance(doc_id, float):
        if not math.isfinite(doc_id):
            raise ValueError(f"must be a finite number, got {doc_id}")
        return str(int(doc_id)) if doc_id.is_integer() else repr(doc_id)
    if isinstance(doc_id, str) and _INTEGRAL.fullmatch(doc_id):
        return str(int(doc_id.split(".")[0]))
    return str(doc_id)


def item_key(task: str, doc_id: Any) -> tuple[str, str]:
    """The item a sample belongs to, ``(task, doc_id_key(doc_id))``: the repeats of one
    document share it. ``ValueError`` for a ``doc_id`` that :func:`doc_id_key` refuses."""
    return (task, doc_id_key(doc_id))


def sample_key(task: str, doc_id: Any, repeat: int = 0) -> tuple[str, str, int]:
    """A sample's key across runs, ``(task, doc_id_key(doc_id), repeat)``: samples of two
    runs pair when their keys are equal. ``ValueError`` for a ``doc_id`` that
    :func:`doc_id_key` refuses or a ``repeat`` that is not an integer >= 0."""
    if not is_int(repeat) or repeat < 0:
        raise ValueError(f"repeat must be an integer >= 0, got {repeat!r}")
    return (task, doc_id_key(doc_id), int(repeat))


def item_indices(keys: Iterable[Any]) -> np.ndarray:
    """Item ids ``0..k-1`` for a sequence of item keys, numbered in first-seen order (equal
    keys get one id): the ``item`` array ``qr_metrics.stats`` and ``qr_metrics.efficiency``
    take. A sample key's item is ``key[:2]``; pass ``item_key(...)`` values or any hashables."""
    index: dict[Any, int] = {}
    return np.fromiter((index.setdefault(key, len(index)) for key in keys), dtype=np.intp)


def prompt_hash(prompt: str) -> str:
    """SHA-256 hex digest of the prompt string: lm-eval's ``prompt_hash`` of a sample."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
