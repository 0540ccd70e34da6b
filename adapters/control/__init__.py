"""The rescue control logic, written once: ``qr-hf``, ``qr-vllm`` and ``qr-completions`` call it
with their engine.

A backend hands over a :class:`Batch` of :class:`Trace` rows (``trace``: prompt ids in,
completion ids assembled here) and an :class:`Engine` that generates (``engine``);
:func:`plan_batch` lets the reference write the first ``plan_tokens`` ids, :func:`rescue_batch`
commits or falls back for every row cut at a loop or at the budget, and :func:`may_rescue` is
the one rule for when a row may be rescued (``policy``); :meth:`Batch.records` writes the
side-file records that :class:`SideLog` files (``side_log``). ``stops`` finds stop sequences
and stop ids; ``vocabulary`` checks that planning and fallback share a tokenizer.
"""

from .engine import Engine
from .policy import answer_room, commit_text, may_rescue, plan_batch, rescue_batch, writes_answer
from .side_log import SideLog
from .stops import stop_ids, stop_lookback, through_stop
from .trace import Batch, Trace
from .vocabulary import check_same_vocabulary

__all__ = [
    "Batch", "Engine", "SideLog", "Trace", "answer_room", "check_same_vocabulary", "commit_text", "may_rescue",
    "plan_batch", "rescue_batch", "stop_ids", "stop_lookback", "through_stop", "writes_answer",
]
