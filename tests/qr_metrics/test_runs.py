"""The run reader: generic traces, lm-eval directories and every error path."""

import json

import pytest

from helpers.run_dirs import make_lm_eval_run
from qr_metrics.runs import InputError, read_run


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
    make_lm_eval_run(tmp_path, "2026-11-22T10-00-00.1", responses=(["ten</think>\\boxed{2}"],))
    make_lm_eval_run(tmp_path, "2026-11-22T11-00-00.1", responses=(["eleven</think>\\boxed{2}"],))
    with pytest.raises(InputError, match="holds 2 lm-eval runs"):
        read_run(tmp_path)
    assert read_run(tmp_path, timestamp="2026-11-22T11-00-00.1").source.name == "results_2026-11-22T11-00-00.1.json"
    (sample,) = read_run(tmp_path / "results_2026-11-22T10-00-00.1.json").samples
    assert (sample.task, sample.doc_id, sample.completion) == ("qr_math", 0, "ten</think>\\boxed{2}")
    with pytest.raises(InputError, match="no run with timestamp"):
        read_run(tmp_path, timestamp="nope")


def test_lm_eval_run_without_log_samples(tmp_path):
    make_lm_eval_run(tmp_path, "s1")
    (tmp_path / "samples_qr_math_s1.jsonl").unlink()
    with pytest.raises(InputError, match="--log_samples"):
        read_run(tmp_path)


# ----------------------------------------------------------------------------- bounds and ids


@pytest.mark.parametrize(
    "fields, where",
    [
        ({"counts": {"words": 10**400}}, r"c\.jsonl:1: field 'counts': 'words' must be an integer in \[0, 2\*\*53\]"),
        ({"counts": {"words": 2**53 + 1}}, r"c\.jsonl:1: field 'counts': 'words' must be"),
        ({"max_gen_toks": 10**400}, r"c\.jsonl:1: field 'max_gen_toks': must be an integer in \[0, 2\*\*53\]"),
        ({"repeat": 10**400}, r"c\.jsonl:1: field 'repeat': must be an integer"),
    ],
)
def test_counts_too_large_for_a_float_are_input_errors(tmp_path, fields, where):
    with pytest.raises(InputError, match=where):
        read_run(write_lines(tmp_path / "c.jsonl", [record(**fields)]))
    assert read_run(write_lines(tmp_path / "ok.jsonl", [record(counts={"words": 2**53})])).samples


def test_a_count_must_say_what_it_counted(tmp_path):
    with pytest.raises(InputError, match=r"c\.jsonl:1: field 'counts': unknown count 'tokens'; known: reasoning_tokens, "):
        read_run(write_lines(tmp_path / "c.jsonl", [record(counts={"tokens": 10})]))
    assert read_run(write_lines(tmp_path / "ok.jsonl", [record(counts={"completion_words": 10})])).samples


