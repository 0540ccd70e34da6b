"""The run reader: generic traces, lm-eval directories and every error path."""

import json

import pytest

from qr_leaderboard.runs import InputError, read_run


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def record(**fields):
    return json.dumps({"task": "t", "doc_id": 0, "completion": "x</think>\\boxed{1}", **fields})


def test_generic_trace_file(tmp_path):
    path = write_lines(tmp_path / "run.jsonl", [record(doc_id=0), "", record(doc_id=1, repeat=2, correct=True)])
    run = read_run(path)
    assert run.name == "run"
    assert [s.key for s in run.samples] == [("t", "0", 0), ("t", "1", 2)]
    assert run.samples[1].correct is True


def test_trace_directory_with_header(tmp_path):
    write_lines(tmp_path / "traces.jsonl", [record()])
    (tmp_path / "run.json").write_text(json.dumps({"name": "int4", "model": "m", "precision": "int4", "bits": 4}))
    run = read_run(tmp_path)
    assert (run.name, run.model, run.precision, run.bits) == ("int4", "m", "int4", 4)


def test_counts_only_records_are_accepted(tmp_path):
    run = read_run(write_lines(tmp_path / "c.jsonl", [json.dumps({"task": "t", "doc_id": 3, "counts": {"words": 12}})]))
    assert run.samples[0].completion is None and run.samples[0].counts == {"words": 12}


@pytest.mark.parametrize(
    "lines, where",
    [
        ([record(), "{not json"], r"c\.jsonl:2: malformed JSON"),
        ([record(), "[1, 2]"], r"c\.jsonl:2: expected a JSON object"),
        ([json.dumps({"doc_id": 1, "completion": "x"})], r"c\.jsonl:1: field 'task': missing"),
        ([record(), json.dumps({"task": "t", "completion": "x"})], r"c\.jsonl:2: field 'doc_id': missing"),
        ([record(), record()], r"field 'doc_id': duplicate sample"),
        ([record(repeat=-1)], r"c\.jsonl:1: field 'repeat'"),
        ([record(correct="yes")], r"c\.jsonl:1: field 'correct'"),
        ([json.dumps({"task": "t", "doc_id": 1})], r"field 'completion': a record needs a completion or counts"),
        ([json.dumps({"task": "t", "doc_id": 1, "counts": {"words": -1}})], r"field 'counts'"),
    ],
)
def test_bad_trace_records_name_file_line_and_field(tmp_path, lines, where):
    with pytest.raises(InputError, match=where):
        read_run(write_lines(tmp_path / "c.jsonl", lines))


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_run(tmp_path / "nope")


def test_bad_header(tmp_path):
    write_lines(tmp_path / "traces.jsonl", [record()])
    (tmp_path / "run.json").write_text(json.dumps({"nmae": "x"}))
    with pytest.raises(InputError, match="unknown field"):
        read_run(tmp_path)


def make_lm_eval_run(directory, stamp, task="qr_math", responses=(["a</think>\\boxed{2}"],)):
    directory.mkdir(parents=True, exist_ok=True)
    results = {
        "results": {task: {"acc,none": 1.0}},
        "configs": {task: {"generation_kwargs": {"max_gen_toks": 64, "until": []}}},
        "config": {"model": "hf", "model_args": "pretrained=/models/tiny,dtype=float32"},
    }
    (directory / f"results_{stamp}.json").write_text(json.dumps(results))
    sample = {
        "doc_id": 0,
        "doc": {"problem": "1+1"},
        "target": "2",
        "arguments": {"gen_args_0": {"arg_0": "<|Assistant|><think>\n", "arg_1": {}}},
        # lm-eval 0.4.13 (evaluator.py) logs ``[req.resps for req in requests]``: one
        # generate_until request per document, its ``resps`` one text per repeat
        "resps": [[r[0] for r in responses]],
        "filtered_resps": [responses[0][0]],
    }
    (directory / f"samples_{task}_{stamp}.jsonl").write_text(json.dumps(sample) + "\n")


def test_lm_eval_directory(tmp_path):
    make_lm_eval_run(tmp_path / "out" / "models__tiny", "2026-11-22T10-00-00.1")
    run = read_run(tmp_path / "out")
    assert run.model == "/models/tiny" and run.tokenizer == "/models/tiny"
    assert run.generation["qr_math"]["max_gen_toks"] == 64
    (sample,) = run.samples
    assert (sample.task, sample.doc_id, sample.gold, sample.max_gen_toks) == ("qr_math", 0, "2", 64)
    assert sample.prompt.endswith("<think>\n")


def test_lm_eval_repeats_become_separate_samples(tmp_path):
    make_lm_eval_run(tmp_path, "s1", responses=(["a"], ["b"], ["c"]))
    samples = read_run(tmp_path).samples
    assert [(s.repeat, s.completion) for s in samples] == [(0, "a"), (1, "b"), (2, "c")]


def test_several_lm_eval_runs_must_be_chosen_explicitly(tmp_path):
    make_lm_eval_run(tmp_path, "2026-11-22T10-00-00.1")
    make_lm_eval_run(tmp_path, "2026-11-22T11-00-00.1")
    with pytest.raises(InputError, match="holds 2 lm-eval runs"):
        read_run(tmp_path)
    assert read_run(tmp_path, timestamp="2026-11-22T11-00-00.1").source.name == "results_2026-11-22T11-00-00.1.json"
    assert read_run(tmp_path / "results_2026-11-22T10-00-00.1.json").samples
    with pytest.raises(InputError, match="no run with timestamp"):
        read_run(tmp_path, timestamp="nope")


def test_lm_eval_run_without_log_samples(tmp_path):
    make_lm_eval_run(tmp_path, "s1")
    (tmp_path / "samples_qr_math_s1.jsonl").unlink()
    with pytest.raises(InputError, match="--log_samples"):
        read_run(tmp_path)
