"""The one in-memory model of a run that every verb works on (DESIGN.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..documents import item_key, sample_key
from ..sidecar import SideRecord


class InputError(ValueError):
    """Bad input, reported as one line naming file, line and field (exit code 2)."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, field: str | None = None):
        where = f"{path}" + (f":{line}" if line is not None else "")
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {message}")


class OptionError(InputError):
    """A bad value of a parameter (``unit``, ``baseline``, ``speedups``, ...), named as the
    parameter: library code names no command-line flag, and a command line prints its own
    flag for ``option`` instead."""

    def __init__(self, option: str, message: str):
        self.option, self.message = option, message
        super().__init__(option, message)


@dataclass(frozen=True)
class Sample:
    """One generation: (task, doc_id, repeat) is its key across runs."""

    task: str
    doc_id: Any
    repeat: int = 0
    completion: str | None = None
    prompt: str | None = None
    gold: Any = None
    correct: bool | None = None
    finish_reason: str | None = None
    max_gen_toks: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    doc_key: str | None = None
    """The logged lm-eval document, canonically serialised (see ``doc_key``)."""
    prompt_hash: str | None = None
    """lm-eval's logged ``prompt_hash``: what a side-file record must match."""
    side: SideRecord | None = None
    """The adapters' side-file record, when the run has one (its counts are exact)."""

    @property
    def key(self) -> tuple[str, str, int]:
        """``sample_key``: ``doc_id`` as ``doc_id_key`` writes it, so ``1``, ``1.0`` and ``"1"`` pair."""
        return sample_key(self.task, self.doc_id, self.repeat)

    @property
    def item(self) -> tuple[str, str]:
        """``item_key``: the repeats of one document share it."""
        return item_key(self.task, self.doc_id)


@dataclass
class Run:
    """Samples plus what is known about the model that produced them."""

    name: str
    source: Path
    samples: list[Sample]
    model: str | None = None
    precision: str | None = None
    bits: float | None = None
    tokenizer: str | None = None
    speedup: float | None = None
    """Per-token decoding speedup over the full-precision model, as run.json gives it (the
    leaderboard measures one from ``decode_s_per_token`` when none is given)."""
    generation: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per task: the generation settings the run used (lm-eval runs only)."""
    decode_s_per_token: dict[str, float] = field(default_factory=dict)
    """Measured seconds per decoding step per model (``lowbit``, ``reference``), from the
    side file: the token-weighted mean over its records."""
    device: str | None = None
    """Where the run was evaluated, so where its side file's timings were taken, as lm-eval's
    results say: its ``device`` and the GPU or CPU model of its environment report
    (``cuda:0: NVIDIA H100 80GB HBM3``, ``cpu: AMD EPYC``), or a served model's address
    (``server http://...``); None when they do not say."""
    timestamp: str | None = None
    """The lm-eval run's timestamp (of ``results_<timestamp>.json``)."""
    measure_params: dict[str, Any] = field(default_factory=dict)
    """``MeasureParams`` keys the lm-eval run was given in its ``metadata`` (think tags,
    thresholds): what its own table was measured with, and what the verbs measure it with."""

    @property
    def tasks(self) -> list[str]:
        return sorted({s.task for s in self.samples})
