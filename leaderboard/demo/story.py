"""``qr-eval demo``: the whole story, offline, on the embedded tiny reasoning model.

The model (``qr_adapters/toy_model``, trained by ``python -m qr_adapters.toy_model.training``)
adds three-digit numbers the way reasoning models work: columns, a candidate ``\\boxed{}``
answer, a check, then ``</think>`` and the answer. The demo evaluates it on ``qr_toy``
through lm-eval with ``qr-hf`` at full precision and at simulated RTN W8/W4/W3/W2, each with
loop rescue off and on (the full-precision model as reference), writes the leaderboard,
gates W4 against full precision and prints a summary: what happens to accuracy, reasoning
length and loops as bits go down, and what rescue wins back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_TASK = "qr_toy"
DEMO_MODEL = "qr-toy"
"""The ``model`` of every demo run (run.json): the leaderboard pairs them with the fp32 run."""
PROBLEMS = 100
BATCH_SIZE = 50
GROUP_SIZE = 32
"""RTN group size of the low-bit runs (``rtn-w{bits}g32``): divides every linear layer's
in_features (96 and 192); with it the shipped model keeps W8/W4 intact, is damaged at W3
(mostly loops, which rescue wins back) and broken at W2."""
PRECISIONS = ("fp32", "w8", "w4", "w3", "w2")
RESCUE = {"rescue": "commit_then_fallback", "min_reasoning_tokens": 16}
"""Loop rescue of the rescue-on runs (reference: the full-precision model). Toy traces are
about 110 tokens, so rescue may fire from 16 on instead of qr-hf's default 64."""
RATES = ("repetition", "loop", "unclosed", "budget_exhausted")
"""The pathology rates of the summary: a damaged toy model redoes a sum it already had
(repetition), to the end (loop), never closing its reasoning (unclosed, budget)."""
GATE_POLICY = {"max_inflation": 1.2, "max_accuracy_drop": 0.06, "max_rates": {"loop": 0.02}}
"""The README's CI gate thresholds."""


@dataclass(frozen=True)
class DemoRun:
    """One evaluation of the demo: a precision (``fp32`` or ``w{bits}``), rescue off or on."""

    precision: str
    rescue: bool

    @property
    def bits(self) -> int:
        return 32 if self.precision == "fp32" else int(self.precision[1:])

    @property
    def quant(self) -> str | None:
        return None if self.precision == "fp32" else f"rtn-w{self.bits}g{GROUP_SIZE}"

    @property
    def name(self) -> str:
        return self.precision + ("-rescue" if self.rescue else "")

    @property
    def label(self) -> str:
        """The run.json precision: ``fp32`` marks the baseline; rescue runs are candidates."""
        return (self.quant or "fp32") + ("+rescue" if self.rescue else "")


def demo_runs(precisions: tuple[str, ...] = PRECISIONS) -> list[DemoRun]:
    """fp32 first (the baseline), then each precision with rescue off and on; at least one
    low-bit precision, which the gate judges."""
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or "fp32" not in precisions or len(set(precisions)) < 2:
        from qr_metrics.runs import OptionError

        raise OptionError("precisions", f"expected fp32 and at least one of {', '.join(PRECISIONS[1:])}, "
                         f"got {','.join(precisions)}")  # fmt: skip
    ordered = [p for p in PRECISIONS if p in precisions]
    return [DemoRun(p, rescue) for p in ordered for rescue in (False, True)]


