"""Planning and fallback splice one model's ids into the other's: both need one vocabulary."""

from __future__ import annotations

from typing import Any

from ..errors import ModelArgumentError


def check_same_vocabulary(pretrained: Any, reference: str) -> None:
    """``ModelArgumentError`` when the reference's tokenizer vocabulary is not ``pretrained``'s."""
    if not (isinstance(pretrained, str) and isinstance(reference, str)):
        return  # model objects (Python API): the caller vouches for them
    from transformers import AutoTokenizer  # (only here: control needs no model library)

    ours, theirs = (AutoTokenizer.from_pretrained(name).get_vocab() for name in (pretrained, reference))
    if ours != theirs:
        raise ModelArgumentError(
            f"reference={reference!r} is invalid: its vocabulary ({len(theirs)} tokens) differs from "
            f"{pretrained!r}'s ({len(ours)} tokens); planning and fallback need the same tokenizer"
        )
