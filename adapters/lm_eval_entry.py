"""``qr-lm-eval``: lm_eval with the qr tasks on its include path and the ``qr-hf``
and ``qr-vllm`` models registered, same arguments otherwise."""

from __future__ import annotations

import os
import sys

from lm_eval_tasks import TASKS_DIR


def with_qr_tasks(argv: list[str]) -> list[str]:
    """Add the qr task directory to ``--include_path`` (appended to one the user gave)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--include_path" and i + 1 < len(args):
            args[i + 1] = f"{args[i + 1]}{os.pathsep}{TASKS_DIR}"
            return args
        if arg.startswith("--include_path="):
            args[i] = f"{arg}{os.pathsep}{TASKS_DIR}"
            return args
    position = 1 if args and args[0] in ("run", "ls", "validate") else 0
    return args[:position] + ["--include_path", str(TASKS_DIR)] + args[position:]


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    from lm_eval.api.registry import model_registry

    from . import hf  # noqa: F401  (registers qr-hf)
    from .rescue import MissingExtra, ModelArgumentError

    model_registry.register("qr-vllm", target="qr_adapters.vllm:QRVLLM")  # lazy: vLLM is optional

    sys.argv = [sys.argv[0], *with_qr_tasks(sys.argv[1:])]
    try:
        cli_evaluate()
    except ModelArgumentError as error:
        print(f"qr-lm-eval: bad model argument: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except MissingExtra as error:
        print(f"qr-lm-eval: {error}", file=sys.stderr)
        raise SystemExit(2) from None
