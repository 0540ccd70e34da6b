"""``qr-hf``: loop rescue, FP16 planning and the side file, on tiny local models.

Models whose logits are rigged (``scripted_model``) write traces that loop on cue, so each
rescue is checked at its exact position; the random tiny model checks that, with rescue off,
``qr-hf`` writes what plain ``hf`` writes.
"""

from __future__ import annotations

import json

import jsonlines
import pytest
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from helpers.scripted_model import Rule, scripted
from transformers import AutoTokenizer

from qr_adapters.hf import QRHFLM
from qr_adapters.errors import ModelArgumentError
from qr_metrics.sidecar import SideRecord

CLOSE = "\n</think>\n\n"
ANSWER_PREFIX = "Let me see. So the answer is \\boxed{42}.\n"
NO_ANSWER_PREFIX = "Hmm, let me think about it.\n"
BLOCK = "Wait, check it again. "
LONG = "".join(f"Step {i}: add {i} tens and {2 * i + 1} units, carry {i % 3}. " for i in range(1, 6))
EASY = f"Easy: 1+1=2.{CLOSE}The answer is \\boxed{{2}}."
LOWBIT_ANSWER = "The answer is \\boxed{5}."
REFERENCE_TAIL = f" So it is 7.{CLOSE}The answer is \\boxed{{7}}."
PLAN = "First, a plan: add the numbers, then check the sum twice."
BUDGET = 160
STOPPED, STOP = "So it is 3. ", "Question:"


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def ids(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


@pytest.fixture(scope="module")
def lowbit(tiny_model_dir, tok):
    """Loops on cue: LOOPANSWER after writing an answer, LOOPNONE without one."""
    return scripted(tiny_model_dir, tok, [
        Rule(CLOSE.rstrip("\n") + "\n\n", ids(tok, LOWBIT_ANSWER), ends=True),
        Rule("LOOPANSWER", ids(tok, ANSWER_PREFIX) + ids(tok, BLOCK) * 40),
        Rule("LOOPNONE", ids(tok, NO_ANSWER_PREFIX) + ids(tok, BLOCK) * 40),
        Rule("LONG", ids(tok, LONG) + ids(tok, CLOSE + "The answer is \\boxed{2}.")),
        Rule("EASY", ids(tok, EASY)),
        Rule("STOPSTRING", ids(tok, STOPPED + STOP) + ids(tok, BLOCK) * 40),
        Rule("STOPTHENEOS", ids(tok, STOPPED + STOP + " And more words.")),
    ])


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tok):
    """Never loops: finishes a handed-over trace, or writes a plan."""
    return scripted(tiny_model_dir, tok, [
        Rule("PLANME", ids(tok, PLAN)),
        Rule("", ids(tok, REFERENCE_TAIL)),
    ])


def qr_hf(tiny_model_dir, model, tmp_path, **args) -> QRHFLM:
    return QRHFLM(pretrained=model, tokenizer=str(tiny_model_dir), device="cpu", batch_size=2,
                  max_length=1024, sidecar=str(tmp_path / "side.jsonl"), **args)


def generate(lm, questions: list[str], budget: int = BUDGET, until: tuple[str, ...] = ()) -> list[str]:
    requests = [
        Instance(
            request_type="generate_until",
            doc={"question": q},
            arguments=(lm.apply_chat_template([{"role": "user", "content": q}]),
                       {"until": list(until), "max_gen_toks": budget, "do_sample": False}),
            idx=0,
            metadata=("qr_math", doc_id, 1),
        )
        for doc_id, q in enumerate(questions)
    ]
    return lm.generate_until(requests)


def side(tmp_path) -> dict[int, SideRecord]:
    with jsonlines.open(tmp_path / "side.jsonl") as reader:
        records = [SideRecord.from_json(r) for r in reader]
    return {r.doc_id: r for r in records}


def test_rescue_off_writes_what_plain_hf_writes(tiny_model_dir, tmp_path):
    questions = ["What is 1+1?", "Compute \\frac{1}{2} + \\frac{1}{3}.", "Find x if 2x=4."]
    plain = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=2, max_length=512)
    ours = QRHFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=2, max_length=512,
                  sidecar=str(tmp_path / "side.jsonl"))
    assert generate(ours, questions, 40) == generate(plain, questions, 40)
    records = side(tmp_path)
    assert sorted(records) == [0, 1, 2]
    assert all(r.finish_reason == r.final_finish_reason == "length" and not r.rescue for r in records.values())
    assert all(r.completion_tokens == r.tokens["lowbit"] == 40 for r in records.values())


