"""The run reader joins the adapters' side file: exact counts and finish reasons, rescue
counts per task, measured seconds per token and the leaderboard's per-token speedup."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from helpers.side_runs import RECORDS, STAMP, side, write_lm_eval_run, write_side
from qr_leaderboard.figures import summarize
from qr_metrics.measured import measure_run
from qr_leaderboard.cli import main
from qr_leaderboard.board.speedup import PerTokenSpeedup, resolve_speedup
from qr_leaderboard.render.csv_table import CSV_COLUMNS
from qr_metrics.runs import InputError, read_run

LOWBIT_S = (30 * 0.01 + 45 * 0.02 + 64 * 0.03 + 10 * 0.015 + 30 * 0.012) / (30 + 45 + 64 + 10 + 30)
REFERENCE_S = (40 * 0.05 + 20 * 0.07) / (40 + 20)


@pytest.fixture
def side_run(tmp_path, tiny_model_dir):
    """A run with the tiny model's tokenizer (so counts are re-tokenised too) and a side file."""
    directory = write_lm_eval_run(tmp_path / "run", f"pretrained={tiny_model_dir},sidecar=side.jsonl")
    write_side(directory / "side.jsonl")
    return directory


def by_key(measured):
    return {(m.sample.task, m.sample.doc_id): m for m in measured}


def test_side_file_is_joined_by_task_doc_and_repeat(side_run, caplog):
    with caplog.at_level(logging.WARNING):
        run = read_run(side_run)
    assert "1 record(s) match no logged sample" in caplog.text
    joined = {(s.task, s.doc_id): s.side for s in run.samples}
    assert all(record is not None for record in joined.values())
    assert joined[("qr_aime", 1)].completion_tokens == 70 and joined[("qr_math", 2)].finish_reason == "length"
    assert run.samples[0].finish_reason == "stop"


def test_exact_counts_win_over_retokenised_ones(side_run):
    measured = by_key(measure_run(read_run(side_run), progress=False))
    (side_run / "side.jsonl").unlink()
    retokenised = by_key(measure_run(read_run(side_run), progress=False))
    for key, record in ((("qr_math", 1), RECORDS[1]), (("qr_aime", 1), RECORDS[4])):
        counts, plain = measured[key].counts, retokenised[key].counts
        assert plain["completion_tokens"] != record["completion_tokens"]  # the tokenizer counts otherwise
        assert counts["completion_tokens"] == record["completion_tokens"]
        assert counts["reasoning_tokens"] == record["reasoning_tokens"]
        # one definition: answer tokens follow the closing tag; a side file written before it
        # logged them leaves the re-tokenised count, never completion - reasoning (tag included)
        assert counts["answer_tokens"] == record.get("answer_tokens", plain["answer_tokens"])
        assert counts["words"] == plain["words"]  # text units still come from the text
    # reasoning unknown in the side file: the re-tokenised reasoning count stays
    counts = measured[("qr_math", 2)].counts
    assert counts["completion_tokens"] == 64
    assert counts["reasoning_tokens"] == retokenised[("qr_math", 2)].counts["reasoning_tokens"]


def test_budget_exhausted_follows_the_final_finish_reason(side_run):
    measured = by_key(measure_run(read_run(side_run), progress=False))
    flags = {key: m.flags["budget_exhausted"] for key, m in measured.items()}
    # 64 exact tokens and 'length': exhausted although the text is a few tokens long;
    # 70 tokens past the budget but 'stop' after a commit: not exhausted
    assert flags == {("qr_math", 0): False, ("qr_math", 1): False, ("qr_math", 2): True,
                     ("qr_aime", 0): False, ("qr_aime", 1): False}
    (side_run / "side.jsonl").unlink()
    plain = by_key(measure_run(read_run(side_run), progress=False))
    assert plain[("qr_math", 2)].flags["budget_exhausted"] is False  # re-tokenised, under the budget


