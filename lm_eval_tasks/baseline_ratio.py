"""In-harness inflation ratio against a baseline run (``--metadata '{"qr_baseline": DIR}'``).

lm-eval aggregates each metric over per-sample items; here an item is (document key,
reasoning length), and the aggregation pairs the items with the baseline's samples of the
same task and computes ``ratio_of_means`` with ``qr_metrics.stats``, the code behind
``qr-eval compare``. The baseline is read by the one run reader and re-measured with this
run's tokenizer, so both sides count in the same unit.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

import numpy as np

from qr_metrics.params import MeasureParams
from qr_metrics.stats import inflation_ratios

log = logging.getLogger(__name__)

METRICS = ("inflation_ratio", "inflation_ratio_low", "inflation_ratio_high")


class BaselineRatio:
    """Aggregations that turn (doc key, length) items into the ratio and its bounds."""

    def __init__(self, baseline: str, task: str, unit: str, tokenizer: str | None, params: MeasureParams):
        self.baseline, self.task, self.unit = baseline, task, unit
        self.tokenizer, self.params = tokenizer, params
        self._last: tuple[int, Any] | None = None

    def metric_list(self) -> list[dict[str, Any]]:
        """lm-eval ``metric_list`` entries for the ratio and its interval bounds."""
        aggregations = (self.ratio, self.low, self.high)
        return [
            {"metric": name, "aggregation": aggregate, "higher_is_better": False}
            for name, aggregate in zip(METRICS, aggregations)
        ]

    @cached_property
    def baseline_lengths(self) -> dict[str, float]:
        """Document key -> baseline reasoning length (first repeat) for this task."""
        from qr_metrics.measured import measure_run
        from qr_metrics.runs import read_run

        run = read_run(self.baseline)
        measured = measure_run(run, tokenizer=self.tokenizer, params=self.params, progress=False)
        lengths = {
            m.sample.doc_key: float(m.counts[self.unit])
            for m in measured
            if m.sample.task == self.task and m.sample.repeat == 0 and m.sample.doc_key and self.unit in m.counts
        }
        if not lengths:
            raise ValueError(f"qr_baseline {self.baseline} has no logged samples of task {self.task!r}")
        return lengths

    def _result(self, items: list[tuple[str, float]]):
        if self._last is not None and self._last[0] == id(items):
            return self._last[1]
        base = self.baseline_lengths
        paired = [(base[key], length) for key, length in items if key in base]
        if len(paired) < len(items):
            log.warning("%s: %d sample(s) have no baseline partner and are excluded", self.task, len(items) - len(paired))
        if not paired:
            raise ValueError(f"{self.task}: no sample pairs with the baseline {self.baseline}")
        base_len, cand_len = np.array(paired).T
        result = inflation_ratios(np.arange(len(paired)), base_len, cand_len).ratio_of_means
        self._last = (id(items), result)
        return result

    def ratio(self, items):
        return self._result(items).estimate

    def low(self, items):
        return _bound(self._result(items).low)

    def high(self, items):
        return _bound(self._result(items).high)


def _bound(value: float | None) -> float:
    # lm-eval's table needs a number; a missing bound (one item) is shown as NaN there.
    return float("nan") if value is None else value
