"""``qr-eval``: one entry point with verbs (DESIGN.md section 5), one ``add_<verb>`` each.

Exit codes: 0 success (or gate passed), 1 gate failed, 2 bad input or usage, with one line
on stderr naming the file, line and field. Results go to stdout; progress to stderr. A
closed output pipe (``| head``) ends the command quietly with 141 (128 + SIGPIPE), as it
ends a Unix tool.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap

from qr_metrics.runs import InputError

from .board import add_leaderboard
from .common import Parser, allow_unsafe_code, error_line
from .deciding import add_gate, add_select
from .measuring import add_analyze, add_compare, add_convert, add_replay
from .models import add_demo, add_quantize, add_tasks_path

VERBS = (add_tasks_path, add_demo, add_convert, add_analyze, add_compare, add_leaderboard, add_gate, add_select,
         add_replay, add_quantize)
"""Each verb's parser, in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="qr-eval",
        description="Measure what low-bit quantization does to reasoning models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent(
            """\
            examples:
              lm_eval --model hf --model_args pretrained=Qwen/Qwen3-8B --tasks qr_math \\
                  --include_path "$(qr-eval tasks-path)" --apply_chat_template \\
                  --log_samples --output_path runs/fp16
              qr-eval analyze runs/fp16
              qr-eval analyze traces.jsonl --json --per-sample per_sample.jsonl
            """
        ),
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for add in VERBS:
        add(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    from qr_metrics.extras import MissingExtra

    args = build_parser().parse_args(argv)
    allow_unsafe_code(args)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        _discard_stdout()
        return 128 + signal.SIGPIPE
    except InputError as error:
        print(error_line(error), file=sys.stderr)
        return 2
    except MissingExtra as error:
        print(f"qr-eval: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path that cannot be read or written: missing, a directory, no permission
        path = error.filename2 or error.filename  # a rename (an atomic write) names its target second
        print(f"qr-eval: error: {path}: {error.strerror}" if path else f"qr-eval: error: {error}", file=sys.stderr)
        return 2


def _discard_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for the closed pipe goes nowhere."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's captured stdout)
        pass
