"""``qr-vllm``: lm-eval's ``vllm`` model with loop rescue, FP16 planning and the side file.

Every ``VLLM`` argument keeps working (``tensor_parallel_size``, ``gpu_memory_utilization``,
``quantization=``: anything vLLM serves); the extra ones are ``qr-hf``'s (``reference``,
``rescue``, ``plan_tokens``, the detector's, ``sidecar``) plus
``reference_gpu_memory_utilization`` (the reference is a second engine in this process) and
``chunk_tokens``. The control logic is ``qr_adapters.control``, shared with ``qr-hf``; what
is vLLM's own is how the low-bit model is watched:

- where the installed vLLM has ``SamplingParams.repetition_detection`` (finish reason
  ``repetition``), the engine stops a looping request itself and qr-eval's detector locates
  the onset on the returned token ids;
- otherwise requests are generated in chunks of ``chunk_tokens`` (``TokensPrompt``
  continuations, prefix caching on) and the detector runs between chunks.

Token ids, finish reasons and timings go to the side file (lm-eval's wrapper keeps only text).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from importlib.util import find_spec
from types import SimpleNamespace
from typing import Any

from .rescue import MissingExtra, ModelArgumentError, RescueParams

if find_spec("vllm") is None:
    raise MissingExtra('qr-vllm needs vLLM (CUDA): pip install "qr-eval[vllm]"', name="vllm")

from lm_eval.api.registry import register_model  # noqa: E402  (these need vLLM)
from lm_eval.models.vllm_causallms import VLLM
from vllm import LLM, TokensPrompt

from qr_metrics.loops import BatchLoopDetector, detect_exact_loop
from qr_metrics.segments import split_reasoning

from . import control
from .control import Batch, Engine, SideLog, Trace, check_same_vocabulary, stop_lookback, through_stop


@register_model("qr-vllm")
class QRVLLM(VLLM):
    """A ``VLLM`` whose generations may be planned by, rescued by and handed to a reference."""

    def __init__(self, pretrained: str, sidecar: str | None = None, reference_gpu_memory_utilization: float = 0.4,
                 chunk_tokens: int = 512, **kwargs: Any) -> None:
        self.rescue_params = RescueParams.pop_model_args(kwargs)
        params = self.rescue_params
        if not (isinstance(chunk_tokens, int) and chunk_tokens >= 1):
            raise ModelArgumentError(f"chunk_tokens={chunk_tokens!r} is invalid: must be an integer >= 1")
        if not 0 < reference_gpu_memory_utilization < 1:
            raise ModelArgumentError(
                f"reference_gpu_memory_utilization={reference_gpu_memory_utilization!r} is invalid: must be in (0, 1)"
            )
        if params.active and int(kwargs.get("data_parallel_size", 1)) > 1:
            raise ModelArgumentError(
                f"data_parallel_size={kwargs['data_parallel_size']!r} is invalid with rescue or plan_tokens: must be 1 "
                "(lm-eval's data parallelism rebuilds the engine on every call; run one evaluation per GPU set instead)"
            )
        if params.reference is not None:
            check_same_vocabulary(kwargs.get("tokenizer") or pretrained, params.reference)
            kwargs.setdefault("gpu_memory_utilization", round(0.9 - reference_gpu_memory_utilization, 4))
        if params.active:
            kwargs.setdefault("enable_prefix_caching", True)  # chunked continuations reuse their prefix
        super().__init__(pretrained=pretrained, **kwargs)
        self.chunk_tokens = chunk_tokens
        self.reference_engine = None
        if params.reference is not None:
            self.reference_engine = LLM(**{
                **self.model_args, "model": params.reference, "tokenizer": None, "quantization": None,
                "gpu_memory_utilization": reference_gpu_memory_utilization,
            })
        self.side_log = SideLog(sidecar)

    # -- lm-eval hooks -------------------------------------------------------------------------

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if self.rescue_params.active or self.side_log.recording:
            self.side_log.expect(requests, key_of=lambda prompt: tuple(self.tok_encode(prompt)))
        completions = super().generate_until(requests, disable_tqdm=disable_tqdm)
        self.side_log.write()
        return completions

    def _model_generate(self, requests, generate: bool = False, sampling_params=None):
        if not generate or not (self.rescue_params.active or self.side_log.recording):
            return super()._model_generate(requests, generate=generate, sampling_params=sampling_params)
        templates = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(requests)
        if not self.rescue_params.active:
            return self._record_plain(requests, templates)
        texts: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = defaultdict(list)  # one control batch per sampling setting
        for i, template in enumerate(templates):
            groups[repr(template)].append(i)
        for members in groups.values():
            prompts = [list(requests[i]) for i in members]
            found = [self.side_log.take(tuple(ids)) for ids in prompts]
            batch = Batch.start([text for _, text in found], prompts, [key for key, _ in found],
                                templates[members[0]].max_tokens, self.rescue_params)
            outputs = self._run(batch, templates[members[0]])
            for i, text in zip(members, outputs):
                texts[i] = text
        return [SimpleNamespace(outputs=[SimpleNamespace(text=text)]) for text in texts]

    def _record_plain(self, requests, templates):
        """Rescue off, no planning: lm-eval's own call, its outputs returned as they are."""
        started = time.perf_counter()
        outputs = super()._model_generate(requests, generate=True, sampling_params=templates)
        seconds = time.perf_counter() - started
        found = [self.side_log.take(tuple(ids)) for ids in requests]
        batch = Batch.start([text for _, text in found], [list(r) for r in requests], [key for key, _ in found],
                            max(t.max_tokens for t in templates), self.rescue_params)
        new = [[t for t in out.outputs[0].token_ids if t != self.eot_token_id] for out in outputs]
        batch.timing("generate", "lowbit", seconds, max((len(ids) for ids in new), default=0))
        for row, ids, out in zip(batch.rows, new, outputs):
            row.low_bit_ended(ids, str(out.outputs[0].finish_reason) == "stop", None, stopped_at_loop=False)
        close = self.tok_encode(self.rescue_params.measure.think_close, add_special_tokens=False)
        self.side_log.records.extend(batch.records(close))
        return outputs

    # -- phases ----------------------------------------------------------------------------------

    def _run(self, batch: Batch, template) -> list[str]:
        """Plan, generate watched, rescue; the completions' texts (what lm-eval reads)."""
        params = self.rescue_params
        engine = Engine(decode=self._decode, encode=lambda text: self.tok_encode(text, add_special_tokens=False),
                        generate=lambda model, prefixes, budget, phase: self._generate(
                            model, batch, prefixes, budget, template, phase))
        if params.plan_tokens:
            control.plan(batch, params, engine)
        live = [row for row in batch.rows if not row.done]
        if params.rescue == "off":
            new, ended = engine.generate("lowbit", [r.prompt + r.ids for r in live], batch.budget - len(live[0].ids),
                                         "generate") if live else ([], [])
            for row, ids, done in zip(live, new, ended):
                row.low_bit_ended(ids, done, None, stopped_at_loop=False)
        elif _has_repetition_detection():
            self._watch_by_engine(batch, live, template)
        else:
            self._watch_in_chunks(batch, live, template)
        if params.rescue != "off":
            control.rescue(batch, params, engine)
        close = self.tok_encode(params.measure.think_close, add_special_tokens=False)
        self.side_log.records.extend(batch.records(close))
        return [self._decode(row.ids) for row in batch.rows]

    def _watch_by_engine(self, batch: Batch, live: list[Trace], template) -> None:
        """The engine stops looping requests (finish reason ``repetition``); the detector finds
        the onset. A stop qr-eval would not rescue (too early, or after the reasoning closed)
        is resumed without the engine's detection."""
        from vllm.sampling_params import RepetitionDetectionParams

        m = self.rescue_params.measure
        detection = RepetitionDetectionParams(max_pattern_size=m.loop_max_period, min_pattern_size=m.loop_min_period,
                                              min_count=m.loop_min_copies)
        new, reasons = self._engine_call("lowbit", batch, [r.prompt + r.ids for r in live],
                                         [batch.budget - len(r.ids) for r in live], template, "generate", detection)
        resume = []
        for row, ids, reason in zip(live, new, reasons):
            loop = None
            if reason == "repetition":
                tail = detect_exact_loop(row.ids + ids, replace(m, loop_tail_slack=0))
                loop = self._rescuable(row, row.ids + ids, tail and (tail.onset, tail.period))
                if loop is None:
                    resume.append((row, ids))
                    continue
            row.low_bit_ended(ids, reason == "stop", loop, stopped_at_loop=loop is not None)
        if resume:
            new, reasons = self._engine_call("lowbit", batch, [r.prompt + r.ids + ids for r, ids in resume],
                                             [batch.budget - len(r.ids) - len(ids) for r, ids in resume], template,
                                             "generate")
            for (row, ids), more, reason in zip(resume, new, reasons):
                row.low_bit_ended(ids + more, reason == "stop", None, stopped_at_loop=False)

    def _watch_in_chunks(self, batch: Batch, live: list[Trace], template) -> None:
        """Generate ``chunk_tokens`` at a time (continuations of the token prompt) and run the
        detector between chunks, on every row's new ids. The engine looks for stop sequences
        in a chunk's own text, so one split between two chunks is looked for here."""
        detector = {id(row): BatchLoopDetector(1, self.rescue_params.measure) for row in live}
        stops = [s for s in template.stop if s]
        lookback = stop_lookback(stops, lambda s: self.tok_encode(s, add_special_tokens=False))
        generated: dict[int, list[int]] = {id(row): [] for row in live}
        for row in live:
            if row.ids:
                detector[id(row)].push([row.ids])
        active = list(live)
        while active:
            budgets = [min(self.chunk_tokens, batch.budget - len(r.ids) - len(generated[id(r)])) for r in active]
            new, reasons = self._engine_call("lowbit", batch, [r.prompt + r.ids + generated[id(r)] for r in active],
                                             budgets, template, "generate")
            still = []
            for row, ids, reason in zip(active, new, reasons):
                so_far = generated[id(row)]
                before = len(so_far)
                so_far += ids
                if reason != "stop" and stops and any(s in self._decode(so_far[max(0, before - lookback):]) for s in stops):
                    del so_far[through_stop(so_far, stops, self._decode) or len(so_far):]
                    ids, reason = so_far[before:], "stop"
                onset, period = detector[id(row)].push([ids]) if ids else ([-1], [-1])
                full = row.ids + so_far
                loop = self._rescuable(row, full, (int(onset[0]), int(period[0])) if onset[0] >= 0 else None)
                at_budget = len(full) >= batch.budget
                if reason == "stop" or loop is not None or at_budget:
                    row.low_bit_ended(so_far, reason == "stop", loop, stopped_at_loop=loop is not None and not at_budget)
                else:
                    still.append(row)
            active = still

    def _rescuable(self, row: Trace, ids: list[int], loop: tuple[int, int] | None) -> tuple[int, int] | None:
        """The loop, when a rescue may act on it: late enough, and inside the reasoning."""
        params = self.rescue_params
        if loop is None or len(ids) < params.min_reasoning_tokens:
            return None
        if not split_reasoning(self._decode(ids), params.measure, row.opened).unclosed:
            return None
        return loop

    # -- generation ------------------------------------------------------------------------------

    def _generate(self, model: str, batch: Batch, prefixes: list[list[int]], budget: int, template,
                  phase: str | None) -> tuple[list[list[int]], list[bool]]:
        new, reasons = self._engine_call(model, batch, prefixes, [budget] * len(prefixes), template, phase)
        return new, [reason == "stop" for reason in reasons]

    def _engine_call(self, model: str, batch: Batch, prefixes: list[list[int]], budgets: list[int], template,
                     phase: str | None, detection=None) -> tuple[list[list[int]], list[str]]:
        """One ``LLM.generate`` over token prompts; new ids (eos dropped) and finish reasons."""
        engine = self.model if model == "lowbit" else self.reference_engine
        sampling = []
        for budget in budgets:
            params = template.clone()
            params.max_tokens = budget
            if detection is not None:
                params.repetition_detection = detection
            sampling.append(params)
        started = time.perf_counter()
        outputs = engine.generate([TokensPrompt(prompt_token_ids=p) for p in prefixes], sampling_params=sampling,
                                  use_tqdm=False)
        seconds = time.perf_counter() - started
        new = [[t for t in out.outputs[0].token_ids if t != self.eot_token_id] for out in outputs]
        batch.timing(phase, model, seconds, max((len(ids) for ids in new), default=0))
        return new, [str(out.outputs[0].finish_reason) for out in outputs]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)



def _has_repetition_detection() -> bool:
    try:
        from vllm.sampling_params import RepetitionDetectionParams  # noqa: F401
    except ImportError:
        return False
    return True
