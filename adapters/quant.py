"""Low-bit loading for ``qr-hf``: simulated round-to-nearest weights, bitsandbytes loads,
and the libraries that pre-quantized (GPTQ, AWQ, bitsandbytes) checkpoints need.

RTN here is *simulated* quantization: every covered weight is replaced by the value its
b-bit code dequantizes to, and stays in the model's dtype. It needs no kernel and no
calibration data, so any checkpoint can be measured at any bit width, and it isolates what
rounding alone does to reasoning: the baseline that GPTQ and AWQ are compared against.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from dataclasses import dataclass
from typing import Any

from .rescue import MissingExtra

BITS = (2, 3, 4, 8)
"""Bit widths :class:`RTNSpec` accepts."""

_QUANT = re.compile(r"rtn-w([1-9][0-9]*)g([1-9][0-9]*)")

# quant_method of a pre-quantized checkpoint -> (modules transformers needs to load it, extra)
_CHECKPOINT_LIBRARIES = {
    "gptq": (("optimum", "gptqmodel"), "gptq"),
    "awq": (("gptqmodel",), "gptq"),
    "bitsandbytes": (("bitsandbytes",), "bnb"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
        if not _is_int(self.bits) or self.bits not in BITS:
            raise ValueError(f"bits must be one of {', '.join(map(str, BITS))}, got {self.bits!r}.")
        if not _is_int(self.group_size) or self.group_size < 1:
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


def _require(modules: tuple[str, ...], extra: str, purpose: str) -> None:
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingExtra(
            f'{purpose} needs {" and ".join(missing)}: pip install "qr-eval[{extra}]"', name=missing[0]
        )


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
