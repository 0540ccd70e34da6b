"""``qr-eval convert``: each shape users have, by hand and on the real fixtures, and the README's
commands on ``../shared/fixtures/`` as a user pastes them."""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from qr_leaderboard.cli import build_parser, main
from qr_leaderboard.cli.common import read_runs

ROOT = Path(__file__).resolve().parents[2]


def cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # a usage error, from argparse
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def converted(capsys, source: Path, *flags, out: Path | None = None) -> list[dict]:
    out = out or source.parent / "out.jsonl"  # (the real fixtures are read-only: give ``out``)
    code, _, err = cli(capsys, "convert", source, "--out", out, "--quiet", *flags)
    assert code == 0, err
    return lines(out)


def analyzed(capsys, traces: Path) -> tuple[dict, dict]:
    """(per-task summary, per-sample records by doc_id) of ``qr-eval analyze``."""
    per_sample = traces.parent / "per_sample.jsonl"
    code, out, err = cli(capsys, "analyze", traces, "--json", "--quiet", "--per-sample", per_sample)
    assert code == 0, err
    return json.loads(out), {(r["doc_id"], r["repeat"]): r for r in lines(per_sample)}


# ----------------------------------------------------------------------------- lm-eval samples


def test_lm_eval_samples_given_alone(tmp_path, capsys):
    def sample(doc_id, texts):
        return {
            "doc_id": doc_id, "doc": {"problem": f"{doc_id}+2"}, "target": str(doc_id + 2),
            "arguments": {"gen_args_0": {"arg_0": f"{doc_id}+2?<think>\n", "arg_1": {"until": [], "max_gen_toks": 64}}},
            "resps": [texts], "filtered_resps": [texts[0]], "prompt_hash": "h", "exact_match": 1.0,
        }  # fmt: skip

    source = tmp_path / "samples_qr_math_2026-11-22T10-00-00.123.jsonl"
    rows = [sample(0, ["add</think>\\boxed{2}", "add again</think>\\boxed{3}"]), sample(1, ["so</think>\\boxed{3}"])]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = converted(capsys, source)
    assert records == [
        {"task": "qr_math", "doc_id": 0, "repeat": 0, "prompt": "0+2?<think>\n", "completion": "add</think>\\boxed{2}",
         "gold": "2", "max_gen_toks": 64},
        {"task": "qr_math", "doc_id": 0, "repeat": 1, "prompt": "0+2?<think>\n", "completion": "add again</think>\\boxed{3}",
         "gold": "2", "max_gen_toks": 64},
        {"task": "qr_math", "doc_id": 1, "repeat": 0, "prompt": "1+2?<think>\n", "completion": "so</think>\\boxed{3}",
         "gold": "3", "max_gen_toks": 64},
    ]  # fmt: skip
    summary, _ = analyzed(capsys, tmp_path / "out.jsonl")
    assert summary["qr_math"]["n"] == 3 and summary["qr_math"]["accuracy"] == pytest.approx(2 / 3)
    assert converted(capsys, source, "--task", "math")[0]["task"] == "math"  # --task wins


# ----------------------------------------------------------------------------- generations


def test_generations_json_is_graded_against_gold_not_the_publishers_metrics(tmp_path, capsys):
    items = [
        {"full_prompt": "2+2?<think>\n", "generated_text": "two and two</think>\\boxed{4}", "gold": ["\\boxed{4}"],
         "metrics": {"extractive_match": 0.0}},
        {"full_prompt": "3+3?<think>\n", "generated_text": "\\boxed{6} wait wait wait", "gold": ["\\boxed{6}"],
         "metrics": {"extractive_match": 1.0}},
    ]  # fmt: skip
    source = tmp_path / "gptq-w4g128_MATH-500.json"
    source.write_text(json.dumps(items))
    records = converted(capsys, source, "--task", "MATH-500")
    assert records == [
        {"task": "MATH-500", "doc_id": i, "repeat": 0, "prompt": item["full_prompt"],
         "completion": item["generated_text"], "gold": item["gold"]}
        for i, item in enumerate(items)
    ]  # fmt: skip
    summary, per_sample = analyzed(capsys, tmp_path / "out.jsonl")
    # the publisher scored the unclosed trace right; qr-eval never grades inside one
    assert summary["MATH-500"]["accuracy"] == 1 / 2
    assert per_sample[(1, 0)]["flags"]["unclosed"] and not per_sample[(1, 0)]["correct"]