@pytest.mark.parametrize("verb", ["analyze", "compare", "leaderboard", "replay"])
def test_a_huge_count_is_one_line_exit_2_in_every_verb(tmp_path, capsys, verb):
    from qr_leaderboard.cli import main

    ok = write_lines(tmp_path / "ok.jsonl", [json.dumps({"task": "t", "doc_id": 0, "counts": {"words": 5}})])
    big = write_lines(tmp_path / "big.jsonl", [json.dumps({"task": "t", "doc_id": 0, "counts": {"words": 10**400}})])
    argv = {"analyze": [big], "replay": [big], "compare": [ok, big], "leaderboard": [ok, big, "--out", tmp_path / "o"]}
    code = main([verb, *map(str, argv[verb]), "--quiet", *(["--unit", "words"] if verb in ("compare", "leaderboard") else [])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "big.jsonl:1: field 'counts'" in err


def test_run_json_numbers_too_large_for_a_float_are_refused(tmp_path):
    write_lines(tmp_path / "traces.jsonl", [record()])
    (tmp_path / "run.json").write_text('{"bits": 1' + "0" * 400 + "}")
    with pytest.raises(InputError, match="field 'bits': must be a number"):
        read_run(tmp_path)


def test_side_file_counts_are_bounded(tmp_path):
    make_lm_eval_run(tmp_path, "s1")
    side = {"task": "qr_math", "doc_id": 0, "repeat": 0, "prompt_hash": "", "max_gen_toks": 64, "completion_tokens": 10**400,
            "reasoning_tokens": 5, "tokens": {"lowbit": 5}, "plan_tokens": 0, "finish_reason": "stop",
            "final_finish_reason": "stop"}
    write_lines(tmp_path / "qr_sidecar.jsonl", [json.dumps(side)])
    with pytest.raises(InputError, match=r"qr_sidecar\.jsonl:1: field 'completion_tokens': must be an integer in "
                                         r"\[0, 2\*\*53\], got 10+\.\.\.0+$"):
        read_run(tmp_path)


def test_doc_ids_pair_as_one_normalisation(tmp_path):
    """1, 1.0, "1" and "1.0" are one id; 1.5 and "1.5" another; "01" stays its own string."""
    ids = [1, 1.0, "1", "1.0"]
    keys = {read_run(write_lines(tmp_path / f"{i}.jsonl", [record(doc_id=d)])).samples[0].key for i, d in enumerate(ids)}
    assert keys == {("t", "1", 0)}
    run = read_run(write_lines(tmp_path / "m.jsonl", [record(doc_id=1.5), record(doc_id="01"), record(doc_id="x")]))
    assert [s.key[1] for s in run.samples] == ["1.5", "01", "x"]
    assert run.samples[0].doc_id == 1.5  # the id as written is kept for the outputs
    with pytest.raises(InputError, match=r"field 'doc_id': duplicate sample"):
        read_run(write_lines(tmp_path / "d.jsonl", [record(doc_id=2), record(doc_id="2.0")]))


@pytest.mark.parametrize("doc_id, message", [(True, "got true"), ([1], "got \\[1\\]"), (float("nan"), "finite")])
def test_doc_ids_that_are_no_ids_are_refused(tmp_path, doc_id, message):
    with pytest.raises(InputError, match=rf"c\.jsonl:1: field 'doc_id': must be a .*{message}"):
        read_run(write_lines(tmp_path / "c.jsonl", [record(doc_id=doc_id)]))


def test_doc_ids_pair_across_runs(tmp_path):
    """A compare of a run keyed 0, 1, ... against one keyed 0.0, "1", ... pairs every sample."""
    from qr_leaderboard.compare import compare_runs
    from qr_leaderboard.options import Options
    from qr_metrics.stats import BootstrapConfig

    ints = [json.dumps({"task": "t", "doc_id": i, "counts": {"words": 10 + i}}) for i in range(4)]
    mixed = [json.dumps({"task": "t", "doc_id": d, "counts": {"words": 20 + i}}) for i, d in enumerate([0.0, "1", 2, "3.0"])]
    result = compare_runs(read_run(write_lines(tmp_path / "a.jsonl", ints)), read_run(write_lines(tmp_path / "b.jsonl", mixed)),
                          Options(unit="words", bootstrap=BootstrapConfig(n_resamples=50), progress=False,
                                  allow_missing=False)).as_json()
    assert result["n_pairs"] == 4 and result["only_baseline"] == result["only_candidate"] == 0


def test_lm_eval_samples_file_given_alone_says_what_to_pass(tmp_path):
    make_lm_eval_run(tmp_path, "s1")
    with pytest.raises(InputError, match=r"samples_qr_math_s1\.jsonl:1: field 'task': missing: this looks like "
                                         r"lm-eval's samples_\*\.jsonl; pass the run directory"):
        read_run(tmp_path / "samples_qr_math_s1.jsonl")