def test_an_empty_sidecar_argument_records_nothing(tiny_model_dir, tmp_path, monkeypatch):
    """``sidecar=`` with no value (as ``--model_args`` can pass it) is no side file, not a crash."""
    monkeypatch.chdir(tmp_path)
    lm = QRHFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=2, max_length=512, sidecar="")
    plain = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=2, max_length=512)
    assert generate(lm, ["What is 1+1?"], 8) == generate(plain, ["What is 1+1?"], 8)  # a plain generation
    assert list(tmp_path.iterdir()) == []


def test_commit_with_answer_cuts_at_the_onset(tiny_model_dir, tok, lowbit, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit", check_every=4, min_reasoning_tokens=0)
    (completion,) = generate(lm, ["LOOPANSWER: what is 6*7?"])
    assert completion == ANSWER_PREFIX + CLOSE + "The final answer is $\\boxed{42}$."
    record = side(tmp_path)[0]
    (event,) = record.rescue
    prefix = ids(tok, ANSWER_PREFIX)
    assert prefix[-1] != ids(tok, BLOCK)[-1]  # so the periodic run starts exactly after it
    assert (event.kind, event.trigger, event.position, event.answer) == ("commit", "loop", len(prefix), "42")
    assert event.period == len(ids(tok, BLOCK))
    assert record.finish_reason == "loop" and record.final_finish_reason == "stop"
    assert record.tokens == {"lowbit": len(prefix), "reference": 0}
    assert event.tokens_cut > 0


def test_commit_without_answer_lets_the_lowbit_model_answer(tiny_model_dir, tok, lowbit, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit", check_every=4, min_reasoning_tokens=0)
    (completion,) = generate(lm, ["LOOPNONE: what is 2+3?"])
    assert completion == NO_ANSWER_PREFIX + CLOSE + LOWBIT_ANSWER
    record = side(tmp_path)[0]
    (event,) = record.rescue
    assert (event.kind, event.position, event.answer) == ("commit", len(ids(tok, NO_ANSWER_PREFIX)), None)
    assert record.tokens["lowbit"] == len(ids(tok, NO_ANSWER_PREFIX)) + len(ids(tok, LOWBIT_ANSWER))


def test_fallback_hands_the_trace_to_the_reference(tiny_model_dir, tok, lowbit, reference, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="fallback", reference=reference,
               check_every=4, min_reasoning_tokens=0)
    (completion,) = generate(lm, ["LOOPANSWER: what is 6*7?"])
    assert completion == ANSWER_PREFIX + REFERENCE_TAIL
    record = side(tmp_path)[0]
    (event,) = record.rescue
    assert (event.kind, event.trigger, event.position) == ("fallback", "loop", len(ids(tok, ANSWER_PREFIX)))
    assert record.tokens == {"lowbit": len(ids(tok, ANSWER_PREFIX)), "reference": len(ids(tok, REFERENCE_TAIL))}
    assert record.decode_s_per_token["reference"] > 0 and record.decode_s_per_token["lowbit"] > 0


def test_commit_then_fallback_picks_by_answer(tiny_model_dir, tok, lowbit, reference, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit_then_fallback", reference=reference,
               check_every=4, min_reasoning_tokens=0)
    with_answer, without = generate(lm, ["LOOPANSWER: what is 6*7?", "LOOPNONE: what is 2+3?"])
    assert with_answer.endswith("$\\boxed{42}$.") and without == NO_ANSWER_PREFIX + REFERENCE_TAIL
    kinds = {doc: [e.kind for e in r.rescue] for doc, r in side(tmp_path).items()}
    assert kinds == {0: ["commit"], 1: ["fallback"]}


def test_only_the_looping_row_of_a_batch_is_stopped(tiny_model_dir, tok, lowbit, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit", check_every=1, min_reasoning_tokens=0)
    looped, long = generate(lm, ["LOOPANSWER: what is 6*7?", "LONG: what is 1+1?"])
    assert looped.endswith("$\\boxed{42}$.")
    assert long == LONG + CLOSE + "The answer is \\boxed{2}."
    records = side(tmp_path)
    assert records[1].rescue == [] and records[1].finish_reason == "stop"
    assert records[1].tokens["lowbit"] == len(ids(tok, LONG + CLOSE + "The answer is \\boxed{2}."))
    # The looping row was stopped early: it generated far fewer ids than the budget.
    assert records[0].rescue[0].position + records[0].rescue[0].tokens_cut < len(ids(tok, LONG))


def test_a_row_past_its_stop_sequence_is_not_rescued(tiny_model_dir, tok, lowbit, tmp_path):
    """lm-eval's stop-sequence criterion lets a batch run on until every row has stopped, so
    the row that wrote its stop sequence keeps generating (here, a loop); what comes after the
    stop is not its trace, and the watcher must not rescue it nor count it."""
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit", check_every=1, min_reasoning_tokens=0)
    stopped, long = generate(lm, ["STOPSTRING: what is 1+2?", "LONG: what is 1+1?"], until=(STOP,))
    assert stopped == STOPPED and long == LONG + CLOSE + "The answer is \\boxed{2}."
    record = side(tmp_path)[0]
    assert record.rescue == [] and record.finish_reason == record.final_finish_reason == "stop"
    assert record.tokens["lowbit"] == len(ids(tok, STOPPED + STOP))


def test_ids_written_after_a_stop_sequence_are_not_counted(tiny_model_dir, tok, lowbit, tmp_path):
    """The row writes its stop sequence, goes on while the batch runs, then emits eos."""
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path)
    stopped, _ = generate(lm, ["STOPTHENEOS: what is 1+2?", "LONG: what is 1+1?"], until=(STOP,))
    assert stopped == STOPPED
    record = side(tmp_path)[0]
    assert record.finish_reason == "stop" and record.tokens["lowbit"] == len(ids(tok, STOPPED + STOP))


def test_min_reasoning_tokens_holds_rescue_back(tiny_model_dir, tok, lowbit, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit", check_every=4, min_reasoning_tokens=BUDGET)
    (completion,) = generate(lm, ["LOOPANSWER: what is 6*7?"])
    record = side(tmp_path)[0]
    # Never fired inside the budget; at the budget the trace still ends in the loop.
    assert record.finish_reason == "length" and record.rescue[0].trigger == "loop"
    assert record.rescue[0].position == len(ids(tok, ANSWER_PREFIX))


def test_planning_hands_over_after_exactly_n_tokens(tiny_model_dir, tok, lowbit, reference, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, plan_tokens=5, reference=reference)
    (completion,) = generate(lm, ["PLANME EASY: what is 1+1?"])
    plan = ids(tok, PLAN)[:5]
    assert completion == tok.decode(plan + ids(tok, EASY))
    record = side(tmp_path)[0]
    assert record.plan_tokens == 5 and record.tokens == {"lowbit": len(ids(tok, EASY)), "reference": 5}
    assert record.wall_s["plan"] > 0 and record.wall_s["generate"] > 0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"rescue": "sometimes"}, "rescue='sometimes'"),
        ({"plan_tokens": 4}, "plan_tokens=4"),
        ({"rescue": "fallback"}, "rescue='fallback'"),
        ({"check_every": 0}, "check_every=0"),
        ({"loop_min_copies": 2}, "loop_min_copies=2"),
        ({"quant": "rtn-w5g0"}, "rtn-w5g0"),
    ],
)
def test_bad_arguments_fail_before_any_model_loads(args, named):
    with pytest.raises(ModelArgumentError) as error:
        QRHFLM(pretrained="/nonexistent/model", device="cpu", **args)
    message = str(error.value)
    assert named in message and "\n" not in message