def test_generations_with_several_texts_are_repeats(tmp_path, capsys):
    source = tmp_path / "g.jsonl"
    source.write_text(json.dumps({"task": "t", "generated_text": ["a</think>1", "b</think>2"], "gold": "1"}) + "\n")
    records = converted(capsys, source)
    assert [(r["task"], r["doc_id"], r["repeat"], r["completion"]) for r in records] == [
        ("t", 0, 0, "a</think>1"), ("t", 0, 1, "b</think>2")
    ]  # fmt: skip


# ----------------------------------------------------------------------------- per-sample CSV


def test_per_sample_csv_with_the_publishers_columns(tmp_path, capsys):
    source = tmp_path / "awq-w3g128_MATH-500.csv"
    source.write_text(
        "idx,model,dataset,is_correct,word_count,wait_count\n"
        "0,R1,MATH-500,True,3813,56\n"
        "1,R1,MATH-500,False,1237,2\n"
    )
    records = converted(capsys, source)
    assert records == [
        {"task": "MATH-500", "doc_id": 0, "repeat": 0, "correct": True, "counts": {"completion_words": 3813}},
        {"task": "MATH-500", "doc_id": 1, "repeat": 0, "correct": False, "counts": {"completion_words": 1237}},
    ]
    summary, _ = analyzed(capsys, tmp_path / "out.jsonl")
    assert summary["MATH-500"]["accuracy"] == 0.5 and summary["MATH-500"]["completion_words"]["mean"] == 2525
    assert "words" not in summary["MATH-500"]  # a count of the whole completion is not of the reasoning


def test_per_sample_csv_with_other_column_names_and_unknown_correctness(tmp_path, capsys):
    source = tmp_path / "scores.csv"
    source.write_text("\ufeffdoc_id,words,correct\nq1,5,1\nq2,7,\n3,9,no\n")  # a spreadsheet's byte-order mark
    records = converted(capsys, source, "--task", "aime")
    assert records == [
        {"task": "aime", "doc_id": "q1", "repeat": 0, "correct": True, "counts": {"completion_words": 5}},
        {"task": "aime", "doc_id": "q2", "repeat": 0, "counts": {"completion_words": 7}},
        {"task": "aime", "doc_id": 3, "repeat": 0, "correct": False, "counts": {"completion_words": 9}},
    ]


# ----------------------------------------------------------------------------- chat logs


def test_chat_logs_with_reasoning_content(tmp_path, capsys):
    def message(content, reasoning=None):
        return {"role": "assistant", "content": content, **({"reasoning_content": reasoning} if reasoning else {})}

    rows = [
        # a chat completion, as the OpenAI client returns it (vLLM's reasoning parser, DeepSeek's API)
        {"id": "c1", "object": "chat.completion",
         "choices": [{"index": 0, "message": message("\\boxed{4}", "two plus two"), "finish_reason": "stop"}],
         "usage": {"completion_tokens": 9}},
        # a Batch API output line whose budget ran out inside the reasoning (content null)
        {"custom_id": "q7", "response": {"status_code": 200, "body": {
            "choices": [{"message": message(None, "loop loop loop"), "finish_reason": "length"}]}}},
        # a logged conversation without a reasoning parser: the tags are in the content
        {"doc_id": 3, "gold": "4", "messages": [{"role": "user", "content": "2+2?"}, message("<think>hm</think>\\boxed{4}")]},
        # two choices (n=2) of a logged request/response pair, one in content parts
        {"doc_id": 4, "request": {"messages": []}, "response": {"choices": [
            {"message": message("\\boxed{1}", "one"), "finish_reason": "stop"},
            {"message": message([{"type": "text", "text": "\\boxed{2}"}], "two"), "finish_reason": "stop"}]}},
    ]  # fmt: skip
    source = tmp_path / "chat.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = converted(capsys, source, "--task", "qr_math")
    assert [(r["doc_id"], r["repeat"], r["completion"], r.get("finish_reason")) for r in records] == [
        (0, 0, "<think>\ntwo plus two\n</think>\n\n\\boxed{4}", "stop"),
        ("q7", 0, "<think>\nloop loop loop", "length"),
        (3, 0, "<think>hm</think>\\boxed{4}", None),
        (4, 0, "<think>\none\n</think>\n\n\\boxed{1}", "stop"),
        (4, 1, "<think>\ntwo\n</think>\n\n\\boxed{2}", "stop"),
    ]  # fmt: skip
    assert records[2]["gold"] == "4" and "counts" not in records[0]  # usage is not copied
    _, per_sample = analyzed(capsys, tmp_path / "out.jsonl")
    assert per_sample[(0, 0)]["counts"]["words"] == 3  # the reasoning, without the answer
    assert per_sample[("q7", 0)]["flags"]["unclosed"] and per_sample[("q7", 0)]["flags"]["budget_exhausted"]
    assert per_sample[(3, 0)]["correct"] is True


