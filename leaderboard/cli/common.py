"""What the verbs' command lines share: the parser class, run selection, the options every
measuring verb takes, and turning flags into an ``Options`` object (only the CLI knows flags)."""

from __future__ import annotations

import argparse
import math
import os
import textwrap
from dataclasses import replace
from pathlib import Path

from qr_metrics.files import json_text
from qr_metrics.runs import InputError, OptionError, Run


FLAGS = {"unit": "--unit", "tokenizer": "--tokenizer", "strict": "--strict", "allow_missing": "--allow-missing",
         "params": "--measure-params", "baseline": "--baseline", "speedups": "--speedup", "policy": "--policy",
         "precisions": "--precisions", "backend": "--backend", "problems": "--problems", "task": "--task",
         "runs": "command line"}
"""The flag of each library parameter (``Options.flags``, ``OptionError``): only the command
line knows flags."""


def error_line(error: InputError) -> str:
    """The one line a bad input prints: an ``OptionError`` names the flag of its parameter."""
    if isinstance(error, OptionError):
        return f"qr-eval: error: {FLAGS.get(error.option, error.option)}: {error.message}"
    return f"qr-eval: error: {error}"


class Parser(argparse.ArgumentParser):
    """A usage error is one line, which points at ``--help`` (exit 2), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def verb(verbs, name: str, func, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """One verb's parser: its one-line help, and an epilog (with an example) kept as written."""
    p = verbs.add_parser(
        name,
        help=help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent(epilog) if epilog else None,
    )
    p.set_defaults(func=func)
    return p


def print_result(args: argparse.Namespace, result: dict, table) -> None:
    """The documented JSON object with ``--json``, else the table ``table()`` renders."""
    if args.json:
        print(json_text(result, indent=2))
    else:
        print(table())


def append_step_summary(text: str) -> None:
    """Append to the GitHub Actions job summary when running there."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Run selection and metadata, the same for every verb that reads runs (``read_runs``)."""
    p.add_argument("--timestamp", action="append", metavar="TS",
                   help="in a directory that holds several lm-eval runs, read the one with this timestamp "
                   "(repeatable: each such directory reads the one of its runs given)")
    p.add_argument("--label", action="append", metavar="RUN=[MODEL:]PRECISION:BITS",
                   help="model, precision and bits of RUN (a path as given above), e.g. "
                   "runs/int4=Qwen/Qwen3-8B:awq-w4:4; wins over its run.json (repeatable)")


def read_runs(args: argparse.Namespace, paths: list[str]) -> list[Run]:
    """The runs at ``paths``, selected by ``--timestamp`` and labelled by ``--label``; a
    timestamp or label that matches none of them is an input error."""
    from qr_metrics.runs import read_run

    labels = {Path(run).resolve(): (text, fields) for text, run, fields in map(_label, args.label or [])}
    runs = []
    for path in paths:
        run = read_run(path, timestamp=args.timestamp)
        _, fields = labels.get(Path(path).resolve(), (None, {}))
        runs.append(replace(run, **fields))
    for stamp in args.timestamp or []:
        if stamp not in {run.timestamp for run in runs}:
            raise InputError("--timestamp", f"{stamp!r} is the timestamp of none of the runs read")
    given = {Path(path).resolve() for path in paths}
    for where, (text, _) in labels.items():
        if where not in given:
            raise InputError("--label", f"{text!r}: {str(where)!r} is none of the runs given")
    return runs


def _label(text: str) -> tuple[str, str, dict]:
    """``RUN=[MODEL:]PRECISION:BITS`` -> (text, RUN, the run fields it sets)."""
    run, sep, spec = text.rpartition("=")
    parts = spec.rsplit(":", 2)
    try:
        bits = float(parts[-1])
    except ValueError:
        bits = math.nan
    if not (sep and run and len(parts) >= 2 and all(parts) and 0 < bits < math.inf):
        raise InputError("--label", f"expected RUN=[MODEL:]PRECISION:BITS with BITS a number > 0, got {text!r}")
    fields = {"precision": parts[-2], "bits": int(bits) if bits.is_integer() else bits}
    if len(parts) == 3:
        fields["model"] = parts[0]
    return text, run, fields


def add_measure_options(p: argparse.ArgumentParser, recount: str = "count tokens with this tokenizer") -> None:
    """How runs are measured: every verb that measures takes these (``Options``)."""
    p.add_argument("--tokenizer", metavar="NAME_OR_PATH", help=recount)
    p.add_argument("--measure-params", metavar="FILE",
                   help="YAML or JSON file of measurement parameters (MeasureParams keys: think_open, think_close, "
                   "loop_min_copies, ...); default: the ones an lm-eval run logged in its --metadata, else the defaults")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_unsafe_code_option(p)
    add_run_options(p)


def add_unit_option(p: argparse.ArgumentParser) -> None:
    from qr_metrics.units import UNITS

    p.add_argument("--unit", choices=list(UNITS),
                   help="length unit: reasoning tokens, words or steps, or completion_words (the whole completion's, "
                   "what count-only data such as a per-sample CSV holds); default: the best unit every sample has, "
                   "in that order (a notice on stderr says when it is not tokens)")


def add_statistics_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every verb that computes paired statistics."""
    add_unit_option(p)
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--n-resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--method", choices=("BCa", "percentile"), default="BCa", help="bootstrap interval (default BCa)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--strict", action="store_true",
                   help="refuse runs that differ in tasks, budget, sampling or tokenizer (exit 2)")
    add_measure_options(p, recount="recount tokens of every run with this tokenizer")


def add_unsafe_code_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--confirm-run-unsafe-code",
        action="store_true",
        help="allow re-grading code tasks (qr_humaneval, qr_mbpp) by running the model's code in the sandbox",
    )


def allow_unsafe_code(args: argparse.Namespace) -> None:
    """The code graders run model code only once the user said so (as lm-eval's flag does)."""
    if getattr(args, "confirm_run_unsafe_code", False):
        from qr_metrics.code_sandbox import ALLOW_ENV_VAR

        os.environ[ALLOW_ENV_VAR] = "1"


def options(args: argparse.Namespace):
    """The ``Options`` the flags set (``--unit``, bootstrap, ``--tokenizer``, ``--strict``,
    ``--allow-missing``, ``--measure-params``, ``--quiet``), each where the verb has it."""
    from ..options import Options, load_measure_params

    return Options(
        unit=getattr(args, "unit", None),
        bootstrap=_bootstrap(args) if hasattr(args, "n_resamples") else Options().bootstrap,
        tokenizer=args.tokenizer,
        strict=getattr(args, "strict", False),
        allow_missing=getattr(args, "allow_missing", None),
        params=load_measure_params(args.measure_params) if args.measure_params else None,
        progress=not args.quiet,
        flags=FLAGS,
    )


def _bootstrap(args: argparse.Namespace):
    from qr_metrics.params import ParameterError
    from qr_metrics.stats import BootstrapConfig

    try:
        return BootstrapConfig(
            confidence=args.confidence, n_resamples=args.n_resamples, method=args.method, seed=args.seed
        )
    except ParameterError as error:  # each field is the flag of the same name
        raise InputError(f"--{error.field.replace('_', '-')}", error.problem) from None
