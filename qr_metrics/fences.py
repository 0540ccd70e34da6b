"""Fenced blocks (```lang ... ```) in model text, with their positions.

The one fence parser of qr-eval: ``code_sandbox.extract_code`` (the program of an answer),
``programs.CodeGrader`` (code drafts in the reasoning) and ``tool_calls`` (calls in fenced
blocks) all read blocks through :func:`fenced_blocks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n`]*$")
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")

PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})
"""Tags of a block that holds Python code. The union of the two lists this replaced:
``code_sandbox.extract_code`` took ``python``, ``py``, ``python3``, ``py3``; the code drafts
of ``programs`` also took untagged blocks (``""``). ``extract_code`` still ranks a block tagged
as Python above an untagged one."""


@dataclass(frozen=True)
class Fence:
    """One fenced block: char offset of its opening line, language tag (lower case, may be
    empty), body, and whether a closing fence was found."""

    start: int
    tag: str
    body: str
    closed: bool


def fenced_blocks(text: str) -> list[Fence]:
    """Every fenced block of ``text`` in order; one left open at the end counts (unclosed).

    A fence is a line of its own (spaces or tabs before it allowed): an opening one may carry a
    tag and more words (```` ```Python title="x" ```` gives tag ``python``), a closing one
    nothing. Inline ```` ```x``` ```` is no block. The body keeps its lines' own line breaks.
    """
    blocks: list[Fence] = []
    start, tag, body = -1, "", []
    offset = 0
    for line in text.splitlines(keepends=True):
        bare = line.splitlines()[0]  # without its line break, whichever ``splitlines`` saw
        if start < 0:
            opened = _OPEN.match(bare)
            if opened:
                start, tag, body = offset, opened.group(1).lower(), []
        elif _CLOSE.match(bare):
            blocks.append(Fence(start, tag, "".join(body), True))
            start = -1
        else:
            body.append(line)
        offset += len(line)
    if start >= 0:
        blocks.append(Fence(start, tag, "".join(body), False))
    return blocks
