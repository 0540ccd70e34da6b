"""Low-bit loading for ``qr-hf``: simulated round-to-nearest weights, bitsandbytes loads,
and the libraries that pre-quantized (GPTQ, AWQ, bitsandbytes) checkpoints need.

RTN here is *simulated* quantization: every covered weight is replaced by the value its
b-bit code dequantizes to, and stays in the model's dtype. It needs no kernel and no
calibration data, so any checkpoint can be measured at any bit width, and it isolates what
rounding alone does to reasoning: the baseline that GPTQ and AWQ are compared against.

The same rounding can be written out as a checkpoint (:func:`quantize_checkpoint`, the
``qr-eval quantize`` verb), so that any engine serves it: ``qr-vllm``'s ``quant=`` writes one
once to a cache (:func:`cached_quantized_checkpoint`) and serves that.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from qr_metrics.extras import MissingExtra
from qr_metrics.params import is_int
from qr_metrics.runs import InputError

from .errors import ModelArgumentError

logger = logging.getLogger(__name__)

BITS = (2, 3, 4, 8)
"""Bit widths :class:`RTNSpec` accepts."""

_QUANT = re.compile(r"rtn-w([1-9][0-9]*)g([1-9][0-9]*)")

SIMULATED_KEY = "qr_eval_simulated_quantization"
"""The ``config.json`` key that notes what a written checkpoint simulates (not
``quantization_config``: its weights are ordinary full-precision tensors that every loader reads)."""

CACHE_ENV = "QR_EVAL_CACHE"
"""Environment variable naming qr-eval's cache directory (default ``$XDG_CACHE_HOME/qr-eval``,
else ``~/.cache/qr-eval``); simulated checkpoints go under its ``quantized/``."""

# quant_method of a pre-quantized checkpoint -> (modules transformers needs to load it, extra)
_CHECKPOINT_LIBRARIES = {
    "gptq": (("optimum", "gptqmodel"), "gptq"),
    "awq": (("gptqmodel",), "gptq"),
    "bitsandbytes": (("bitsandbytes",), "bnb"),
}


@dataclass(frozen=True)
class RTNSpec:
    """Asymmetric round-to-nearest weight quantization: one scale and zero point per group
    of ``group_size`` consecutive input weights of each output row.

    Embeddings and the output head stay full precision by default, as in the GPTQ/AWQ
    checkpoints RTN is compared with; ``skip_embeddings=False`` rounds ``nn.Embedding``
    rows too, ``skip_lm_head=False`` the output head.
    """

    bits: int
    group_size: int
    skip_embeddings: bool = True
    skip_lm_head: bool = True

    def __post_init__(self) -> None:
        if not is_int(self.bits) or self.bits not in BITS:
            raise ValueError(f"bits must be one of {', '.join(map(str, BITS))}, got {self.bits!r}.")
        if not is_int(self.group_size) or self.group_size < 1:
            raise ValueError(f"group_size must be a positive integer, got {self.group_size!r}.")

    @property
    def name(self) -> str:
        """The ``quant=`` spelling, e.g. ``rtn-w4g32``."""
        return f"rtn-w{self.bits}g{self.group_size}"


def parse_quant(spec: str) -> RTNSpec:
    """Read the ``quant=`` model argument, ``rtn-w{bits}g{group}`` (``rtn-w4g32``)."""
    match = _QUANT.fullmatch(spec) if isinstance(spec, str) else None
    if match:
        try:
            return RTNSpec(bits=int(match[1]), group_size=int(match[2]))
        except ValueError:
            pass
    raise ValueError(
        f"quant={spec!r} is invalid: expected rtn-w{{{','.join(map(str, BITS))}}}g{{G}} "
        "with G a positive group size"
    )


def quant_model_argument(quant: str | None, **excluded: Any) -> RTNSpec | None:
    """The ``quant=`` model argument read (None when not given), or ``ModelArgumentError`` in
    one line: a bad spec, or a given one beside any truthy ``excluded`` argument
    (``quantization='awq'``: RTN rounds a full-precision checkpoint)."""
    if quant is None or quant == "":
        return None
    try:
        spec = parse_quant(quant)
    except ValueError as error:
        raise ModelArgumentError(str(error)) from None
    clashes = [f"{name}={value!r}" for name, value in excluded.items() if value]
    if clashes:
        raise ModelArgumentError(f"quant={quant!r} is invalid: must not be combined with {', '.join(clashes)}")
    return spec


def apply_rtn(model: Any, spec: RTNSpec) -> int:
    """Round the weights ``spec`` covers in a transformers model, in place; return how many
    weight matrices were rounded (a weight tied to a skipped module is left alone).

    Every ``torch.nn.Linear`` except the output head (``model.get_output_embeddings()``)
    when ``spec.skip_lm_head``. All layers are checked before any is changed, so a layer that
    cannot be grouped raises ``ValueError`` with the model untouched.
    """
    import torch

    kinds = (torch.nn.Linear,) if spec.skip_embeddings else (torch.nn.Linear, torch.nn.Embedding)
    kept = []
    if spec.skip_lm_head:
        kept.append(model.get_output_embeddings())
    if spec.skip_embeddings:
        kept.append(model.get_input_embeddings())
    skipped = {id(module.weight) for module in kept if module is not None}
    layers = {}  # id(weight) -> (name, weight): a tied weight is rounded once
    for name, module in model.named_modules():
        if isinstance(module, kinds) and id(module.weight) not in skipped:
            layers.setdefault(id(module.weight), (name, module.weight))
    for name, weight in layers.values():
        if not weight.dtype.is_floating_point:
            raise ValueError(f"{spec.name} cannot quantize {name!r}: its weight is {weight.dtype} (already quantized?)")
        if weight.shape[-1] % spec.group_size:
            raise ValueError(
                f"{spec.name} cannot quantize {name!r}: in_features={weight.shape[-1]} "
                f"is not divisible by group_size={spec.group_size}"
            )
    with torch.no_grad():
        for _, weight in layers.values():
            weight.copy_(rtn_weight(weight, spec.bits, spec.group_size))
    return len(layers)


def rtn_weight(weight: Any, bits: int, group_size: int) -> Any:
    """``weight`` rounded to ``bits`` per group of ``group_size`` along its last dimension.

    Asymmetric min/max: ``scale = (max - min) / (2**bits - 1)``, ``zero = round(-min / scale)``
    clamped to the code range, ``q = clamp(round(w / scale) + zero)``, ``w' = (q - zero) * scale``,
    in float32 and cast back to the weight's dtype. A constant group (a zero row, say) has no
    range to divide and is exact on any grid, so it is kept as it is.
    """
    import torch

    top = 2**bits - 1
    groups = weight.float().reshape(-1, group_size)
    low = groups.amin(dim=1, keepdim=True)
    scale = (groups.amax(dim=1, keepdim=True) - low) / top
    zero = (-low / scale).round().clamp(0, top)
    codes = ((groups / scale).round() + zero).clamp(0, top)
    rounded = torch.where(scale > 0, (codes - zero) * scale, groups)
    return rounded.reshape(weight.shape).to(weight.dtype)


def write_quantized_checkpoint(model: Any, out: str | Path, spec: RTNSpec, *, tokenizer: Any = None,
                               source: str | None = None) -> Path:
    """Round ``model`` in place with :func:`apply_rtn` and save it, with ``tokenizer`` (and so
    its chat template) and the model's generation config, as a checkpoint at ``out``.

    The weights are safetensors in the model's dtype, and ``config.json`` notes what was
    simulated under :data:`SIMULATED_KEY` (the spec, its fields, ``source``). The files are
    written into a temporary directory beside ``out``, renamed to ``out`` at the end, so an
    interrupted write leaves no checkpoint at ``out``. ``out`` must not exist or be an empty
    directory (``FileExistsError`` otherwise, also when another writer got there first); a
    layer that cannot be grouped raises ``ValueError`` before anything is written.
    """
    out = Path(out)
    _check_free(out)
    rounded = apply_rtn(model, spec)
    setattr(model.config, SIMULATED_KEY, {
        "method": "rtn", "spec": spec.name, "bits": spec.bits, "group_size": spec.group_size,
        "skip_embeddings": spec.skip_embeddings, "skip_lm_head": spec.skip_lm_head,
        "weights_rounded": rounded, "source": source,
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; checkpoints are for sharing
        try:
            os.rename(tmp, out)  # replaces an empty directory, never a full one
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise FileExistsError(errno.EEXIST, "exists and is not empty", str(out)) from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_free(out: Path) -> None:
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(errno.EEXIST, "exists and is not empty", str(out))
    if out.exists() and not out.is_dir():
        raise FileExistsError(errno.EEXIST, "exists and is not a directory", str(out))


def quantize_checkpoint(source: str, out: str | Path, spec: RTNSpec, *, revision: str | None = None,
                        trust_remote_code: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """Load ``source`` (a local checkpoint directory or a Hub id) in its own dtype with its
    tokenizer, and :func:`write_quantized_checkpoint` it to ``out``; return ``out``.

    ``out`` is checked before the model loads. A model that cannot be loaded is an
    ``InputError`` naming it, a layer ``spec`` cannot group a ``ValueError``; ``progress``
    gets one line per step.
    """
    say = progress or (lambda line: None)
    out = Path(out)
    _check_free(out)
    local = Path(source).expanduser()
    if local.exists() and not local.is_dir():
        raise InputError(source, "not a checkpoint directory")
    if not local.exists() and (local.is_absolute() or source.startswith((".", "~"))):
        raise InputError(source, "no such directory")
    say(f"loading {source}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        options = {"revision": revision, "trust_remote_code": trust_remote_code}
        model = AutoModelForCausalLM.from_pretrained(source, dtype="auto", **options)
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
    except (OSError, ValueError) as error:
        raise InputError(source, f"cannot load a causal LM and its tokenizer: {_first_line(error)}") from None
    say(f"rounding the weights ({spec.name}, {str(model.dtype).removeprefix('torch.')}); writing {out}")
    return write_quantized_checkpoint(model, out, spec, tokenizer=tokenizer,
                                      source=str(local.resolve()) if local.is_dir() else source)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def quantized_cache_dir() -> Path:
    """Where :func:`cached_quantized_checkpoint` writes: ``$QR_EVAL_CACHE/quantized``, by default
    ``${XDG_CACHE_HOME:-~/.cache}/qr-eval/quantized``."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "qr-eval"
    return Path(root).expanduser() / "quantized"


