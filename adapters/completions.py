"""``qr-completions``: lm-eval's ``local-completions`` with loop rescue, FP16 planning and the side file.

For models too large to load inside lm-eval: the low-bit model and the full-precision
reference are served (``vllm serve`` with tensor or data parallelism, replicas behind a
router, SGLang, llama.cpp's server) and this model talks to them over the OpenAI completions
API. Every ``local-completions`` argument keeps working (``base_url``, ``model``,
``tokenizer``, ``tokenized_requests``, ``num_concurrent``, ``max_retries``, ``timeout``, ...);
the extra ones are ``qr-hf``'s (``rescue``, ``plan_tokens``, the detector's, ``sidecar``) with
``reference=`` the reference's model name on ``reference_base_url=`` (default: ``base_url``),
plus ``watch=`` and ``chunk_tokens=``.

What runs where: the server generates and, where it is vLLM (>= 0.17), returns the exact
token ids (``return_token_ids``) and stops a looping request itself (``repetition_detection``
in the request); any other server generates ``chunk_tokens`` at a time, qr-eval's detector
runs between chunks, and ids are counted with the model's tokenizer. Either way qr-eval
locates the onset and decides commit or fallback (``qr_adapters.control``, shared with
``qr-hf`` and ``qr-vllm``). Requests run ``num_concurrent`` at a time, each one's plan,
generation and rescue in order; a failed request is retried as lm-eval retries, and a side
file holds whole records only.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests as http
from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalCompletionsAPI
from lm_eval.models.utils import handle_stop_sequences, postprocess_generated_text
from tenacity import retry, stop_after_attempt, wait_exponential
from tqdm import tqdm

from .control import Batch, Engine, SideLog, Trace, stop_lookback
from .errors import ModelArgumentError, ServerError
from .model_args import RescueParams
from .watches import Watch, run_watched

WATCHES = ("auto", "engine", "chunks")
"""How the low-bit server is watched (``watch=``): ``engine`` sends vLLM's
``repetition_detection`` and ``return_token_ids``; ``chunks`` works with any server; ``auto``
asks the server (``GET /version``) and takes ``engine`` from vLLM 0.17 on."""

ENGINE_WATCH_SINCE = (0, 17)
"""The first vLLM whose completions API takes ``repetition_detection`` and ``return_token_ids``."""

log = logging.getLogger("qr_adapters")


@register_model("qr-completions")
class QRCompletions(LocalCompletionsAPI):
    """A ``local-completions`` whose generations may be planned by, rescued by and handed to a
    served reference."""

    def __init__(self, sidecar: str | None = None, reference_base_url: str | None = None, watch: str = "auto",
                 chunk_tokens: int = 256, **kwargs: Any) -> None:
        self.rescue_params = RescueParams.pop_model_args(kwargs)
        params = self.rescue_params
        if watch not in WATCHES:
            raise ModelArgumentError(f"watch={watch!r} is invalid: must be one of {', '.join(WATCHES)}")
        if not (isinstance(chunk_tokens, int) and chunk_tokens >= 1):
            raise ModelArgumentError(f"chunk_tokens={chunk_tokens!r} is invalid: must be an integer >= 1")
        if params.active or sidecar:  # ids are counted here: the model's own tokenizer, not the server's
            kwargs.setdefault("tokenizer_backend", "huggingface")
        super().__init__(**kwargs)
        if (params.active or sidecar) and self.tokenizer_backend != "huggingface":
            raise ModelArgumentError(f"tokenizer_backend={self.tokenizer_backend!r} is invalid with rescue, "
                                     "plan_tokens or sidecar: must be huggingface (ids are counted with the "
                                     "model's tokenizer)")
        self.reference_base_url = reference_base_url or self.base_url
        if not params.uses_reference:
            params.warn_if_reference_unused()
        self.chunk_tokens = chunk_tokens
        self.side_log = SideLog(sidecar)
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer is not shared between threads
        self._sessions = threading.local()  # one kept-alive connection per worker thread
        self.watch, self.token_ids = watch, False
        if params.active or sidecar:
            version = _vllm_version(self.base_url, self.timeout)
            self.token_ids = version >= ENGINE_WATCH_SINCE  # the server returns its ids: counted exactly
            if watch == "engine" and not self.token_ids:
                raise ModelArgumentError(f"watch='engine' is invalid: the server at base_url={self.base_url!r} is not "
                                         f"vLLM >= {'.'.join(map(str, ENGINE_WATCH_SINCE))}; use watch=chunks")
            if watch == "auto":
                self.watch = "engine" if self.token_ids else "chunks"
        if params.uses_reference:
            self._check_reference()

    # -- lm-eval hooks ---------------------------------------------------------------------------

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True):
        """The model's chat template rendered to text here, also where requests go as text
        (``tokenized_requests=False``: ``local-completions`` would send the messages' JSON to a
        completions endpoint)."""
        if self.tokenizer_backend != "huggingface":
            return super().apply_chat_template(chat_history, add_generation_prompt)
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if not (self.rescue_params.active or self.side_log.recording):
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        self.side_log.expect(requests, key_of=id)
        jobs = [(request, *self.side_log.take(id(request))) for request in requests]
        futures = []
        try:
            with ThreadPoolExecutor(max_workers=max(1, self._concurrent)) as pool, \
                    tqdm(total=len(jobs), desc="Requesting API (qr-completions)", disable=disable_tqdm) as bar:
                futures = [pool.submit(self._complete_request, *job) for job in jobs]
                for future in futures:
                    if future.exception() is not None:  # the run stops: requests not started never start
                        for pending in futures:
                            pending.cancel()
                        future.result()
                    bar.update(1)
        finally:  # whole records only: those of every request that finished, in request order
            finished = [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]
            self.side_log.records.extend(record for _, records in finished for record in records)
            self.side_log.write()
        return [future.result()[0] for future in futures]

    # -- one request -----------------------------------------------------------------------------

    def _complete_request(self, request, key: tuple, context: str) -> tuple[str, list[dict]]:
        """Plan, generate watched, rescue one request; its text and its side-file record."""
        gen_kwargs = dict(request.args[1])
        budget = int(gen_kwargs.pop("max_gen_toks", self._max_gen_toks))
        until = handle_stop_sequences(gen_kwargs.pop("until", None), self.eos_string)
        prompt = self._prompt_ids(context, budget)
        batch = Batch.start([context], [prompt], [key], budget, self.rescue_params)
        server = _Server(self, batch, context, prompt, until, gen_kwargs)
        engine = Engine(decode=self._decode, encode=self._encode, generate=server.generate, max_length=self.max_length)
        watch = Watch(self.rescue_params, self._decode, server.lowbit_call)
        run_watched(batch, self.rescue_params, engine, lambda live: self._watch(watch, live, budget, until))
        text = postprocess_generated_text(self._decode(batch.rows[0].ids), until, None)
        self.cache_hook.add_partial("generate_until", (context, request.args[1]), text)
        return text, batch.records(self._encode)

    def _watch(self, watch: Watch, live: list[Trace], budget: int, until: list[str]) -> None:
        if self.watch == "engine":
            m = self.rescue_params.measure
            watch.by_engine(live, budget, {"max_pattern_size": m.loop_max_period, "min_pattern_size": m.loop_min_period,
                                           "min_count": m.loop_min_copies})
        else:
            stops = [s for s in until if s]
            watch.in_chunks(live, budget, self.chunk_tokens, stops, stop_lookback(stops, self._encode))

    def _prompt_ids(self, context: str, budget: int) -> list[int]:
        """The prompt's ids, left-truncated to leave room for the budget as lm-eval does."""
        with self._tokenizer_lock:
            ids = self.tok_encode(context, add_special_tokens=self.add_bos_token)
        return ids[-(self.max_length - budget):] if self.max_length > budget else ids

    def _check_reference(self) -> None:
        """A reference that does not answer fails the run now, in one line, not mid-run."""
        try:
            self._post(self.reference_base_url, {"model": self.rescue_params.reference, "prompt": " ", "max_tokens": 1,
                                                 "temperature": 0})
        except ServerError as error:
            raise ModelArgumentError(f"reference={self.rescue_params.reference!r} at reference_base_url="
                                     f"{self.reference_base_url!r} is invalid: {error}") from None

    def _post(self, url: str, payload: dict) -> dict:
        """One completions request, retried as lm-eval retries (``max_retries``, backing off)."""
        if not hasattr(self._sessions, "session"):
            self._sessions.session = http.Session()

        def once() -> dict:
            response = self._sessions.session.post(url, json=payload, headers=self.header,
                                                   verify=self.verify_certificate, timeout=self.timeout)
            if not response.ok:
                log.warning("%s answered %s: %s; retrying", url, response.status_code, response.text[:200])
            response.raise_for_status()
            return response.json()

        try:
            backing_off = wait_exponential(multiplier=0.5, min=1, max=10)
            return retry(stop=stop_after_attempt(self.max_retries), wait=backing_off, reraise=True)(once)()
        except (http.RequestException, ValueError) as error:
            raise ServerError(f"{url} did not answer after {self.max_retries} tries: {_one_line(error)}") from None

    def _encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return self.tokenizer.encode(text, add_special_tokens=False)

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=False)


