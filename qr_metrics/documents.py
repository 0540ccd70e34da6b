"""How a generation is keyed across files: by its document and by its prompt.

lm-eval's ``process_results`` sees a document but not its ``doc_id``, so in-harness
comparisons match samples by document content (:func:`doc_key`); the model side sees only
the prompt string, so the adapters' side file is joined to lm-eval's samples by
:func:`prompt_hash`, the value lm-eval logs as ``prompt_hash``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def doc_key(doc: Any) -> str:
    """A document's identity by content, canonically serialised."""
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str)


def prompt_hash(prompt: str) -> str:
    """SHA-256 hex digest of the prompt string: lm-eval's ``prompt_hash`` of a sample."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