def test_reference_with_another_vocabulary_is_refused(tiny_model_dir, tok, tmp_path):
    other = AutoTokenizer.from_pretrained(tiny_model_dir)
    other.add_tokens(["<extra-token>"])
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ModelArgumentError, match="reference=.*vocabulary") as error:
        QRHFLM(pretrained=str(tiny_model_dir), reference=str(tmp_path / "other"), rescue="fallback", device="cpu")
    assert "\n" not in str(error.value)


def test_side_file_lines_are_json(tiny_model_dir, lowbit, tmp_path):
    lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit", check_every=4, min_reasoning_tokens=0)
    generate(lm, ["LOOPANSWER: what is 6*7?", "EASY"])
    lines = (tmp_path / "side.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["task"] == "qr_math" for line in lines)


# ---------------------------------------------------------------------------------------------
# Through lm-eval: the Python API on qr_math, and once the qr-lm-eval command line

PROBLEMS = [
    {"problem": "LOOPANSWER: what is $6 \\cdot 7$?", "answer": "42"},
    {"problem": "LOOPNONE: what is $2 + 3$?", "answer": "5"},
    {"problem": "EASY: what is $1 + 1$?", "answer": "2"},
]


@pytest.fixture(scope="module")
def math_copy(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "math500.jsonl"
    rows = [{**p, "solution": "", "subject": "Algebra", "level": 1, "unique_id": f"t/{i}"} for i, p in enumerate(PROBLEMS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def evaluate(lm, tiny_model_dir, data, output):
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    from lm_eval_tasks import TASKS_DIR

    tracker = EvaluationTracker(output_path=str(output))
    manager = TaskManager(include_defaults=False, include_path=str(TASKS_DIR),
                          metadata={"qr_data": str(data), "pretrained": str(tiny_model_dir)})
    results = simple_evaluate(model=lm, tasks=["qr_math"], task_manager=manager, apply_chat_template=True,
                              gen_kwargs={"max_gen_toks": BUDGET, "do_sample": False}, log_samples=True,
                              evaluation_tracker=tracker)
    tracker.save_results_aggregated(results=results, samples=results["samples"])
    tracker.save_results_samples(task_name="qr_math", samples=results["samples"]["qr_math"])
    return results


def test_rescue_wins_accuracy_back_in_lm_eval_and_the_reader_joins_the_side_file(
    tiny_model_dir, tok, lowbit, math_copy, tmp_path
):
    from qr_leaderboard.figures import summarize
    from qr_metrics.measured import measure_run
    from qr_metrics.runs import read_run

    off = evaluate(qr_hf(tiny_model_dir, lowbit, tmp_path / "off"), tiny_model_dir, math_copy, tmp_path / "off")
    on_lm = qr_hf(tiny_model_dir, lowbit, tmp_path, rescue="commit", check_every=4, min_reasoning_tokens=0)
    on = evaluate(on_lm, tiny_model_dir, math_copy, tmp_path / "on")
    assert off["results"]["qr_math"]["acc,none"] == pytest.approx(1 / 3)
    assert off["results"]["qr_math"]["unclosed,none"] == pytest.approx(2 / 3)
    assert on["results"]["qr_math"]["acc,none"] == 1.0
    assert on["results"]["qr_math"]["unclosed,none"] == 0.0

    # A model object leaves no sidecar= in the logged model_args: put the file where the reader looks.
    (results_file,) = (tmp_path / "on").rglob("results_*.json")
    (results_file.parent / "qr_sidecar.jsonl").write_bytes((tmp_path / "side.jsonl").read_bytes())
    run = read_run(tmp_path / "on")
    assert all(s.side is not None for s in run.samples)
    summary = summarize(measure_run(run, progress=False))["qr_math"]
    records = side(tmp_path)
    saved = sum(BUDGET - records[d].completion_tokens for d in (0, 1))
    assert summary["rescue"] == {"rescued": 2, "committed": 2, "fell_back": 0, "tokens_saved": saved}
    assert summary["accuracy"] == 1.0
    assert summary["completion_tokens"]["max"] == max(r.completion_tokens for r in records.values())


def test_qr_lm_eval_cli_runs_qr_hf_with_rescue_and_planning(tiny_model_dir, math_copy, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    sidecar = tmp_path / "side.jsonl"
    model_args = (f"pretrained={tiny_model_dir},dtype=float32,reference={tiny_model_dir},"
                  f"rescue=commit_then_fallback,plan_tokens=4,min_reasoning_tokens=8,answer_tokens=6,sidecar={sidecar}")
    command = [
        sys.executable, "-c", "from qr_adapters.lm_eval_entry import main; main()",
        "--model", "qr-hf", "--model_args", model_args, "--device", "cpu", "--tasks", "qr_math",
        "--apply_chat_template", "--gen_kwargs", "max_gen_toks=24,do_sample=False",
        "--metadata", json.dumps({"qr_data": str(math_copy)}), "--log_samples",
        "--output_path", str(tmp_path / "out"), "--batch_size", "3",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [SideRecord.from_json(json.loads(line)) for line in sidecar.read_text().splitlines()]
    assert len(records) == len(PROBLEMS)
    # Random weights never close their reasoning: every trace is rescued at the budget, and
    # with no answer written, handed to the reference for a short answer.
    for record in records:
        assert record.plan_tokens == 4 and record.tokens["reference"] == 4 + 6
        assert [(e.kind, e.trigger) for e in record.rescue] in ([("fallback", "length")], [("fallback", "loop")])
    analyzed = subprocess.run(
        [sys.executable, "-m", "qr_leaderboard.cli", "analyze", str(tmp_path / "out"), "--json", "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    assert json.loads(analyzed.stdout)["qr_math"]["rescue"]["fell_back"] == len(PROBLEMS)


def test_qr_lm_eval_reports_a_bad_model_argument_in_one_line(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "from qr_adapters.lm_eval_entry import main; main()", "--model", "qr-hf",
         "--model_args", f"pretrained={tiny_model_dir},rescue=sometimes", "--tasks", "qr_math"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("qr-lm-eval: bad model argument: rescue='sometimes'")
    assert "Traceback" not in done.stderr
