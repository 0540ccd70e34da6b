"""Where ``qr-eval demo`` runs the toy model (``--backend``): the model and model arguments
lm-eval gets for each :class:`~qr_leaderboard.demo.DemoRun`.

- ``hf``: ``qr-hf`` in this process (``quant=`` rounds the weights in memory);
- ``vllm``: ``qr-vllm``, vLLM's engine in this process, on the RTN checkpoint ``quant=``
  writes to the cache; one model per precision serves its rescue-off and rescue-on runs;
- ``server``: ``qr-completions`` against local ``vllm serve`` processes, the full-precision
  one for the whole demo (the fp32 runs' model and every rescue's reference) and one per
  low-bit precision, started when its runs begin and stopped after them.

The tables are the same shape on every backend; the figures are the same model's, generated
by different engines (float rounding may change a greedy token).
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

BACKENDS = ("hf", "vllm", "server")
MAX_LENGTH = 1024
"""Context of the vLLM engines and servers: a toy prompt (~40 ids) and qr_toy's 512-id budget fit."""
VLLM_ARGS = {"dtype": "float32", "max_model_len": MAX_LENGTH, "enforce_eager": True}
SERVE_ARGS = ("--dtype", "float32", "--max-model-len", str(MAX_LENGTH), "--enforce-eager")


class HFBackend:
    """``qr-hf`` in this process."""

    def __init__(self, model_dir: Path, rescue: dict) -> None:
        self.model_dir, self.rescue = model_dir, rescue

    def model(self, run, sidecar: Path) -> tuple[Any, dict]:
        import qr_adapters.hf  # noqa: F401  (registers qr-hf)

        args = {"pretrained": str(self.model_dir), "dtype": "float32", "device": "cpu", "sidecar": str(sidecar)}
        if run.quant:
            args["quant"] = run.quant
        if run.rescue:
            args.update(self.rescue, reference=str(self.model_dir))
        return "qr-hf", args

    def close(self) -> None:
        pass


class VLLMBackend:
    """``qr-vllm``: one model (low-bit and reference engines) per precision, re-armed for its
    rescue-off run (no rescue, no reference call) and its rescue-on run."""

    def __init__(self, model_dir: Path, rescue: dict) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # the demo's own lines stand for its logs
        self.model_dir, self.rescue = model_dir, rescue
        self.precision, self.lm = None, None

    def model(self, run, sidecar: Path) -> tuple[Any, dict]:
        from qr_adapters.control import SideLog
        from qr_adapters.model_args import RescueParams

        if run.precision != self.precision:
            self.close()
            from qr_adapters.vllm import QRVLLM

            args = {**VLLM_ARGS, **self.rescue, "reference": str(self.model_dir), "gpu_memory_utilization": 0.45}
            if run.quant:
                args["quant"] = run.quant
            self.lm, self.precision = QRVLLM(pretrained=str(self.model_dir), **args), run.precision
        rescue = RescueParams.from_model_args({**self.rescue, "reference": str(self.model_dir)})
        self.lm.rescue_params = rescue if run.rescue else replace(rescue, rescue="off")
        self.lm.side_log = SideLog(str(sidecar))
        return self.lm, {}

    def close(self) -> None:
        if self.lm is not None:
            for engine in (self.lm.model, self.lm.reference_engine):
                engine.llm_engine.engine_core.shutdown()
            self.lm, self.precision = None, None


class ServerBackend:
    """``qr-completions`` against local ``vllm serve`` processes (``qr_adapters.served``)."""

    def __init__(self, model_dir: Path, rescue: dict, logs: Path) -> None:
        from qr_adapters.served import vllm_server

        self.model_dir, self.rescue, self.logs = model_dir, rescue, logs
        logs.mkdir(parents=True, exist_ok=True)
        self.stack, self.lowbit = ExitStack(), None
        self.full = self.stack.enter_context(vllm_server(model_dir, *SERVE_ARGS, log=logs / "fp32.log"))
        self.precision, self.served = None, None

    def model(self, run, sidecar: Path) -> tuple[Any, dict]:
        import qr_adapters.completions  # noqa: F401  (registers qr-completions)
        from qr_adapters.quant import cached_quantized_checkpoint, parse_quant
        from qr_adapters.served import vllm_server

        if run.precision != self.precision:
            if self.lowbit is not None:
                self.lowbit.close()
                self.lowbit = None
            self.served, self.precision = (self.full, str(self.model_dir)), run.precision
            if run.quant:
                checkpoint = str(cached_quantized_checkpoint(str(self.model_dir), parse_quant(run.quant)))
                self.lowbit = ExitStack()
                server = self.lowbit.enter_context(vllm_server(checkpoint, *SERVE_ARGS,
                                                               log=self.logs / f"{run.precision}.log"))
                self.served = (server, checkpoint)
        server, name = self.served
        args = {"base_url": server.url, "model": name, "tokenizer": str(self.model_dir), "max_length": MAX_LENGTH,
                "num_concurrent": 8, "sidecar": str(sidecar)}
        if run.rescue:
            args.update(self.rescue, reference=str(self.model_dir), reference_base_url=self.full.url)
        return "qr-completions", args

    def close(self) -> None:
        if self.lowbit is not None:
            self.lowbit.close()
        self.stack.close()


def open_backend(name: str, model_dir: Path, rescue: dict, out: Path):
    """The backend called ``name``; its ``close()`` stops what it started."""
    if name != "hf" and importlib.util.find_spec("vllm") is None:
        from qr_metrics.extras import MissingExtra

        raise MissingExtra(f"demo backend {name!r}", "vllm", "vllm", needs="vLLM")
    if name == "hf":
        return HFBackend(model_dir, rescue)
    if name == "vllm":
        return VLLMBackend(model_dir, rescue)
    return ServerBackend(model_dir, rescue, out / "server-logs")