def test_rescue_counts_per_task(side_run, capsys):
    summary = summarize(measure_run(read_run(side_run), progress=False))
    assert summary["qr_math"]["rescue"] == {"rescued": 1, "committed": 1, "fell_back": 0, "tokens_saved": 19}
    assert summary["qr_aime"]["rescue"] == {"rescued": 2, "committed": 1, "fell_back": 1, "tokens_saved": 14}
    assert main(["analyze", str(side_run), "--quiet"]) == 0
    header, _, *rows = capsys.readouterr().out.split("\n\n")[0].splitlines()[1:]  # the first table
    assert header.split()[-4:] == ["rescued", "commit", "fallback", "saved_tok"]
    assert [row.split()[-4:] for row in rows] == [["2", "1", "1", "14"], ["1", "1", "0", "19"]]


def test_analyze_without_a_side_file_has_no_rescue_block(tmp_path, capsys):
    write_lm_eval_run(tmp_path)
    summary = summarize(measure_run(read_run(tmp_path), progress=False))
    assert all("rescue" not in s for s in summary.values())
    assert main(["analyze", str(tmp_path), "--quiet"]) == 0
    assert "rescued" not in capsys.readouterr().out


def test_decode_seconds_per_token_are_token_weighted_means(side_run):
    measured = read_run(side_run).decode_s_per_token
    assert measured == pytest.approx({"lowbit": LOWBIT_S, "reference": REFERENCE_S})


def test_without_a_side_file_nothing_is_measured(tmp_path):
    run = read_run(write_lm_eval_run(tmp_path))
    assert run.decode_s_per_token == {} and all(s.side is None for s in run.samples)


def test_stale_prompt_hash_names_the_line(tmp_path):
    write_lm_eval_run(tmp_path)
    write_side(tmp_path / "qr_sidecar.jsonl", [side("qr_math", 0), side("qr_math", 1, prompt_hash="0" * 64)])
    with pytest.raises(InputError, match=r"qr_sidecar\.jsonl:2: field 'prompt_hash': .*stale"):
        read_run(tmp_path)


def test_bad_record_names_line_and_field(tmp_path):
    write_lm_eval_run(tmp_path)
    write_side(tmp_path / "qr_sidecar.jsonl", [side("qr_math", 0), side("qr_math", 1, finish_reason="eos")])
    with pytest.raises(InputError, match=r"qr_sidecar\.jsonl:2: field 'finish_reason': must be one of"):
        read_run(tmp_path)
    assert main(["analyze", str(tmp_path), "--quiet"]) == 2


def test_a_second_record_for_one_sample_is_refused(tmp_path):
    write_lm_eval_run(tmp_path)
    write_side(tmp_path / "qr_sidecar.jsonl", [side("qr_math", 0), side("qr_math", 0)])
    with pytest.raises(InputError, match=r":2: field 'doc_id': a second record"):
        read_run(tmp_path)


def test_a_named_side_file_that_is_missing_is_a_warning(tmp_path, caplog):
    write_lm_eval_run(tmp_path, "pretrained=/models/tiny,sidecar=gone/side.jsonl")
    with caplog.at_level(logging.WARNING):
        run = read_run(tmp_path)
    (message,) = [r.getMessage() for r in caplog.records if "side file" in r.getMessage()]
    assert "gone/side.jsonl" in message and "not found" in message
    assert len(run.samples) == 5 and all(s.side is None for s in run.samples)


@pytest.mark.parametrize(
    "named, placed",
    [
        ("sides/side.jsonl", "cwd/sides/side.jsonl"),  # relative to the current directory
        ("sides/side.jsonl", "out/sides/side.jsonl"),  # relative to the results' directory
        ("/elsewhere/side.jsonl", "out/side.jsonl"),  # a copied run: the name beside the results
        (None, "out/qr_sidecar.jsonl"),  # none named: the default name beside the results
    ],
)
def test_side_file_paths_resolve(tmp_path, monkeypatch, named, placed, caplog):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    write_lm_eval_run(tmp_path / "out", "pretrained=/models/tiny" + (f",sidecar={named}" if named else ""))
    write_side(tmp_path / placed)
    with caplog.at_level(logging.WARNING):
        assert read_run(tmp_path / "out").decode_s_per_token["lowbit"] == pytest.approx(LOWBIT_S)
    # one read from outside the run is said; one beside it is not
    assert ("none beside the run" in caplog.text) == (not placed.startswith("out/"))