def test_a_json_list_of_chat_completions_and_a_message_without_reasoning(tmp_path, capsys):
    source = tmp_path / "chat.json"
    source.write_text(json.dumps([{"task": "t", "choices": [{"message": {"role": "assistant", "content": "4"}}]}]))
    (record,) = converted(capsys, source)
    assert record["completion"] == "<think>\n\n</think>\n\n4"  # no reasoning: all answer


# ----------------------------------------------------------------------------- output and errors


def test_out_dash_writes_the_records_to_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.csv").write_text("idx,is_correct,word_count\n0,True,3\n")
    code, out, err = cli(capsys, "convert", "s.csv", "--task", "t", "--out", "-")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"task": "t", "doc_id": 0, "repeat": 0, "correct": True, "counts": {"completion_words": 3}}
    ]
    assert not (tmp_path / "-").exists()
    assert "s.csv (per-sample CSV): 1 records, task t -> -" in err


def _bad(root: Path) -> dict[str, tuple[list, list[str]]]:
    """case -> (argv, words the one-line error must hold)."""
    files = {
        "unknown.jsonl": '{"foo": 1}\n',
        "traces.jsonl": '{"task": "t", "doc_id": 0, "completion": "x"}\n',
        "gen.json": json.dumps([{"generated_text": "a"}, {"generated_text": 5}]),
        "gen_obj.json": json.dumps({"generated_text": "a"}),
        "chat.jsonl": '{"choices": [{"message": {"role": "assistant"}}]}\n',
        "samples.jsonl": '{"doc_id": 0, "resps": [["a"]]}\n',
        "words.csv": "idx,is_correct,word_count\n0,True,3\n1,True,12.5\n",
        "huge.csv": "idx,is_correct,word_count\n0,True," + "9" * 5000 + "\n",
        "digits.csv": "idx,is_correct,word_count\n\u00b2,True,\u00b2\n",
        "truth.csv": "idx,is_correct,word_count\n0,maybe,3\n",
        "columns.csv": "idx,is_correct,tokens\n0,True,3\n",
        "twice.csv": "idx,word_count\n0,3\n0,4\n",
        "good.csv": "idx,dataset,word_count\n0,t,3\n",
        "empty.csv": "idx,word_count\n",
        "notes.txt": "x",
    }  # fmt: skip
    for name, text in files.items():
        (root / name).write_text(text)
    out = ["--out", root / "out.jsonl"]
    return {
        "unknown shape": (["convert", root / "unknown.jsonl", *out], ["unknown shape", "foo"]),
        "generic traces": (["convert", root / "traces.jsonl", *out], ["already"]),
        "no task": (["convert", root / "gen.json", *out], ["--task"]),
        "bad item": (["convert", root / "gen.json", "--task", "t", *out], ["[1].generated_text"]),
        "not a list": (["convert", root / "gen_obj.json", "--task", "t", *out], ["JSON list"]),
        "no content": (["convert", root / "chat.jsonl", "--task", "t", *out], ["chat.jsonl:1:", "content"]),
        "lm-eval no task": (["convert", root / "samples.jsonl", *out], ["--task"]),
        "word count": (["convert", root / "words.csv", "--task", "t", *out], ["words.csv:3:", "word_count", "12.5"]),
        "huge count": (["convert", root / "huge.csv", "--task", "t", *out], ["huge.csv:2:", "2**53"]),
        "not ASCII digits": (["convert", root / "digits.csv", "--task", "t", *out], ["digits.csv:2:", "word_count"]),
        "correctness": (["convert", root / "truth.csv", "--task", "t", *out], ["truth.csv:2:", "is_correct", "maybe"]),
        "no word column": (["convert", root / "columns.csv", "--task", "t", *out], ["word_count or words"]),
        "duplicate": (["convert", root / "twice.csv", "--task", "t", *out], ["records 1 and 2"]),
        "no record": (["convert", root / "empty.csv", "--task", "t", *out], ["no record"]),
        "suffix": (["convert", root / "notes.txt", *out], [".csv, .json or .jsonl"]),
        "missing input": (["convert", root / "nope.json", *out], ["nope.json", "no such file"]),
        "out is the input": (["convert", root / "words.csv", "--out", root / "words.csv"], ["--out", "input"]),
        "out directory missing": (["convert", root / "good.csv", "--out", root / "no" / "x.jsonl"], ["no such directory"]),
        "out missing": (["convert", root / "good.csv"], ["--out", "required"]),
    }  # fmt: skip


