"""``qr-hf``: lm-eval's ``hf`` model with low-bit loading, loop rescue and FP16 planning.

Every ``HFLM`` argument keeps working; the extra model arguments are those of
:class:`~qr_adapters.model_args.RescueParams` plus ``sidecar=PATH`` (the side file, see
``qr_metrics.sidecar``), ``quant=rtn-w{bits}g{group}`` (simulated RTN weight quantization)
and ``load_in_4bit`` / ``load_in_8bit`` (bitsandbytes). GPTQ and AWQ checkpoints load as
``pretrained=`` like any checkpoint.

Generation is lm-eval's own (``HFLM._model_generate``) for each phase, so with rescue off
and no planning the completions are those of plain ``hf``. The loop detector rides along as
a logits processor: every ``check_every`` tokens it feeds the new ids of the whole batch to
one :class:`~qr_metrics.loops.BatchLoopDetector` and makes only the looping rows emit eos.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from transformers import LogitsProcessor, LogitsProcessorList

from qr_metrics.loops import BatchLoopDetector

from .control import (Batch, Engine, SideLog, check_same_vocabulary, may_rescue, plan_batch, rescue_batch, stop_ids,
                      stop_lookback, through_stop)
from .quant import quant_model_argument
from .model_args import RescueParams


@register_model("qr-hf")
class QRHFLM(HFLM):
    """An ``HFLM`` whose generations may be planned by, rescued by and handed to a reference."""

    def __init__(self, pretrained: Any, sidecar: str | None = None, quant: str | None = None,
                 load_in_4bit: bool = False, load_in_8bit: bool = False, **kwargs: Any) -> None:
        self.rescue_params = RescueParams.pop_model_args(kwargs)
        spec = quant_model_argument(quant, load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit)
        if self.rescue_params.uses_reference:
            check_same_vocabulary(kwargs.get("tokenizer") or pretrained, self.rescue_params.reference)
        self._bnb_config = None
        if load_in_4bit or load_in_8bit:
            from .quant import quantization_kwargs

            bnb = quantization_kwargs(load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit)
            self._bnb_config = bnb["quantization_config"]
        super().__init__(pretrained=pretrained, **kwargs)
        if spec is not None:
            from .quant import apply_rtn

            apply_rtn(self.model, spec)
        self.reference_model = None
        if self.rescue_params.uses_reference:
            self.reference_model = _load_reference(self.rescue_params.reference, kwargs, self.device)
        else:
            self.rescue_params.warn_if_reference_unused()
        self.side_log = SideLog(sidecar)
        self.stop_ids = stop_ids(self.eot_token_id, self.model.generation_config.eos_token_id)
        self._batch_prompts: list[str] = []

    # -- lm-eval hooks -------------------------------------------------------------------------

    def _create_model(self, *args, quantization_config=None, **kwargs) -> None:
        """lm-eval passes the checkpoint's own quantization config; a bitsandbytes load adds
        one (transformers 5 takes no ``load_in_4bit``). A GPTQ/AWQ/bnb checkpoint whose
        libraries are missing fails here in one line naming the extra."""
        from .quant import check_checkpoint_libraries

        check_checkpoint_libraries(self.config)
        super()._create_model(*args, quantization_config=quantization_config or self._bnb_config, **kwargs)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if self.rescue_params.active or self.side_log.recording:
            self.side_log.expect(requests, key_of=lambda request: request.args[0])
        completions = super().generate_until(requests, disable_tqdm=disable_tqdm)
        self.side_log.write("" if self.world_size == 1 else f".rank{self.rank}")
        return completions

    def tok_batch_encode(self, strings, *args, **kwargs):
        self._batch_prompts = list(strings)  # the prompts of the batch _model_generate gets next
        return super().tok_batch_encode(strings, *args, **kwargs)

    def _model_generate(self, context, max_length, stop, **kwargs):
        if not (self.rescue_params.active or self.side_log.recording):
            return super()._model_generate(context, max_length, stop, **kwargs)
        mask = kwargs.pop("attention_mask")
        prompt_ids = [[t for t, keep in zip(ids, m) if keep] for ids, m in zip(context.tolist(), mask.tolist())]
        keys = [self.side_log.take(prompt)[0] for prompt in self._batch_prompts]
        batch = Batch.start(self._batch_prompts, prompt_ids, keys, max_length - context.shape[1], self.rescue_params)
        engine = Engine(
            decode=self.tok_decode,
            encode=lambda text: self.tok_encode(text, add_special_tokens=False),
            generate=lambda model, prefixes, budget, phase: self._generate(model, batch, prefixes, budget, stop, kwargs, phase),
            clock=lambda: _now(self.device),
            max_length=self.max_length,
        )
        if self.rescue_params.plan_tokens:
            plan_batch(batch, self.rescue_params, engine)
        plain = self._continue(batch, context, mask, stop, kwargs)
        if self.rescue_params.rescue != "off":
            rescue_batch(batch, self.rescue_params, engine)
        self.side_log.records.extend(batch.records(engine.encode))
        if not self.rescue_params.active:
            return plain  # exactly what plain hf returns
        width = max(len(row.ids) for row in batch.rows)
        pad = self.tokenizer.pad_token_id
        tail = torch.tensor([row.ids + [pad] * (width - len(row.ids)) for row in batch.rows], dtype=context.dtype)
        return torch.cat([context, tail.to(context.device)], dim=1)  # what lm-eval decodes

    def _continue(self, batch: Batch, context, mask, stop: list[str], kwargs: dict):
        """The low-bit model goes on from the prompt (and the plan), the detector watching."""
        live = [i for i, row in enumerate(batch.rows) if not row.done]
        if not live:
            return None
        plan = torch.tensor([batch.rows[i].ids for i in live], dtype=context.dtype, device=context.device)
        plan = plan.reshape(len(live), len(batch.rows[live[0]].ids))  # all live rows planned alike
        inputs = torch.cat([context[live], plan], dim=1)
        watcher = None
        if self.rescue_params.rescue != "off":
            watcher = _LoopWatcher(self, inputs.shape[1], plan.cpu().numpy(), stop)
            kwargs = {**kwargs, "logits_processor": LogitsProcessorList([watcher])}
        width = inputs.shape[1]
        started = _now(self.device)
        output = self._generate_tensor(self.model, inputs, torch.cat([mask[live], torch.ones_like(plan)], dim=1),
                                       context.shape[1] + batch.budget, stop, kwargs)
        batch.timing("generate", "lowbit", _now(self.device) - started, output.shape[1] - width)
        new, ended = self._split_new(output[:, width:], stop)
        if watcher is not None:
            watcher.flush(output[:, width:])
        for j, i in enumerate(live):
            fired = watcher.fired.get(j) if watcher is not None else None
            tail = watcher.tail_loops.get(j) if watcher is not None else None
            batch.rows[i].low_bit_ended(new[j], ended[j], fired or tail, stopped_at_loop=fired is not None)
        return output if len(live) == len(batch.rows) and not self.rescue_params.plan_tokens else None

    # -- generation ------------------------------------------------------------------------------

    def _generate(self, model: str, batch: Batch, prefixes: list[list[int]], budget: int,
                  stop: list[str], kwargs: dict, phase: str | None):
        """New ids (cut at eos / a stop sequence) per left-padded prefix, and whether each ended."""
        width = max(len(p) for p in prefixes)
        pad = self.tokenizer.pad_token_id
        inputs = torch.tensor([[pad] * (width - len(p)) + p for p in prefixes], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prefixes], device=self.device)
        weights = self.model if model == "lowbit" else self.reference_model
        started = _now(self.device)
        output = self._generate_tensor(weights, inputs, mask, width + budget, stop, kwargs)
        seconds = _now(self.device) - started
        batch.timing(phase, model, seconds, output.shape[1] - width)
        return self._split_new(output[:, width:], stop)

    def _generate_tensor(self, weights, inputs, mask, max_length: int, stop: list[str], kwargs: dict):
        with self._weights(weights):
            return super()._model_generate(inputs, max_length, stop, attention_mask=mask, **kwargs)

    @contextmanager
    def _weights(self, weights):
        """Run lm-eval's generation with ``weights`` (the reference shares the tokenizer)."""
        saved, self._model = self._model, weights
        try:
            yield
        finally:
            self._model = saved

    def _split_new(self, new: torch.Tensor, stop: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Each row's generated ids up to eos (excluded; any of ``stop_ids``) or through its
        first stop sequence, whichever comes first: a row that wrote a stop sequence runs on
        until the whole batch has stopped (lm-eval's criterion), and what it writes after it
        is not its trace."""
        out, ended = [], []
        for ids in new.tolist():
            at = next((i for i, t in enumerate(ids) if t in self.stop_ids), None)
            at_eos = at is not None
            ids = ids[:at] if at_eos else [t for t in ids if t != self.tokenizer.pad_token_id]
            through = through_stop(ids, stop, lambda part: self.tok_decode(part, skip_special_tokens=False))
            out.append(ids if through is None else ids[:through])
            ended.append(at_eos or through is not None)
        return out, ended


def _load_reference(name: Any, kwargs: dict, device):
    """The reference model, loaded as lm-eval loads ``pretrained`` (same dtype, device); a
    model object (Python API) is used as it is, like ``pretrained``."""
    from transformers import AutoModelForCausalLM

    if not isinstance(name, str):
        return name.to(device).eval()
    dtype = kwargs.get("dtype", "auto")
    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, trust_remote_code=bool(kwargs.get("trust_remote_code")))
    return model.to(device).eval()


def _now(device) -> float:
    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


class _LoopWatcher(LogitsProcessor):
    """Runs the loop detector inside ``generate`` and makes only the looping rows emit eos.

    A row has ended at eos or at a stop sequence; it is never rescued after that (it may
    still be generating, until the whole batch stops)."""

    def __init__(self, lm: QRHFLM, start: int, plan: np.ndarray, stop: list[str]) -> None:
        params = lm.rescue_params
        self.params = params
        self.start = start  # input width: generated ids begin here
        self.checked = start
        self.eos = lm.eot_token_id
        self.stop_ids = list(lm.stop_ids)
        close = lm.tok_encode(params.measure.think_close, add_special_tokens=False)
        self.close = close[0] if len(close) == 1 else None
        self.lm = lm
        eos_text = lm.tok_decode([self.eos], skip_special_tokens=False)
        self.stop = [s for s in stop if s and s != eos_text]  # eos itself is seen by id
        self.stop_lookback = stop_lookback(self.stop, lambda s: lm.tok_encode(s, add_special_tokens=False))
        batch = plan.shape[0]
        self.detector = BatchLoopDetector(batch, params.measure)
        if plan.shape[1]:
            self.detector.push(plan)
        self.closed = np.isin(plan, [self.close]).any(axis=1) if plan.shape[1] else np.zeros(batch, bool)
        self.ended = np.zeros(batch, bool)
        self.fired: dict[int, tuple[int, int]] = {}
        self.tail_loops: dict[int, tuple[int, int]] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = input_ids.shape[1]
        if n > self.checked and (n - self.start) % self.params.check_every == 0:
            for row in self._check(input_ids[:, self.start : n]):
                self.fired[row] = self._found[row]
            self.checked = n
        stopping = [row for row in self.fired if not self.ended[row]]
        if stopping:
            scores[stopping] = -float("inf")
            scores[stopping, self.eos] = 0.0
            self.ended[stopping] = True
        return scores

    def flush(self, new: torch.Tensor) -> None:
        """Check the ids generated after the last check (rows that ran to the budget)."""
        if self.start + new.shape[1] > self.checked:
            for row in self._check(new):
                self.tail_loops[row] = self._found[row]

    def _check(self, generated: torch.Tensor) -> list[int]:
        """Push the ids generated since the last check (``generated``: all of them so far)."""
        ids = generated[:, self.checked - self.start :].cpu().numpy()
        onset, period = self.detector.push(ids)
        if self.close is not None:
            self.closed |= (ids == self.close).any(axis=1)
        self.ended |= np.isin(ids, self.stop_ids).any(axis=1)
        if self.stop and not self.ended.all():
            self.ended |= self._stopped(generated)
        eligible = may_rescue(onset >= 0, self.detector.length, self.params.min_reasoning_tokens, self.closed, self.ended)
        self._found = {int(r): (int(onset[r]), int(period[r])) for r in np.flatnonzero(eligible)}
        return [r for r in self._found if r not in self.fired]

    def _stopped(self, generated: torch.Tensor) -> np.ndarray:
        """Rows not ended whose ids since the last check (and a few before) hold a stop sequence."""
        window = generated[:, max(0, self.checked - self.start - self.stop_lookback) :].tolist()
        stopped = np.zeros(len(window), bool)
        for row in np.flatnonzero(~self.ended):
            text = self.lm.tok_decode(window[row], skip_special_tokens=False)
            stopped[row] = any(s in text for s in self.stop)
        return stopped