class _Server:
    """One request's generation calls: the low-bit model at ``base_url``, the reference at
    ``reference_base_url``; each prefix is the prompt's ids then completion ids."""

    def __init__(self, lm: QRCompletions, batch: Batch, context: str, prompt: list[int], until: list[str],
                 gen_kwargs: dict) -> None:
        self.lm, self.batch, self.context, self.prompt = lm, batch, context, prompt
        self.until, self.gen_kwargs = until, gen_kwargs

    def generate(self, model: str, prefixes: list[list[int]], budget: int,
                 phase: str | None) -> tuple[list[list[int]], list[bool]]:
        new, reasons = self.call(model, prefixes, [budget] * len(prefixes), None, phase)
        return new, [reason == "stop" for reason in reasons]

    def lowbit_call(self, prefixes: list[list[int]], budgets: list[int],
                    detections: list | None) -> tuple[list[list[int]], list[str]]:
        return self.call("lowbit", prefixes, budgets, detections, "generate")

    def call(self, model: str, prefixes: list[list[int]], budgets: list[int], detections: list | None,
             phase: str | None) -> tuple[list[list[int]], list[str]]:
        lm = self.lm
        new, reasons = [], []
        started = time.perf_counter()
        for i, (prefix, budget) in enumerate(zip(prefixes, budgets)):
            extra = {"return_token_ids": True} if lm.token_ids else {}
            if detections is not None and detections[i] is not None:
                extra["repetition_detection"] = detections[i]
            payload = lm._create_payload(self._prompt(prefix), generate=True, seed=lm._seed, eos=None, gen_kwargs={
                **self.gen_kwargs, **extra, "max_gen_toks": budget, "until": list(self.until)})
            if model == "reference":
                payload["model"] = lm.rescue_params.reference
            choice = lm._post(lm.base_url if model == "lowbit" else lm.reference_base_url, payload)["choices"][0]
            ids, reason = self._new_ids(choice)
            new.append(ids)
            reasons.append(reason)
        self.batch.timing(phase, model, time.perf_counter() - started, max((len(ids) for ids in new), default=0))
        return new, reasons

    def _prompt(self, prefix: list[int]) -> list[int] | str:
        """Token ids where requests are tokenized, else the prompt's text and the completion's."""
        if self.lm.tokenized_requests:
            return prefix
        return self.context + self.lm._decode(prefix[len(self.prompt):])

    def _new_ids(self, choice: dict) -> tuple[list[int], str]:
        """The completion's ids (the server's own where it returns them, without the stop id
        it keeps; else the text's, counted with the model's tokenizer) and finish reason."""
        reason = choice.get("finish_reason") or "stop"
        reason = reason if reason in ("length", "repetition") else "stop"
        if choice.get("token_ids") is None:
            return self.lm._encode(choice.get("text") or ""), reason
        ids = list(choice["token_ids"])
        stop_reason = choice.get("stop_reason")
        eos = self.lm.tokenizer.eos_token_id
        if reason == "stop" and ids and (ids[-1] == stop_reason or (stop_reason is None and ids[-1] == eos)):
            ids.pop()
        return ids, reason


def _vllm_version(base_url: str, timeout: float) -> tuple[int, ...]:
    """The serving vLLM's version (``GET /version``), or () from any other server."""
    root = base_url.split("/v1/")[0].rstrip("/")
    try:
        response = http.get(f"{root}/version", timeout=min(timeout, 30))
        version = response.json()["version"] if response.ok else ""
    except (http.RequestException, ValueError, KeyError, TypeError):
        return ()
    parts = []
    for part in str(version).split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
