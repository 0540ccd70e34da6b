"""The lm-eval task class every qr task YAML names with ``class:``.

YAML cannot say two things qr tasks need: scoring must see the run's metadata (which
tokenizer counts tokens, measurement thresholds) and the effective ``max_gen_toks``; and
the dataset must come from a local copy on air-gapped clusters (``qr_data``). Everything
else (prompt, dataset, metrics) stays in the YAML.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from lm_eval.api.task import ConfigurableTask

from qr_metrics.counts import loadable_tokenizer
from qr_metrics.documents import doc_key
from qr_metrics.graders import grader_for_task
from qr_metrics.measure import SampleMeasurement, measure
from qr_metrics.params import MeasureParams
from qr_metrics.pathologies import PATHOLOGIES

from .baseline_ratio import METRICS as BASELINE_METRICS
from .baseline_ratio import BaselineRatio

log = logging.getLogger(__name__)

_PARAM_NAMES = {f.name for f in fields(MeasureParams)}
_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


class QRTask(ConfigurableTask):
    """A generative task scored by ``qr_metrics.measure`` (accuracy, lengths, pathologies).

    The grader comes from ``qr_metrics.graders.grader_for_task``, the registry that
    ``qr-eval analyze`` uses too, so both always grade a task the same way.
    """

    def __init__(self, config: dict[str, Any]):
        metadata = config.get("metadata") or {}
        if metadata.get("think_end_token") is not None:
            log.warning(
                "think_end_token is set: lm-eval strips the reasoning before scoring, so "
                "reasoning tokens and pathologies cannot be measured; drop it (qr tasks split "
                "reasoning themselves; set tags with --metadata '{\"think_close\": ...}')"
            )
        self.params = MeasureParams.from_mapping({k: v for k, v in metadata.items() if k in _PARAM_NAMES})
        self._tokenizer = _resolve_tokenizer(metadata)
        self.grader = grader_for_task(config["task"])
        if config.get("unsafe_code") and hasattr(self.grader, "confirmed"):
            # lm-eval evaluates a task marked `unsafe_code` only with --confirm_run_unsafe_code,
            # checked before anything is generated, so scoring here may run model code.
            self.grader = self.grader.confirmed()
        task_config = {k: v for k, v in config.items() if k != "class"}
        self._baseline = None
        if metadata.get("qr_baseline"):
            unit = "reasoning_tokens" if self._tokenizer else "words"
            self._baseline = BaselineRatio(
                str(metadata["qr_baseline"]), config["task"], unit, self._tokenizer, self.params
            )
            task_config["metric_list"] = [*task_config.get("metric_list", []), *self._baseline.metric_list()]
        super().__init__(config={**task_config, "process_results": self._score})

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs) -> None:
        """The hub dataset, or the local copy named by ``--metadata '{"qr_data": PATH}'``."""
        local = (self.config.metadata or {}).get("qr_data")
        if local is None:
            return super().download(dataset_kwargs, **kwargs)
        self.dataset = load_local_copy(Path(local), self.config.task, self.config.test_split)

    def _score(self, doc: dict, results: list[str]) -> dict[str, float]:
        m = measure(
            results[0],
            gold=self.doc_to_target(doc),
            grader=self.grader,
            tokenizer=self._tokenizer,
            max_gen_toks=(self.config.generation_kwargs or {}).get("max_gen_toks"),
            params=self.params,
        )
        metrics = sample_metrics(m)
        if self._baseline is not None:
            item = (doc_key(doc), m.counts.get(self._baseline.unit, 0))
            metrics.update(dict.fromkeys(BASELINE_METRICS, item))
        return metrics


def sample_metrics(m: SampleMeasurement) -> dict[str, float]:
    """The per-sample metrics lm-eval aggregates: accuracy, lengths, one 0/1 per pathology."""
    flags = {k: float(m.flags[k]) for k in PATHOLOGIES if m.flags[k] is not None}
    return {"acc": float(bool(m.correct)), **m.counts, **flags}


def _resolve_tokenizer(metadata: dict[str, Any]) -> str | None:
    """The tokenizer named by the run (``tokenizer``, else ``pretrained``), if it loads."""
    name = metadata.get("tokenizer") or metadata.get("pretrained")
    if not name:
        log.warning("no tokenizer in the model arguments or --metadata: token metrics are left out")
        return None
    return loadable_tokenizer(str(name))


def load_local_copy(path: Path, task: str, split: str):
    """A local JSON Lines / Parquet copy with the hub dataset's columns, as split ``split``.

    ``path`` is a file, or a directory holding ``<task>.jsonl`` or ``<task>.parquet``.
    """
    import datasets

    if path.is_dir():
        candidates = [path / f"{task}{suffix}" for suffix in (".jsonl", ".parquet", ".json")]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise FileNotFoundError(
                f"qr_data directory {path} has no local copy for task {task!r}: expected one of "
                + ", ".join(c.name for c in candidates)
            )
        path = found[0]
    if not path.exists():
        raise FileNotFoundError(f"qr_data file {path} does not exist")
    builder = _LOCAL_FORMATS.get(path.suffix)
    if builder is None:
        raise ValueError(f"qr_data file {path}: expected .jsonl, .json or .parquet, got {path.suffix!r}")
    loaded = datasets.load_dataset(builder, data_files=str(path), split="train")
    return datasets.DatasetDict({split: loaded})
