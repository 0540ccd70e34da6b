"""How a generation is keyed across files: by its document and by its prompt.

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
from typing import Any

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


def prompt_hash(prompt: str) -> str:
    """SHA-256 hex digest of the prompt string: lm-eval's ``prompt_hash`` of a sample."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
