"""The verbs that read runs and report on them: convert, analyze, compare, replay."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qr_metrics.files import json_text
from qr_metrics.runs import InputError

from .common import add_measure_options, add_statistics_options, add_unit_option, options, print_result, read_runs, verb


def add_convert(verbs) -> None:
    p = verb(
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


def _convert(args: argparse.Namespace) -> int:
    from ..convert import convert, write_traces

    if args.out != "-" and Path(args.out).resolve() == Path(args.file).resolve():
        raise InputError("--out", f"{args.out!r} is the input file: inputs are never modified")
    result = convert(args.file, task=args.task, progress=not args.quiet)
    write_traces(result.records, args.out)
    if not args.quiet:
        tasks = ", ".join(sorted({r["task"] for r in result.records}))
        print(f"qr-eval: {args.file} ({result.shape}): {len(result.records)} records, task {tasks} -> {args.out}",
              file=sys.stderr)
    return 0


def add_analyze(verbs) -> None:
    p = verb(
        verbs,
        "analyze",
        _analyze,
        help="per-task accuracy, length statistics and pathology rates of one run",
        epilog="""\
            RUN is an lm-eval output directory (run with --log_samples), one results_*.json,
            a generic trace file (.jsonl), or a directory with traces.jsonl and run.json.
            A pathology rate is over the samples whose flag is known; "known" gives how many.
            example:
              qr-eval analyze runs/int4 --json --per-sample int4_samples.jsonl
            """,
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--json", action="store_true", help="print the per-task summary as JSON")
    p.add_argument("--per-sample", metavar="FILE", help="also write one JSON Lines record per sample to FILE ('-': stdout; "
                   "its directory must exist)")
    add_measure_options(p)


def _analyze(args: argparse.Namespace) -> int:
    import jsonlines

    from qr_metrics.files import output_file

    from ..figures import summarize
    from ..options import Measurer
    from ..render.text import analysis_table

    (run,) = read_runs(args, [args.run])
    measurer = Measurer(options(args))
    unit = measurer.unit([run])
    measured = measurer(run)
    summary = summarize(measured, unit, measurer.params(run).budget_points)
    if args.per_sample:
        with output_file(args.per_sample) as handle:
            jsonlines.Writer(handle, dumps=json_text).write_all(m.as_record() for m in measured)
    print_result(args, summary, lambda: analysis_table(run.name, summary))
    return 0


def add_compare(verbs) -> None:
    p = verb(
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


def _compare(args: argparse.Namespace) -> int:
    from ..compare import compare_runs
    from ..render.text import comparison_table

    result = compare_runs(*read_runs(args, [args.baseline, args.candidate]), options(args)).as_json()
    print_result(args, result, lambda: comparison_table(result))
    return 0


def add_replay(verbs) -> None:
    p = verb(
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
    add_measure_options(p)


def _replay(args: argparse.Namespace) -> int:
    from ..render.text import replay_table
    from ..replay import replay_run

    run, *baseline = read_runs(args, [args.run, *([args.baseline] if args.baseline else [])])
    result = replay_run(run, baseline[0] if baseline else None, options(args), policy=args.policy)
    print_result(args, result, lambda: replay_table(result))
    return 0
