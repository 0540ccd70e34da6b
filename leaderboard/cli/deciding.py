"""The verbs that decide: gate (exit 0 pass, 1 fail) and select (the cheapest passing checkpoint)."""

from __future__ import annotations

import argparse
import sys

from qr_metrics.files import json_text
from qr_metrics.runs import InputError

from .common import add_statistics_options, append_step_summary, options, read_runs, verb


def add_policy_options(p: argparse.ArgumentParser) -> None:
    """Thresholds shared by gate and select (flags override a --policy file)."""
    p.add_argument("--max-inflation", type=float, metavar="X",
                   help="upper confidence bound of the inflation ratio must be <= X (e.g. 1.2)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="D",
                   help="upper confidence bound of the accuracy drop, as a share, must be <= D (0.06 = 6 points)")
    p.add_argument("--max-rate", action="append", metavar="PATHOLOGY=R",
                   help="the candidate's rate of PATHOLOGY must be <= R (repeatable), e.g. loop=0.02; where the "
                   "flag is known for part of the samples, the rate if every unknown sample had it")
    p.add_argument("--min-budget-auc", type=float, metavar="A",
                   help="the candidate's area under accuracy-under-budget must be >= A (in [0, 1])")
    p.add_argument("--policy", metavar="FILE", help="YAML policy file: max_inflation, max_accuracy_drop, "
                   "max_rates, min_budget_auc, ratio, confidence")
    p.add_argument("--allow-missing", action="store_true",
                   help="exclude samples present in one run only (default: an error, exit 2, so that a gate "
                   "never passes a checkpoint evaluated on part of the set)")
    p.add_argument("--json", action="store_true", help="print the documented JSON object")
    add_statistics_options(p)
    p.set_defaults(confidence=None)


def policy(args: argparse.Namespace):
    """The ``GatePolicy`` of ``--policy`` and the threshold flags (flags win); sets
    ``args.confidence`` (flag, else the file's, else 0.95)."""
    from ..gate.policy import POLICY_THRESHOLDS, GatePolicy, PolicyError, load_policy, policy_with

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
        chosen = policy_with(
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
        raise InputError(f"{flag} {pathology}".strip(), error.flag_problem) from None
    if not chosen.has_thresholds:
        flags = "--max-inflation, --max-accuracy-drop, --max-rate or --min-budget-auc"
        if args.policy:
            raise InputError(args.policy, f"no thresholds: set one of {', '.join(POLICY_THRESHOLDS)}, or give {flags}")
        raise InputError("command line", f"no thresholds: give {flags}, or --policy FILE")
    return chosen


def add_gate(verbs) -> None:
    p = verb(
        verbs,
        "gate",
        _gate,
        help="pass (exit 0) or fail (exit 1) a candidate against its baseline under thresholds",
        epilog="""\
            Passes when, at --confidence, the upper bound of the inflation ratio is <= X, the
            upper bound of the accuracy drop is <= D and each named pathology rate is <= R. A
            figure the data cannot give fails its check; a rate known for part of the samples
            is checked as if every unknown sample had the pathology. Prints a Markdown verdict
            (also appended to $GITHUB_STEP_SUMMARY when set). Exit 0 pass, 1 fail, 2 bad input.
            example:
              qr-eval gate runs/bf16 runs/awq-w4 --max-inflation 1.2 --max-accuracy-drop 0.06 \\
                  --max-rate loop=0.02
              qr-eval gate runs/bf16 runs/awq-w4 --policy gate.yaml --json > verdict.json
            """,
    )
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("candidate", metavar="CANDIDATE")
    add_policy_options(p)


def _gate(args: argparse.Namespace) -> int:
    from ..gate import gate
    from ..render.text import gate_verdict

    chosen = policy(args)
    result = gate(*read_runs(args, [args.baseline, args.candidate]), chosen, options(args))
    verdict = gate_verdict(result.as_dict())
    if args.json:
        print(json_text(result.as_dict(), indent=2))
    else:
        print(verdict, end="")
    append_step_summary(verdict)
    return 0 if result.passed else 1


def add_select(verbs) -> None:
    p = verb(
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


def _select(args: argparse.Namespace) -> int:
    from ..gate import select_checkpoint
    from ..render.text import selection_report

    chosen = policy(args)
    baseline, *candidates = read_runs(args, [args.baseline, *args.candidates])
    summary = select_checkpoint(baseline, candidates, chosen, options(args)).as_dict()
    report = selection_report(summary)
    if args.json:
        print(json_text(summary, indent=2))
    else:
        if summary["selected"] is not None:
            print(summary["selected"])
        print(report, end="", file=sys.stderr)
    append_step_summary(report)
    return 0 if summary["selected"] is not None else 1
