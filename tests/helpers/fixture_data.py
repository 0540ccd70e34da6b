"""The real quantized-model outputs in ../shared/fixtures as generic trace files.

The fixtures come in their publisher's shapes; tests turn them into qr-eval's generic trace
records with ``qr-eval convert``'s library (``qr_leaderboard.convert``), as users do.
"""

from __future__ import annotations

from pathlib import Path

from qr_leaderboard.convert import convert, write_traces


def to_traces(source: Path, target: Path, task: str) -> list[dict]:
    """Convert ``source`` (``generations/*.json`` or ``per_sample/*.csv``) into ``target``.

    A per-sample file's ``word_count`` counts the whole completion; its answer segments are
    a few dozen words against thousands of reasoning words, and the tests say so where they
    compare with the published means.
    """
    records = convert(source, task=task).records
    target.parent.mkdir(parents=True, exist_ok=True)
    write_traces(records, target)
    return records


generations_to_traces = per_sample_to_traces = to_traces
