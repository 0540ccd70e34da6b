"""The whole qr_suite end to end through lm-eval with a tiny local model on local data.

One lm-eval run over every task (2 documents each), then ``qr-eval analyze`` on its output
directory; the harness and the offline analysis grade hand-made answers identically from
the logged targets; code tasks are refused without --confirm_run_unsafe_code; and
``lm-eval ls tasks`` lists every qr task and group.
"""

from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys

import pytest

from lm_eval_tasks import TASKS_DIR
from qr_metrics.graders import grader_for_task
from qr_metrics.measure import measure
from qr_metrics.pathologies import PATHOLOGIES

MAX_GEN_TOKS = 16
METRICS = ("acc", "reasoning_tokens", "answer_tokens", "completion_tokens", "words", "steps", *PATHOLOGIES)
GROUPS = {
    "qr_suite": ["qr_math", "qr_aime", "qr_gsm8k", "qr_gpqa", "qr_code", "qr_commonsense", "qr_tools"],
    "qr_reasoning": ["qr_math", "qr_aime", "qr_gsm8k", "qr_gpqa"],
    "qr_aime": ["qr_aime24", "qr_aime25"],
    "qr_code": ["qr_humaneval", "qr_mbpp"],
    "qr_commonsense": ["qr_commonsense_qa", "qr_arc_challenge", "qr_strategyqa"],
}
LEAF_TASKS = [
    "qr_math", "qr_aime24", "qr_aime25", "qr_gsm8k", "qr_gpqa", "qr_humaneval", "qr_mbpp",
    "qr_commonsense_qa", "qr_arc_challenge", "qr_strategyqa", "qr_tools",
]  # fmt: skip