def copy_of_run(tmp_path):
    """A run whose logged ``sidecar=`` is the absolute path of its side file, and a copy of
    its directory elsewhere (the original stays)."""
    import shutil

    original = tmp_path / "original"
    write_lm_eval_run(original, f"pretrained=/models/tiny,sidecar={original / 'qr_sidecar.jsonl'}")
    write_side(original / "qr_sidecar.jsonl")
    return original, Path(shutil.copytree(original, tmp_path / "copy"))


@pytest.mark.parametrize(
    "bad, error",
    [
        (side("qr_math", 1, prompt_hash="0" * 64), r"field 'prompt_hash': .*stale"),
        ("{not json", r"malformed JSON"),
    ],
)
def test_a_copied_run_reads_and_checks_its_own_side_file(tmp_path, capsys, bad, error):
    """Not the original's, through the absolute ``sidecar=`` path: a stale or malformed
    record in the copy's side file is an input error (exit 2)."""
    _, copy = copy_of_run(tmp_path)
    line = bad if isinstance(bad, str) else json.dumps(bad)
    (copy / "qr_sidecar.jsonl").write_text(json.dumps(side("qr_math", 0)) + "\n" + line + "\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(copy / 'qr_sidecar.jsonl'))}:2: .*{error}"):
        read_run(copy)
    assert main(["analyze", str(copy), "--quiet"]) == 2
    assert f"{copy / 'qr_sidecar.jsonl'}:2:" in capsys.readouterr().err


def test_a_copied_run_says_which_side_file_it_read(tmp_path, caplog):
    original, copy = copy_of_run(tmp_path)
    write_side(copy / "qr_sidecar.jsonl", [side("qr_math", 0, decode_s_per_token={"lowbit": 0.5})])
    with caplog.at_level(logging.WARNING):
        run = read_run(copy)
    assert run.decode_s_per_token == {"lowbit": 0.5}
    (notice,) = [r.getMessage() for r in caplog.records if "side file" in r.getMessage()]
    assert f"reading the side file beside the run, {copy / 'qr_sidecar.jsonl'}, not {original / 'qr_sidecar.jsonl'}" in notice
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_run(original)  # the file sidecar= names is the one beside the run: nothing to say
    assert "side file" not in caplog.text


def test_a_moved_run_keeps_its_side_file_at_the_output_root(tmp_path, caplog):
    """lm-eval writes results into ``--output_path/<model>/``; the README's ``sidecar=`` puts
    the side file at ``--output_path``: moved, the run still reads it."""
    out = tmp_path / "runs" / "w2-rescue"
    write_lm_eval_run(out / "models__tiny", f"pretrained=/models/tiny,sidecar={out / 'qr_sidecar.jsonl'}")
    write_side(out / "qr_sidecar.jsonl")
    moved = out.rename(tmp_path / "moved")
    with caplog.at_level(logging.WARNING):
        run = read_run(moved)
    assert run.decode_s_per_token["lowbit"] == pytest.approx(LOWBIT_S)
    assert "side file" not in caplog.text


def test_the_device_a_run_was_timed_on_comes_from_lm_evals_results(tmp_path):
    env = ("Is CUDA available: {cuda}\nGPU models and configuration: {gpu}\n\nCPU:\n"
           "Model name:                              AMD EPYC 9654\n")
    cases = [
        ("pretrained=/m,device=cpu", env.format(cuda=False, gpu="Could not collect"), "cpu: AMD EPYC 9654"),
        ("pretrained=/m,device=cuda:0", env.format(cuda=True, gpu="GPU 0: NVIDIA H100 80GB HBM3"),
         "cuda:0: NVIDIA H100 80GB HBM3"),
        ("pretrained=/m", env.format(cuda=True, gpu="GPU 0: NVIDIA H100 80GB HBM3"), "cuda: NVIDIA H100 80GB HBM3"),
        ("pretrained=/m", None, None),
        ("model=/m,base_url=http://127.0.0.1:8000/v1/completions", env.format(cuda=False, gpu="x"),
         "server http://127.0.0.1:8000/v1/completions"),
    ]
    for i, (model_args, info, device) in enumerate(cases):
        directory = write_lm_eval_run(tmp_path / str(i), model_args)
        results = directory / f"results_{STAMP}.json"
        if info is not None:
            results.write_text(json.dumps({**json.loads(results.read_text()), "pretty_env_info": info}))
        assert read_run(directory).device == device, model_args


