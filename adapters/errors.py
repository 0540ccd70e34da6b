"""The adapters' errors, each reported by ``qr-lm-eval`` / ``qr-eval`` in one line."""

from __future__ import annotations

from typing import Any

from qr_metrics.params import ParameterError


class ModelArgumentError(ParameterError):
    """A bad model argument, reported as one line before any model loads (exit code 2).

    ``ModelArgumentError(name, value, allowed)`` says ``name=value is invalid: must be
    allowed`` (a ``ParameterError`` without an owner; ``qr_metrics.params.check`` raises it
    with ``error=ModelArgumentError``); ``ModelArgumentError(message)`` says a message of its own.
    """

    def __init__(self, *args: Any) -> None:
        if len(args) == 1:
            self.field = self.value = self.allowed = None
            ValueError.__init__(self, args[0])
        else:
            super().__init__(*((None, *args) if len(args) == 3 else args))


class ServerError(RuntimeError):
    """A served model that did not answer after lm-eval's retries (one line, exit 1)."""
