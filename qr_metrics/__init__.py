"""Pure measurement of reasoning traces: segments, counts, answers, pathologies, statistics.

The verbs, over plain data::

    from qr_metrics import measure, split_reasoning, detect_exact_loop, inflation_ratios

    m = measure(completion, gold="42")          # counts, correctness, pathology flags
    segments = split_reasoning(completion)       # reasoning / answer / unclosed
    ratios = inflation_ratios(item, base_len, cand_len)

Thresholds live in one ``MeasureParams`` (bootstrap settings in ``BootstrapConfig``), checked
once, refusing a value with ``ParameterError``. ``measure`` here is the function; the module
is ``qr_metrics.measure`` in ``sys.modules`` (``from qr_metrics.measure import ...``).

Imports no torch, transformers or vllm at module import time. The statistics (``stats``,
which loads scipy, about a second) are imported on first use of one of their names.
"""

from __future__ import annotations

from .counts import TokenCounter, count_steps, count_words, token_counter
from .documents import item_indices, item_key, sample_key
from .loops import detect_exact_loop, detect_near_loop
from .measure import SampleMeasurement, measure
from .params import DEFAULT_PARAMS, MeasureParams, ParameterError
from .segments import Segments, split_reasoning

_STATS = ("BootstrapConfig", "accuracy_comparison", "inflation_ratios", "macro_ratio", "mcnemar_exact",
          "paired_comparison", "stratified_comparison")

__all__ = [
    "DEFAULT_PARAMS",
    "MeasureParams",
    "ParameterError",
    "SampleMeasurement",
    "Segments",
    "TokenCounter",
    "count_steps",
    "count_words",
    "detect_exact_loop",
    "detect_near_loop",
    "item_indices",
    "item_key",
    "measure",
    "sample_key",
    "split_reasoning",
    "token_counter",
    *_STATS,
]


def __getattr__(name: str):
    """The statistics' names, imported from ``qr_metrics.stats`` on first use (PEP 562)."""
    if name in _STATS:
        from . import stats

        value = getattr(stats, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