# ----------------------------------------------------------------------------- leaderboard speedup


def leaderboard_runs(root, lowbit_s, reference_s=None, **headers):
    """A bf16 baseline and int4 / int3 runs of model m, each with a side file of these times."""
    paths = {}
    for precision in ("bf16", "int4", "int3"):
        directory = write_lm_eval_run(root / precision, name=f"m-{precision}", model="m", precision=precision,
                                      **headers.get(precision, {}))
        seconds = {"lowbit": lowbit_s[precision]}
        if reference_s and precision in reference_s:
            seconds["reference"] = reference_s[precision]
        write_side(directory / "qr_sidecar.jsonl", [
            {**r, "decode_s_per_token": seconds, "tokens": {"lowbit": 10, "reference": 10}} for r in RECORDS[:5]
        ])
        paths[precision] = directory
    return paths


def test_speedup_precedence_flag_then_run_json_then_measured(tmp_path):
    paths = leaderboard_runs(tmp_path, {"bf16": 0.01, "int4": 0.004, "int3": 0.005}, {"int3": 0.02},
                             int4={"speedup": 1.7})
    base, int4, int3 = (read_run(paths[p]) for p in ("bf16", "int4", "int3"))
    given = resolve_speedup(int4, base, {"int4": 3.0})
    assert (given.value, given.source) == ({"estimate": 3.0, "low": None, "high": None}, "given: speedups int4=3")
    flagged = resolve_speedup(int4, base, {"int4": 3.0}, name={"speedups": "--speedup"}.get)  # as qr-eval names it
    assert flagged.source == "given: --speedup int4=3"
    given = resolve_speedup(int4, base, {})
    assert (given.value["estimate"], given.source, given.withheld) == (1.7, "given: run.json speedup", None)
    # the run's own reference model over its low-bit one wins over the baseline's time; every
    # record of a side file here carries one batch's time: one timing, so it is withheld
    measured = resolve_speedup(int3, base, {})
    assert measured.value is None and measured.withheld.startswith("one timing (1 reference and 1 low-bit")
    assert measured.source == ("measured: decode s/token of the side files, this run's reference model over its "
                               "low-bit one (device not recorded)")
    int4.speedup = None
    measured = resolve_speedup(int4, base, {})
    assert measured.value is None and measured.withheld.startswith("one timing")
    assert "baseline m-bf16's over this run's" in measured.source
    assert resolve_speedup(base, base, {}) == PerTokenSpeedup()  # a baseline is not measured against itself
    assert resolve_speedup(int4, None, {}) == PerTokenSpeedup()  # no baseline, no reference time


def test_leaderboard_withholds_a_speedup_measured_in_one_batch(tmp_path):
    paths = leaderboard_runs(tmp_path, {"bf16": 0.01, "int4": 0.004, "int3": 0.005}, int3={"speedup": 1.5})
    out = tmp_path / "board"
    argv = ["leaderboard", *(str(paths[p]) for p in ("bf16", "int4", "int3")), "--out", str(out),
            "--unit", "words", "--n-resamples", "200", "--no-plots", "--quiet"]
    assert main(argv) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    overall = {r["run"]: r for r in board["rows"] if r["task"] == "overall"}
    int4, int3, base = overall["m-int4"], overall["m-int3"], overall["m-bf16"]
    assert int4["speedup_per_token"] is None and int4["effective_speedup"] is None
    assert int4["speedup_withheld"].startswith("one timing") and int4["speedup_source"].startswith("measured: ")
    assert (int3["speedup_per_token"]["estimate"], int3["speedup_source"]) == (1.5, "given: run.json speedup")
    assert base["speedup_per_token"] is None and base["speedup_source"] is None
    assert {i["name"]: i["speedup_source"].split(":")[0] if i["speedup_source"] else None for i in board["runs"]} == {
        "m-bf16": None, "m-int4": "measured", "m-int3": "given"}
    header = (out / "leaderboard.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS and "speedup_source" in header