def cached_quantized_checkpoint(source: str, spec: RTNSpec, *, revision: str | None = None,
                                trust_remote_code: bool = False) -> Path:
    """The :func:`quantize_checkpoint` of ``source`` under :func:`quantized_cache_dir`, written
    on first use and reused after (``qr-vllm``'s ``quant=``).

    Its directory is ``<model>-<spec>-<hash>``: the hash covers the spec and the source's
    identity (a local directory's absolute path and its files' names, sizes and modification
    times; a Hub id's revision and resolved snapshot), so an edited checkpoint gets a new
    entry. A model or layer problem is a one-line ``ModelArgumentError``.
    """
    try:
        name, identity = _source_identity(source, revision)
    except (OSError, ValueError) as error:
        raise ModelArgumentError(f"{source}: cannot find the checkpoint: {_first_line(error)}") from None
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[-80:] or "model"
    digest = hashlib.sha256(json.dumps([repr(spec), identity]).encode()).hexdigest()[:12]
    out = quantized_cache_dir() / f"{name}-{spec.name}-{digest}"
    if _notes(out, spec):
        logger.info("%s of %s: reusing %s", spec.name, source, out)
        return out
    if out.exists():  # not one of ours, or damaged: the writes below are atomic
        logger.warning("%s is not a complete %s checkpoint: writing it again", out, spec.name)
        shutil.rmtree(out)
    try:
        return quantize_checkpoint(source, out, spec, revision=revision, trust_remote_code=trust_remote_code,
                                   progress=logger.info)
    except FileExistsError:
        if _notes(out, spec):  # another process wrote it meanwhile
            return out
        raise
    except ValueError as error:  # names the model, or the spec and the layer
        raise ModelArgumentError(str(error)) from None