@pytest.mark.parametrize("case", [
    "unknown shape", "generic traces", "no task", "bad item", "not a list", "no content", "lm-eval no task",
    "word count", "huge count", "not ASCII digits", "correctness", "no word column", "duplicate", "no record", "suffix", "missing input",
    "out is the input", "out directory missing", "out missing",
])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, case):
    argv, words = _bad(tmp_path)[case]
    before = (tmp_path / "words.csv").read_text()
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "no").exists()
    assert (tmp_path / "words.csv").read_text() == before


# ----------------------------------------------------------------------------- the real fixtures


def test_real_generations_convert_item_for_item(fixtures_dir, tmp_path, capsys):
    for source in sorted((fixtures_dir / "generations").glob("*.json")):
        task = source.stem.rsplit("_", 1)[1]
        records = converted(capsys, source, "--task", task, out=tmp_path / "out.jsonl")
        items = json.loads(source.read_text())
        assert len(records) == len(items) > 0
        for i, (record, item) in enumerate(zip(records, items)):
            assert record == {"task": task, "doc_id": i, "repeat": 0, "prompt": item["full_prompt"],
                              "completion": item["generated_text"], "gold": item["gold"]}  # fmt: skip


def test_real_per_sample_files_give_the_published_facts(fixtures_dir, tmp_path, capsys):
    for source in sorted((fixtures_dir / "per_sample").glob("*.csv")):
        records = converted(capsys, source, out=tmp_path / "out.jsonl")  # the task comes from the dataset column
        with source.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["task"] for r in records] == [row["dataset"] for row in rows]
        assert [r["counts"]["completion_words"] for r in records] == [int(row["word_count"]) for row in rows]
        assert [r["correct"] for r in records] == [row["is_correct"] == "True" for row in rows]
        if source.stem == "bf16_MATH-500":  # the fixtures' README: 85.0 %, mean 2983 words
            assert sum(r["correct"] for r in records) / len(records) == 0.85
            assert round(sum(r["counts"]["completion_words"] for r in records) / len(records)) == 2983


def test_a_per_sample_word_count_is_of_the_whole_completion(fixtures_dir, tmp_path, capsys):
    """The one configuration published both ways: its CSV's word_count is the completion's
    words as analyze counts them from the generations (completion_words), not the reasoning's."""
    name = "gptq-w4g128_AIME-90"
    counted = converted(capsys, fixtures_dir / "per_sample" / f"{name}.csv", out=tmp_path / "csv.jsonl")
    converted(capsys, fixtures_dir / "generations" / f"{name}.json", "--task", "AIME-90", out=tmp_path / "text.jsonl")
    _, measured = analyzed(capsys, tmp_path / "text.jsonl")
    assert [r["counts"]["completion_words"] for r in counted] == [measured[(i, 0)]["counts"]["completion_words"]
                                                                 for i in range(len(counted))]
    assert any(measured[(i, 0)]["counts"]["words"] < r["counts"]["completion_words"] for i, r in enumerate(counted))


# ----------------------------------------------------------------------------- the README


def test_readme_documents_convert_with_its_field_mapping():
    text = (ROOT / "README.md").read_text()
    section = text.split("## `qr-eval convert`", 1)[1].split("\n## ", 1)[0]
    for field in ("samples_<task>_<timestamp>.jsonl", "generated_text", "full_prompt", "word_count", "is_correct",
                  "reasoning_content", "custom_id", "finish_reason", "--task"):  # fmt: skip
        assert field in section, field


def test_readme_commands_on_the_fixtures_run_as_pasted(fixtures_dir, tmp_path, monkeypatch):
    """Every bash block of the README that uses ../shared/fixtures, pasted in order into one
    shell in a checkout beside ``shared/``: each qr-eval call is recorded; then the converts
    run, and every other call must parse and read its runs (the figures are other tests')."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    pasted = [block for block in blocks if "../shared/fixtures" in block or "$F" in block]
    assert len(pasted) >= 6
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (tmp_path / "shared").symlink_to(fixtures_dir.parents[1])
    record = "qr-eval() { printf '%q ' \"$@\" >> calls; echo >> calls; }\n"
    subprocess.run(["bash", "-ec", record + "\n".join(pasted)], cwd=checkout, check=True)
    calls = [shlex.split(line) for line in (checkout / "calls").read_text().splitlines()]
    assert {"convert", "analyze", "compare", "gate", "select", "replay"} <= {argv[0] for argv in calls}
    monkeypatch.chdir(checkout)
    for argv in calls:
        if argv[0] == "convert":
            assert main([*argv, "--quiet"]) == 0, argv
            continue
        args = build_parser().parse_args(argv)
        runs = [getattr(args, name, None) for name in ("run", "baseline", "candidate", "candidates", "runs")]
        runs = [path for value in runs if value for path in (value if isinstance(value, list) else [value])]
        assert len(read_runs(args, runs)) == len(runs) > 0, argv