_FACTORIAL = {
    "name": "math.factorial",
    "description": "Factorial of a number.",
    "parameters": {
        "type": "dict",
        "properties": {"number": {"type": "integer", "description": "n"}},
        "required": ["number"],
    },
}
_WEATHER = {
    "name": "get_weather",
    "description": "Current weather.",
    "parameters": {
        "type": "dict",
        "properties": {
            "city": {"type": "string", "description": "City"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
        },
        "required": ["city"],
    },
}


def _bfcl_row(row_id: str, functions: list, user: str, ground_truth: list) -> dict:
    """A row with the columns of the llamastack/bfcl_v3 mirror (JSON-encoded fields)."""
    return {
        "id": row_id,
        "test_category": row_id.rsplit("_", 1)[0],
        "language": "python",
        "multi_turn": False,
        "functions": json.dumps(functions),
        "turns": json.dumps([[{"role": "system", "content": "You are a helpful assistant."},
                              {"role": "user", "content": user}]]),
        "ground_truth": json.dumps(ground_truth),
    }  # fmt: skip


def _humaneval_row(i: int, name: str, op: str) -> dict:
    prompt = f'def {name}(a, b):\n    """Return a {op} b."""\n'
    return {
        "task_id": f"HumanEval/{i}",
        "prompt": prompt,
        "canonical_solution": f"    return a {op} b\n",
        "test": f"def check(candidate):\n    assert candidate(6, 3) == 6 {op} 3\n",
        "entry_point": name,
    }


SUITE_DATA = {
    "qr_math": [
        {"problem": "What is $1+1$?", "answer": "2", "solution": "", "subject": "Algebra", "level": 1,
         "unique_id": "test/0.json"},
        {"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}", "solution": "", "subject": "Algebra",
         "level": 1, "unique_id": "test/1.json"},
    ],
    "qr_aime24": [
        {"ID": "2024-I-1", "Problem": "Find $7 \\cdot 11$.", "Solution": "", "Answer": 77},
        {"ID": "2024-I-2", "Problem": "Find $2^{10} - 1000$.", "Solution": "", "Answer": 24},
    ],
    "qr_aime25": [
        {"problem": "Find $12 + 30$.", "answer": "42", "id": "0"},
        {"problem": "Find $10 \\cdot 70$.", "answer": "700", "id": "1"},
    ],
    "qr_gsm8k": [
        {"question": "Tom has 3 apples and buys 1,000 more. How many apples does he have?",
         "answer": "3 + 1000 = <<3+1000=1003>>1003\n#### 1003"},
        {"question": "A pen costs $2. How much do 4 pens cost?", "answer": "2 * 4 = <<2*4=8>>8\n#### 8"},
    ],
    "qr_gpqa": [
        {"Question": "Which particle is a lepton?", "Correct Answer": "electron", "Incorrect Answer 1": "proton",
         "Incorrect Answer 2": "neutron", "Incorrect Answer 3": "pion", "Explanation": ""},
        {"Question": "Which gas is a noble gas?", "Correct Answer": "argon", "Incorrect Answer 1": "nitrogen",
         "Incorrect Answer 2": "oxygen", "Incorrect Answer 3": "chlorine", "Explanation": ""},
    ],
    "qr_humaneval": [_humaneval_row(0, "add", "+"), _humaneval_row(1, "sub", "-")],
    "qr_mbpp": [
        {"task_id": 11, "text": "Write a function to multiply two numbers.", "code": "def mul(a, b):\n    return a * b",
         "test_list": ["assert mul(2, 3) == 6", "assert mul(0, 5) == 0", "assert mul(-1, 4) == -4"],
         "test_setup_code": "", "challenge_test_list": []},
        {"task_id": 12, "text": "Write a function to square a number.", "code": "def square(x):\n    return x * x",
         "test_list": ["assert square(3) == 9", "assert square(0) == 0", "assert square(-2) == 4"],
         "test_setup_code": "import math", "challenge_test_list": []},
    ],
    "qr_commonsense_qa": [
        {"id": "cqa0", "question": "Where do fish live?", "question_concept": "fish",
         "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["desert", "water", "sky", "car", "house"]},
         "answerKey": "B"},
        {"id": "cqa1", "question": "What do you use to cut paper?", "question_concept": "paper",
         "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["spoon", "pillow", "glue", "scissors", "cup"]},
         "answerKey": "D"},
    ],
    "qr_arc_challenge": [
        {"id": "arc0", "question": "What melts ice fastest?",
         "choices": {"text": ["cold air", "shade", "heat", "wind"], "label": ["1", "2", "3", "4"]}, "answerKey": "3"},
        {"id": "arc1", "question": "Which is a mammal?",
         "choices": {"text": ["whale", "shark", "trout"], "label": ["A", "B", "C"]}, "answerKey": "A"},
    ],
    "qr_strategyqa": [
        {"qid": "s0", "term": "Ice", "description": "", "question": "Does ice float on water?", "answer": True,
         "facts": [], "decomposition": []},
        {"qid": "s1", "term": "Sun", "description": "", "question": "Is the Sun a planet?", "answer": False,
         "facts": [], "decomposition": []},
    ],
    "qr_tools": [
        _bfcl_row("simple_0", [_FACTORIAL], "What is 5 factorial?", [{"math.factorial": {"number": [5]}}]),
        _bfcl_row("parallel_0", [_FACTORIAL], "5! and 6!?",
                  [{"math.factorial": {"number": [5]}}, {"math.factorial": {"number": [6]}}]),
        _bfcl_row("live_multiple_1-0-0", [_FACTORIAL, _WEATHER], "Weather in Paris, in celsius?",
                  [{"get_weather": {"city": ["Paris", "Paris, France"], "unit": ["celsius", ""]}}]),
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    """A qr_data directory: ``<task>.jsonl`` per task, with the hub datasets' columns."""
    directory = tmp_path_factory.mktemp("suite_data")
    for task, rows in SUITE_DATA.items():
        (directory / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def _manager(suite_dir, **metadata):
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_defaults=False, include_path=str(TASKS_DIR), metadata={"qr_data": str(suite_dir), **metadata}
    )


def _evaluate(tiny_model_dir, suite_dir, tasks, **kwargs):
    from lm_eval import simple_evaluate

    return simple_evaluate(
        model="hf",
        model_args={"pretrained": str(tiny_model_dir), "dtype": "float32", "device": "cpu"},
        tasks=tasks,
        task_manager=_manager(suite_dir, pretrained=str(tiny_model_dir)),
        apply_chat_template=True,
        gen_kwargs={"max_gen_toks": MAX_GEN_TOKS, "do_sample": False},
        batch_size=8,
        **kwargs,
    )


@pytest.fixture(scope="module")
def suite_run(tiny_model_dir, suite_dir, tmp_path_factory):
    """lm-eval over qr_suite, saved as the CLI saves it (results_*.json + samples_*.jsonl)."""
    from lm_eval.loggers import EvaluationTracker

    out_dir = tmp_path_factory.mktemp("suite_run")
    tracker = EvaluationTracker(output_path=str(out_dir))
    out = _evaluate(
        tiny_model_dir, suite_dir, ["qr_suite"], limit=2, log_samples=True, confirm_run_unsafe_code=True,
        evaluation_tracker=tracker,
    )  # fmt: skip
    samples = out.pop("samples")
    tracker.save_results_aggregated(results=out, samples=samples)
    for task in out["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return out, samples, out_dir


def test_suite_reports_every_metric_per_task_and_group(suite_run):
    out, samples, _ = suite_run
    results = out["results"]
    for name in [*LEAF_TASKS, "qr_suite", "qr_aime", "qr_code", "qr_commonsense"]:
        for metric in METRICS:
            assert f"{metric},none" in results[name], (name, metric)
            assert f"{metric}_stderr,none" in results[name], (name, metric)
    assert sorted(samples) == sorted(LEAF_TASKS)
    for task in LEAF_TASKS:
        assert len(samples[task]) == 2, task
        for metric in METRICS:  # each leaf task's figure is the mean over its samples
            mean = sum(sample[metric] for sample in samples[task]) / len(samples[task])
            assert results[task][f"{metric},none"] == pytest.approx(mean), (task, metric)
        for sample in samples[task]:
            # Random weights never close </think>: every trace runs out of budget unclosed.
            assert sample["unclosed"] == 1.0 and sample["acc"] == 0.0 and sample["no_answer"] == 1.0
            assert sample["reasoning_tokens"] == sample["completion_tokens"] >= MAX_GEN_TOKS - 2
    # Group averages weigh every leaf task the same.
    for metric in ("words", "reasoning_tokens", "unclosed"):
        leaf_mean = sum(results[t][f"{metric},none"] for t in LEAF_TASKS) / len(LEAF_TASKS)
        assert results["qr_suite"][f"{metric},none"] == pytest.approx(leaf_mean)
        code_mean = (results["qr_humaneval"][f"{metric},none"] + results["qr_mbpp"][f"{metric},none"]) / 2
        assert results["qr_code"][f"{metric},none"] == pytest.approx(code_mean)
    assert out["configs"]["qr_humaneval"]["unsafe_code"] is True
    assert all(out["configs"][t]["generation_kwargs"]["until"] == [] for t in LEAF_TASKS)


def test_analyze_a_suite_run(suite_run, tmp_path, capsys, monkeypatch):
    from qr_leaderboard.cli import main

    _, samples, out_dir = suite_run
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")  # re-grading code runs it, outside lm-eval too
    per_sample = tmp_path / "per_sample.jsonl"
    assert main(["analyze", str(out_dir), "--json", "--quiet", "--per-sample", str(per_sample)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary) == sorted(LEAF_TASKS)
    for task in LEAF_TASKS:
        assert summary[task]["n"] == 2 and summary[task]["accuracy"] == 0.0
        assert summary[task]["counts"]["unclosed"] == 2
    records = {(r["task"], r["doc_id"]): r for r in map(json.loads, per_sample.read_text().splitlines())}
    for task in LEAF_TASKS:
        for logged in samples[task]:
            record = records[(task, logged["doc_id"])]
            for unit in ("reasoning_tokens", "completion_tokens", "words", "steps"):
                assert record["counts"][unit] == logged[unit], (task, unit)
            assert float(record["correct"]) == logged["acc"]
            for flag in ("unclosed", "no_answer", "loop", "budget_exhausted"):
                assert float(record["flags"][flag]) == logged[flag], (task, flag)


def test_compare_a_suite_run_per_task_and_overall(suite_run, tmp_path, capsys):
    """Candidate = the suite run with every reasoning twice as long: the per-task ratios, the
    pooled overall ratio and the macro ratio over the suite are all 2."""
    from qr_leaderboard.cli import main

    _, _, out_dir = suite_run
    candidate = tmp_path / "candidate"
    shutil.copytree(out_dir, candidate)
    for path in candidate.rglob("samples_*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            row["resps"] = [[r[0] + " " + r[0]] for r in row["resps"]]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["compare", str(out_dir), str(candidate), "--unit", "words", "--json", "--quiet",
            "--n-resamples", "500", "--confirm-run-unsafe-code"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["tasks"]) == sorted(LEAF_TASKS)
    for task in LEAF_TASKS:
        assert result["tasks"][task]["ratio_of_means"]["estimate"] == pytest.approx(2.0), task
    assert result["overall"]["ratio_of_means"]["estimate"] == pytest.approx(2.0)
    assert result["overall"]["macro_ratio"]["estimate"] == pytest.approx(2.0)
    assert result["n_pairs"] == 2 * len(LEAF_TASKS)


def _correct_answer(task: str, doc: dict, gold) -> str:
    """A hand-written correct answer for one document of ``task``."""
    if task == "qr_humaneval":
        return f"```python\n{doc['prompt']}{doc['canonical_solution']}```"
    if task == "qr_mbpp":
        return f"Here it is:\n```python\n{doc['code']}\n```"
    if task == "qr_tools":
        ((name, arguments),) = json.loads(gold)["ground_truth"][0].items()
        call = {"name": name, "arguments": {k: v[0] for k, v in arguments.items() if v[0] != ""}}
        return f"```json\n{json.dumps(call)}\n```"
    return f"So the answer is \\boxed{{{gold}}}."


_WRONG_ANSWERS = {
    "qr_humaneval": "```python\ndef add(a, b):\n    return 0\ndef sub(a, b):\n    return 0\n```",
    "qr_mbpp": "```python\ndef mul(a, b):\n    return 0\ndef square(x):\n    return 0\n```",
    "qr_tools": '```json\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n```',
    "qr_strategyqa": "\\boxed{maybe}",
}


def test_harness_and_analyze_grade_alike_from_logged_targets(suite_dir, monkeypatch):
    """The target lm-eval logs is all ``qr-eval analyze`` needs to grade as the harness did."""
    from lm_eval.api.task import ConfigurableTask

    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)  # the harness needs no more than lm-eval's flag
    tasks = {t.config.task: t for t in _manager(suite_dir).load(["qr_suite"])["tasks"].values()}
    assert sorted(tasks) == sorted(LEAF_TASKS) and all(isinstance(t, ConfigurableTask) for t in tasks.values())
    for name, task in tasks.items():
        docs = list(task.eval_docs)
        assert len(docs) == 2, name  # qr_tools keeps the single-call rows only
        for doc in docs:
            gold = task.doc_to_target(doc)
            logged_gold = json.loads(json.dumps(gold))  # as it comes back from samples_*.jsonl
            for answer, expected in ((_correct_answer(name, doc, gold), 1.0), (_WRONG_ANSWERS.get(name, "\\boxed{Z}"), 0.0)):
                completion = f"Let me think.\n</think>\n\n{answer}"
                harness = task.process_results(doc, [completion])
                with monkeypatch.context() as env:
                    env.setenv("HF_ALLOW_CODE_EVAL", "1")  # outside lm-eval, running code needs this
                    offline = measure(completion, gold=logged_gold, grader=grader_for_task(name))
                assert harness["acc"] == expected, (name, answer)
                assert float(offline.correct) == harness["acc"], (name, answer)
                assert float(offline.flags["no_answer"]) == harness["no_answer"], (name, answer)
                unclosed = task.process_results(doc, [f"Let me think.\n{answer}"])
                assert unclosed["acc"] == 0.0 and unclosed["no_answer"] == 1.0, name


def test_code_tasks_refuse_without_confirmation(tiny_model_dir, suite_dir):
    with pytest.raises(ValueError, match="confirm_run_unsafe_code"):
        _evaluate(tiny_model_dir, suite_dir, ["qr_code"], limit=1)


_LS_WITHOUT_BUILTIN_TASKS = """
import sys
import lm_eval.tasks
from lm_eval.__main__ import cli_evaluate

class OnlyIncluded(lm_eval.tasks.TaskManager):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "include_defaults": False})

lm_eval.tasks.TaskManager = OnlyIncluded
sys.argv = ["lm-eval", *sys.argv[1:]]
cli_evaluate()
"""


def test_lm_eval_lists_every_task_and_group():
    """``lm-eval ls tasks --include_path DIR`` (lm-eval 0.4.13's replacement for
    ``--tasks list``) through lm-eval's own CLI, leaving out lm-eval's ~13k built-in tasks,
    whose listing alone takes about a minute."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-c", _LS_WITHOUT_BUILTIN_TASKS, "ls", "tasks", "--include_path", str(TASKS_DIR)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = {cell.strip() for line in done.stdout.splitlines() for cell in line.split("|")}
    for name in [*LEAF_TASKS, *GROUPS]:
        assert name in listed, name
