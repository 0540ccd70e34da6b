"""The verbs that reach up to the harness and the models: tasks-path, the offline demo and
the RTN quantizer. They are the only command-line code that imports ``lm_eval_tasks`` or
``qr_adapters`` (tests/test_layout.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qr_metrics.runs import InputError

from .common import verb


def add_tasks_path(verbs) -> None:
    verb(verbs, "tasks-path", _tasks_path, help="print the directory to pass to lm_eval as --include_path")


def _tasks_path(args: argparse.Namespace) -> int:
    from lm_eval_tasks import TASKS_DIR

    print(TASKS_DIR)
    return 0


def add_demo(verbs) -> None:
    p = verb(
        verbs,
        "demo",
        _demo,
        help="the whole story offline: the embedded tiny reasoning model at fp32 and simulated W8/W4/W3/W2, "
        "rescue off and on, through lm-eval; leaderboard, gate, summary",
        epilog="""
        Evaluates qr_toy (three-digit additions, made from a seed) on the embedded model
        (qr_adapters/toy_model) at fp32 and quant=rtn-w{8,4,3,2}g32, each with
        rescue=commit_then_fallback off and on, then writes DIR/runs (lm-eval output
        directories), DIR/leaderboard and DIR/gate.md (W4 against fp32). Nothing is
        downloaded or trained.

        --backend hf      qr-hf in this process (the default)
        --backend vllm    qr-vllm: vLLM's engine in this process (needs the vllm or vllm-cpu extra)
        --backend server  qr-completions against local vllm serve processes it starts and
                          stops: full precision (also the reference) and one per low-bit precision

        examples:
          qr-eval demo --out qr-demo --problems 20 --precisions fp32,w3
          qr-eval demo --backend server --precisions fp32,w3
        """,
    )
    p.add_argument("--out", default="qr-demo", help="directory for runs, leaderboard and gate verdict (default ./qr-demo)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    from ..demo.story import PRECISIONS, PROBLEMS  # standard library only at import

    p.add_argument("--problems", type=int, default=PROBLEMS, help=f"held-out qr_toy problems per run (default {PROBLEMS})")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="comma-separated: fp32 and at least one of w8,w4,w3,w2 (default all); each runs with rescue off and on")
    p.add_argument("--backend", choices=("hf", "vllm", "server"), default="hf",
                   help="where the model runs: hf (qr-hf, default), vllm (qr-vllm) or server (qr-completions "
                        "against local vllm serve processes)")


def _demo(args: argparse.Namespace) -> int:
    from qr_adapters.errors import ServerError

    from ..demo.story import run_demo

    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    try:
        run_demo(Path(args.out), progress=not args.quiet, problems=args.problems, precisions=precisions,
                 backend=args.backend)
    except ServerError as error:  # a vllm serve of --backend server failed
        print(f"qr-eval: error: {error}", file=sys.stderr)
        return 1
    return 0


def add_quantize(verbs) -> None:
    p = verb(
        verbs,
        "quantize",
        _quantize,
        help="write a checkpoint of simulated round-to-nearest low-bit weights, for any engine to serve",
        epilog="""\
            Loads MODEL (a local checkpoint directory or a Hugging Face Hub id) in its own dtype,
            rounds its weights exactly as qr-hf's quant=rtn-wBgG does (asymmetric, per group of G
            inputs; embeddings and the output head kept) and writes a full checkpoint to OUT:
            safetensors at the model's dtype, tokenizer, chat template, generation config, and a
            config.json key qr_eval_simulated_quantization naming the spec and MODEL. OUT must not
            exist or be empty; it appears only once complete. Prints OUT.
            example:
              qr-eval quantize Qwen/Qwen3-8B ckpt/qwen3-8b-rtn-w3g128 --rtn w3g128
              lm_eval --model vllm --model_args pretrained=ckpt/qwen3-8b-rtn-w3g128 ...
            """,
    )
    p.add_argument("model", metavar="MODEL", help="local checkpoint directory or Hub id")
    p.add_argument("out", metavar="OUT", help="directory to write (must not exist, or be empty)")
    p.add_argument("--rtn", metavar="wBgG", required=True,
                   help="bits B (2, 3, 4 or 8) and group size G, e.g. w3g128 (rtn-w3g128, the quant= spelling, too)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _quantize(args: argparse.Namespace) -> int:
    from qr_adapters.quant import BITS, parse_quant, quantize_checkpoint  # torch and transformers only when run

    try:
        spec = parse_quant(args.rtn if args.rtn.startswith("rtn-") else f"rtn-{args.rtn}")
    except ValueError:
        raise InputError("--rtn", f"{args.rtn!r} is invalid: expected w{{{','.join(map(str, BITS))}}}g{{G}} "
                         "with G a positive group size, e.g. w3g128") from None
    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    say = None if args.quiet else lambda line: print(f"qr-eval: {line}", file=sys.stderr)
    try:
        out = quantize_checkpoint(args.model, args.out, spec, progress=say)
    except InputError:  # names the model
        raise
    except ValueError as error:  # the spec and the layer it cannot group
        raise InputError(args.model, str(error)) from None
    print(out)
    return 0