def _source_identity(source: str, revision: str | None) -> tuple[str, list]:
    """(a readable name, what identifies the checkpoint's contents)."""
    local = Path(source).expanduser()
    if local.is_dir():
        files = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(local.iterdir()) if f.is_file()]
        return local.resolve().name, [str(local.resolve()), files]
    from transformers.utils import cached_file

    config = cached_file(source, "config.json", revision=revision)  # .../snapshots/<commit>/config.json
    return source.replace("/", "--"), [source, revision, str(config)]


def _notes(out: Path, spec: RTNSpec) -> bool:
    """Whether ``out`` holds a checkpoint written for ``spec`` (its config.json notes it)."""
    try:
        note = json.loads((out / "config.json").read_text()).get(SIMULATED_KEY) or {}
    except (OSError, ValueError):
        return False
    return note.get("spec") == spec.name


def _require(modules: tuple[str, ...], extra: str, purpose: str) -> None:
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingExtra(purpose, missing[0], extra, needs=" and ".join(missing))


def quantization_kwargs(load_in_4bit: bool = False, load_in_8bit: bool = False, **bnb: Any) -> dict:
    """``from_pretrained`` keyword arguments that load a full-precision checkpoint through
    bitsandbytes in 4 or 8 bits.

    transformers 5 dropped ``from_pretrained(load_in_4bit=True)`` (the flag reaches the
    model's ``__init__``, which rejects it), so the flags go into a ``BitsAndBytesConfig``
    with any of its other arguments (``bnb_4bit_quant_type='nf4'``,
    ``bnb_4bit_compute_dtype='bfloat16'``, ...); a misspelt one raises instead of being ignored.
    lm-eval 0.4.13's ``HFLM`` cannot take them as model arguments: it passes its own
    ``quantization_config=`` to ``_create_model`` (``TypeError: got multiple values``), so an
    ``HFLM`` subclass hands this config to ``_create_model`` itself.
    """
    if bool(load_in_4bit) == bool(load_in_8bit):
        raise ValueError(
            f"pass one of load_in_4bit=True or load_in_8bit=True, got load_in_4bit={load_in_4bit!r}, "
            f"load_in_8bit={load_in_8bit!r}"
        )
    _require(("bitsandbytes",), "bnb", f"load_in_{4 if load_in_4bit else 8}bit=True")
    from transformers import BitsAndBytesConfig

    unknown = sorted(set(bnb) - set(inspect.signature(BitsAndBytesConfig).parameters))
    if unknown:
        raise ValueError(f"unknown BitsAndBytesConfig argument(s): {', '.join(unknown)}")
    return {
        "quantization_config": BitsAndBytesConfig(load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit, **bnb)
    }


def check_checkpoint_libraries(config: Any) -> None:
    """Raise a one-line ``MissingExtra`` (a ``ModuleNotFoundError``) naming the qr-eval extra when a pre-quantized
    checkpoint's library is missing.

    transformers loads GPTQ, AWQ and bitsandbytes checkpoints by itself, but without the
    library its errors mislead (a GPTQ checkpoint on a machine without a GPU and without
    gptqmodel says ``GPU is required to quantize or run quantize model.``). ``config`` is the
    checkpoint's ``PretrainedConfig``; one without ``quantization_config`` passes.
    """
    method = (getattr(config, "quantization_config", None) or {}).get("quant_method")
    if method in _CHECKPOINT_LIBRARIES:
        modules, extra = _CHECKPOINT_LIBRARIES[method]
        _require(modules, extra, f"a {method} checkpoint")