def evaluate(
    model: str,
    model_args: dict,
    task: str,
    output: Path | None,
    metadata: dict,
    gen_kwargs: dict | None = None,
    batch_size: int = 8,
) -> dict:
    """Run ``task`` through lm-eval's Python API with the model's chat template; with
    ``output``, save the run there as ``lm_eval --output_path --log_samples`` would."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    from lm_eval_tasks import TASKS_DIR

    tracker = EvaluationTracker(output_path=str(output)) if output is not None else None
    manager = TaskManager(include_defaults=False, include_path=str(TASKS_DIR), metadata=metadata)
    results = simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=[task],
        task_manager=manager,
        apply_chat_template=True,
        gen_kwargs=gen_kwargs,
        log_samples=True,
        batch_size=batch_size,
        evaluation_tracker=tracker,
    )
    if tracker is not None:
        tracker.save_results_aggregated(results=results, samples=results["samples"])
        tracker.save_results_samples(task_name=task, samples=results["samples"][task])
    return results


def evaluate_toy(model: Any, model_args: dict, run: DemoRun, directory: Path, problems: int,
                 batch_size: int = BATCH_SIZE) -> Path:
    """One demo run: ``qr_toy`` with a backend's model (``backends``), saved under
    ``directory`` with its ``run.json``; returns ``directory``."""
    from qr_adapters.toy_model import TOY_MODEL_DIR

    from qr_metrics.runs import SIDE_FILE

    evaluate(model, model_args, DEMO_TASK, directory, {"toy_n": problems, "pretrained": str(TOY_MODEL_DIR)},
             batch_size=batch_size)  # fmt: skip
    (results_file,) = directory.rglob("results_*.json")
    if (directory / SIDE_FILE).is_file():  # beside results_*.json, where the README puts it
        (directory / SIDE_FILE).replace(results_file.parent / SIDE_FILE)
    header = {"name": run.name, "model": DEMO_MODEL, "precision": run.label, "bits": run.bits}
    (results_file.parent / "run.json").write_text(json.dumps(header))
    return directory


@contextlib.contextmanager
def _silenced():
    """Nothing reaches stderr: lm-eval's, transformers' and datasets' progress bars, logs and
    warnings, and what lm-eval's ``git describe`` prints outside a checkout (a subprocess, so
    file descriptor 2 is redirected too, not only ``sys.stderr``). The demo's own progress
    lines stand in for them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_demo(
    out: Path, progress: bool = True, problems: int = PROBLEMS, precisions: tuple[str, ...] = PRECISIONS,
    backend: str = "hf",
) -> dict:
    """Evaluate the toy model under ``out/runs`` on ``backend`` (``backends``), write
    ``out/leaderboard`` and the gate's verdict, and print the summary; returns the summary's
    figures (see :func:`summary_rows`).

    ``out`` is made absolute first: the runs name their models (so their tokenizers) by
    path, and must read the same from any directory. ``progress=False`` is ``--quiet``.
    """
    from lm_eval_tasks.qr_toy import utils as toy
    from qr_adapters.toy_model import TOY_MODEL_DIR

    from .backends import BACKENDS, open_backend
    from qr_metrics.runs import SIDE_FILE, InputError, OptionError, read_run

    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(out, "not a directory: the output must be one")
    if backend not in BACKENDS:
        raise OptionError("backend", f"expected one of {', '.join(BACKENDS)}, got {backend}")
    try:
        toy.check_size(problems, "test")
    except ValueError as error:
        raise OptionError("problems", str(error)) from None
    plan = demo_runs(tuple(precisions))
    started = time.monotonic()
    runs = {}
    if progress and backend != "hf":
        print(f"starting the {backend} backend ...", file=sys.stderr, flush=True)
    with _silenced():
        models = open_backend(backend, TOY_MODEL_DIR, RESCUE, out)
    try:
        for i, run in enumerate(plan, 1):
            directory = out / "runs" / run.name
            _clear(directory)
            if progress:
                print(f"[{i}/{len(plan)}] {run.name:<10} {run.label} ...", end="", file=sys.stderr, flush=True)
            began = time.monotonic()
            with _silenced():
                model, model_args = models.model(run, directory / SIDE_FILE)
                runs[run.name] = read_run(evaluate_toy(model, model_args, run, directory, problems))
            if progress:
                print(f" {time.monotonic() - began:.0f}s", file=sys.stderr, flush=True)
    finally:
        with _silenced():
            models.close()
    figures = write_reports(out, plan, runs, progress, backend)
    if progress:
        print(f"demo finished in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return figures


def _clear(directory: Path) -> None:
    """A fresh run directory (a rerun must not leave two timestamped runs in one folder)."""
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


def write_reports(out: Path, plan: list[DemoRun], runs: dict, progress: bool, backend: str = "hf") -> dict:
    """The leaderboard, the W4 gate and the printed summary of the demo's runs."""
    from qr_metrics.files import atomic_write

    from ..board import build_leaderboard
    from ..gate import GatePolicy, gate
    from ..options import Measurer, Options
    from ..render.text import gate_summary, gate_verdict
    from ..write import write_leaderboard

    if progress:
        print("leaderboard and gate ...", file=sys.stderr, flush=True)
    measurer = Measurer(Options(progress=False))  # each run measured once for the board and the gate
    board = build_leaderboard(list(runs.values()), measurer=measurer,
                              title="qr-eval demo: the tiny reasoning model on qr_toy")
    written = write_leaderboard(board, out / "leaderboard", plots=_can_plot())
    candidate = "w4" if "w4" in runs else plan[2].name
    verdict = gate(runs["fp32"], runs[candidate], GatePolicy(**GATE_POLICY), measurer.options, measurer)
    with atomic_write(out / "gate.md") as handle:
        handle.write(gate_verdict(verdict.as_dict()))
    result = verdict.as_dict(comparison=False)
    rows = summary_rows(board, runs)
    print(summary_table(rows, board, runs["fp32"].generation[DEMO_TASK]["max_gen_toks"], backend))
    print()
    print(gate_summary(result))
    print()
    print(f"runs (lm-eval output directories): {out / 'runs'}")
    print(f"leaderboard: {', '.join(p.name for p in written)} in {out / 'leaderboard'}")
    print(f"gate verdict: {out / 'gate.md'}")
    print(f"try: qr-eval compare {out / 'runs' / 'fp32'} {out / 'runs' / candidate}")
    return {"rows": rows, "gate": result}


def _can_plot() -> bool:
    try:
        from ..render.plots import require_matplotlib

        require_matplotlib()
    except ImportError:
        return False
    return True


def summary_rows(board: dict, runs: dict) -> list[dict]:
    """Per run: precision, rescue, accuracy, mean reasoning tokens, inflation against fp32
    (with interval), the :data:`RATES` and samples rescued."""
    from ..figures import rescue_counts

    rows = []
    for row in board["rows"]:
        if row["task"] != "overall":
            continue
        run = runs[row["run"]]
        rescued = rescue_counts([s.side for s in run.samples if s.side is not None])
        rows.append({
            "run": row["run"],
            "precision": row["precision"],
            "rescue": row["run"].endswith("-rescue"),
            "n": row["n"],
            "accuracy": row["accuracy"],
            "mean_reasoning_tokens": row["mean_length"],
            "inflation": row["ratio_of_means"],
            "ratio_is_lower_bound": row["ratio_is_lower_bound"],
            "rates": {k: row["rates"][k] for k in RATES},
            "rescued": None if rescued is None else rescued["rescued"],
        })  # fmt: skip
    return rows


BACKEND_MODELS = {"hf": "qr-hf", "vllm": "qr-vllm", "server": "qr-completions on two local vllm serve"}


def summary_table(rows: list[dict], board: dict, max_gen_toks: int, backend: str = "hf") -> str:
    from ..render.formats import interval, percent
    from ..render.text import format_table

    header = ["run", "precision", "rescue", "acc%", "mean tokens", "inflation vs fp32", "repeat%", "loop%",
              "unclosed%", "budget%", "rescued"]  # fmt: skip
    body = []
    for r in rows:
        pct = {k: percent(v) for k, v in r["rates"].items()}
        ratio = "-" if r["inflation"] is None else interval(r["inflation"]) + (" >=" if r["ratio_is_lower_bound"] else "")
        body.append([
            r["run"], r["precision"], "on" if r["rescue"] else "off",
            percent(None if r["accuracy"] is None else r["accuracy"]["estimate"]),
            f"{r['mean_reasoning_tokens']:.1f}", ratio, *(pct[k] for k in RATES),
            "-" if r["rescued"] is None else str(r["rescued"]),
        ])  # fmt: skip
    n = rows[0]["n"] if rows else 0
    return (
        f"{DEMO_TASK}, {n} held-out problems; greedy, max_gen_toks {max_gen_toks}; simulated RTN, groups of {GROUP_SIZE}; "
        f"rescue: {RESCUE['rescue']} (reference: fp32); backend: {backend} ({BACKEND_MODELS[backend]})\n"
        f"inflation = mean reasoning tokens / fp32's, {percent(board['confidence'], None)}% {board['method']} interval\n"
        + format_table(header, body)
    )
