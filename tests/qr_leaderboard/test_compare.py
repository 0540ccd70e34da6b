"""qr-eval compare: pairing rules, compatibility flags, error paths and the real fixtures."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from helpers.fixture_data import per_sample_to_traces
from qr_leaderboard.cli import main
from qr_leaderboard.compare import compare_runs
from qr_leaderboard.cli.common import FLAGS
from qr_leaderboard.options import Options
from qr_metrics.runs import InputError, read_run
from qr_metrics.stats import BootstrapConfig

FAST = BootstrapConfig(n_resamples=2000)


def trace_dir(root, name, records, **header):
    directory = root / name
    directory.mkdir()
    (directory / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "run.json").write_text(json.dumps({"name": name, **header}))
    return directory


def counted(task, doc_id, words, correct=True, repeat=0, **extra):
    return {"task": task, "doc_id": doc_id, "repeat": repeat, "counts": {"words": words}, "correct": correct, **extra}


def test_hand_computed_ratios_and_accuracy(tmp_path):
    base = [counted("t", i, w, c) for i, (w, c) in enumerate([(100, True), (200, True), (100, False), (50, True)])]
    cand = [counted("t", i, w, c) for i, (w, c) in enumerate([(300, True), (200, False), (400, False), (100, True)])]
    result = compare_runs(
        read_run(trace_dir(tmp_path, "b", base)), read_run(trace_dir(tmp_path, "c", cand)), Options(unit="words", bootstrap=FAST)
    ).as_json()
    block = result["tasks"]["t"]
    assert block["ratio_of_means"]["estimate"] == pytest.approx(1000 / 450)
    # both correct: items 0 and 3
    assert block["both_correct_ratio"]["estimate"] == pytest.approx(400 / 150)
    geo = (3 * 1 * 4 * 2) ** (1 / 4)
    assert block["paired_geomean_ratio"]["estimate"] == pytest.approx(geo)
    assert block["accuracy"]["baseline"] == 0.75 and block["accuracy"]["candidate"] == 0.5
    assert block["accuracy"]["delta"]["estimate"] == pytest.approx(-0.25)
    assert block["accuracy"]["mcnemar_p"] == pytest.approx(1.0)  # one discordant pair: p = 2 * 0.5
    assert result["overall"]["ratio_of_means"] == block["ratio_of_means"]
    low, high = block["ratio_of_means"]["low"], block["ratio_of_means"]["high"]
    assert low <= block["ratio_of_means"]["estimate"] <= high


def test_unpaired_samples_are_reported_and_excluded(tmp_path, caplog):
    base = [counted("t", i, 100) for i in range(5)]
    cand = [counted("t", i, 200) for i in range(1, 7)]
    result = compare_runs(
        read_run(trace_dir(tmp_path, "b", base)), read_run(trace_dir(tmp_path, "c", cand)), Options(unit="words", bootstrap=FAST)
    ).as_json()
    assert (result["n_pairs"], result["only_baseline"], result["only_candidate"]) == (4, 1, 2)
    assert any("1 baseline and 2 candidate sample(s) have no partner" in w for w in result["warnings"])
    assert result["overall"]["ratio_of_means"]["estimate"] == pytest.approx(2.0)


def test_repeats_pair_by_repeat(tmp_path):
    base = [counted("t", 0, 100, repeat=0), counted("t", 0, 300, repeat=1), counted("t", 1, 100)]
    cand = [counted("t", 0, 100, repeat=0), counted("t", 0, 600, repeat=1), counted("t", 1, 200)]
    result = compare_runs(
        read_run(trace_dir(tmp_path, "b", base)), read_run(trace_dir(tmp_path, "c", cand)), Options(unit="words", bootstrap=FAST)
    ).as_json()
    assert result["tasks"]["t"]["n_pairs"] == 3 and result["tasks"]["t"]["n_items"] == 2
    assert result["tasks"]["t"]["ratio_of_means"]["estimate"] == pytest.approx(900 / 500)


@pytest.mark.parametrize(
    "cand_extra, flag",
    [
        ({"task": "other"}, "task sets differ"),
        ({"max_gen_toks": 1024}, "generation budgets differ"),
    ],
)
def test_incomparable_runs_are_flagged_and_refused_with_strict(tmp_path, cand_extra, flag):
    base = [counted("t", i, 100, max_gen_toks=2048) for i in range(3)]
    cand = [counted("t", i, 150, max_gen_toks=2048) for i in range(3)] + [
        counted(cand_extra.get("task", "t"), 9, 150, max_gen_toks=cand_extra.get("max_gen_toks", 2048))
    ]
    if "max_gen_toks" in cand_extra:
        cand = [{**r, "max_gen_toks": 1024} for r in cand]
    b, c = read_run(trace_dir(tmp_path, "b", base)), read_run(trace_dir(tmp_path, "c", cand))
    result = compare_runs(b, c, Options(unit="words", bootstrap=FAST)).as_json()
    assert any(flag in w for w in result["warnings"])
    with pytest.raises(InputError, match=flag):
        compare_runs(b, c, Options(unit="words", bootstrap=FAST, strict=True)).as_json()


def test_sampling_settings_are_compared(tmp_path):
    from qr_leaderboard.compare import compatibility_issues

    b = read_run(trace_dir(tmp_path, "b", [counted("t", 0, 1)]))
    c = read_run(trace_dir(tmp_path, "c", [counted("t", 0, 1)]))
    b.generation["t"] = {"temperature": 0.6, "top_p": 0.95, "max_gen_toks": 64}
    c.generation["t"] = {"temperature": 0.0, "top_p": 0.95, "max_gen_toks": 64}
    (issue,) = compatibility_issues(b, c)
    assert "sampling settings differ" in issue


def test_token_ratios_across_tokenizers_are_refused(tmp_path):
    base = [{"task": "t", "doc_id": 0, "counts": {"reasoning_tokens": 10, "words": 8}}]
    b = read_run(trace_dir(tmp_path, "b", base, tokenizer="tok-a"))
    c = read_run(trace_dir(tmp_path, "c", base, tokenizer="tok-b"))
    # the library names parameters (tokenizer, unit); the command line names its flags (FLAGS)
    with pytest.raises(InputError, match="different tokenizers.*; pass tokenizer to recount both runs with one or use unit words$"):
        compare_runs(b, c, Options(unit="tokens", bootstrap=FAST)).as_json()
    assert compare_runs(b, c, Options(unit="words", bootstrap=FAST)).as_json()["overall"]["ratio_of_means"]["estimate"] == 1.0


def test_missing_unit_is_an_input_error_that_names_the_fix(tmp_path):
    b = read_run(trace_dir(tmp_path, "b", [counted("t", 0, 5)]))
    c = read_run(trace_dir(tmp_path, "c", [counted("t", 0, 5)]))
    with pytest.raises(InputError, match="no 'reasoning_tokens' count.*count-only data.*; use unit words$"):
        compare_runs(b, c, Options(unit="tokens", bootstrap=FAST)).as_json()
    text = [{"task": "t", "doc_id": 0, "completion": "a b c</think>\\boxed{1}"}]
    b, c = (read_run(trace_dir(tmp_path, name, text)) for name in ("tb", "tc"))
    fix = "no tokenizer could be resolved; pass --tokenizer NAME_OR_PATH to count tokens or use --unit words$"
    with pytest.raises(InputError, match=fix):
        compare_runs(b, c, Options(unit="tokens", bootstrap=FAST, flags=FLAGS)).as_json()


def test_cli_exit_codes_and_json_schema(tmp_path, capsys):
    b = trace_dir(tmp_path, "b", [counted("t", i, 100 + i) for i in range(6)])
    c = trace_dir(tmp_path, "c", [counted("t", i, 150 + i) for i in range(6)])
    assert main(["compare", str(b), str(c), "--unit", "words", "--json", "--n-resamples", "500", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"unit", "confidence", "n_pairs", "tasks", "overall"}
    block = out["overall"]
    for name in ("ratio_of_means", "both_correct_ratio", "paired_geomean_ratio"):
        assert set(block[name]) == {"estimate", "low", "high"}
    assert set(block["accuracy"]) >= {"baseline", "candidate", "delta", "mcnemar_p"}
    assert set(block["budget_exhausted"]) == {"baseline", "candidate", "known"}
    ratio = sum(150 + i for i in range(6)) / sum(100 + i for i in range(6))  # 915 / 615
    assert block["ratio_of_means"]["estimate"] == pytest.approx(ratio)
    assert block["macro_ratio"]["estimate"] == pytest.approx(ratio)  # one task: its ratio
    assert block["mean_length"] == {"baseline": 102.5, "candidate": 152.5}
    assert block["accuracy"]["baseline"] == block["accuracy"]["candidate"] == 1.0
    assert main(["compare", str(b), str(tmp_path / "missing"), "--unit", "words"]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["compare", str(b), str(c), "--unit", "words", "--confidence", "1.5"]) == 2
    assert "confidence" in capsys.readouterr().err


def test_resamples_are_bounded_and_one_gives_no_interval(tmp_path, capsys):
    b = trace_dir(tmp_path, "b", [counted("t", i, 100 + i) for i in range(6)])
    c = trace_dir(tmp_path, "c", [counted("t", i, 150 + 3 * i) for i in range(6)])
    assert main(["compare", str(b), str(c), "--unit", "words", "--n-resamples", "100000000000000", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        "qr-eval: error: --n-resamples: 100000000000000 is invalid: must be an integer in [1, 1000000]\n"
    )
    assert main(["compare", str(b), str(c), "--unit", "words", "--n-resamples", "1", "--quiet"]) == 0
    table = capsys.readouterr().out
    overall = next(line for line in table.splitlines() if line.startswith("overall"))
    assert "[-]" in overall and "," not in overall  # "1.55 [-]", never "1.55 [1.55, 1.55]"
    base_words, cand_words = np.array([100 + i for i in range(6)]), np.array([150 + 3 * i for i in range(6)])
    ratio = cand_words.sum() / base_words.sum()
    geomean = np.exp(np.mean(np.log(cand_words / base_words)))
    cells = re.split(r"\s{2,}", overall)
    # run, pairs, ratio_of_means, both_correct (every item is), geomean, accuracy, delta
    assert cells[:7] == ["overall", "6", f"{ratio:.2f} [-]", f"{ratio:.2f} [-]", f"{geomean:.2f} [-]",
                         "100.0 -> 100.0", "+0.0 [-]"]  # fmt: skip


def test_usage_errors_are_one_line_pointing_at_help(tmp_path, capsys):
    cases = [(["compare", "only-one"], "qr-eval compare"), (["compare", "a", "b", "--unit", "bytes"], "qr-eval compare"),
             ([], "qr-eval")]
    for argv, verb in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
        assert err.startswith(f"{verb}: error: ") and err.endswith(f"(see '{verb} --help')\n")


def test_truncated_candidate_makes_ratio_a_lower_bound(tmp_path):
    base = [counted("t", i, 100, finish_reason="stop") for i in range(4)]
    cand = [counted("t", i, 400, finish_reason="length" if i < 2 else "stop") for i in range(4)]
    # counts-only records carry no flags; give completions so finish_reason is used
    base = [{**r, "completion": "a b</think>\\boxed{1}"} for r in base]
    cand = [{**r, "completion": "a b c"} for r in cand]
    result = compare_runs(
        read_run(trace_dir(tmp_path, "b", base)), read_run(trace_dir(tmp_path, "c", cand)), Options(unit="words", bootstrap=FAST)
    ).as_json()
    block = result["tasks"]["t"]
    assert block["budget_exhausted"] == {"baseline": 0.0, "candidate": 0.5, "known": {"baseline": 4, "candidate": 4}}
    assert block["ratio_is_lower_bound"] is True
    assert any("lower bound" in note for note in block["notes"])


@pytest.fixture(scope="module")
def math500_runs(fixtures_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("per_sample")
    runs = {}
    for config in ("bf16", "awq-w3g128", "gptq-w4g128"):
        directory = root / config
        per_sample_to_traces(fixtures_dir / "per_sample" / f"{config}_MATH-500.csv", directory / "traces.jsonl", "MATH-500")
        (directory / "run.json").write_text(json.dumps({"name": config}))
        runs[config] = read_run(directory)
    return runs


def test_real_awq_w3_inflation_against_bf16(math500_runs, caplog):
    with caplog.at_level(logging.WARNING):
        result = compare_runs(math500_runs["bf16"], math500_runs["awq-w3g128"], Options(progress=False)).as_json()
    (notice,) = [r.getMessage() for r in caplog.records]
    assert notice.startswith("lengths in completion words, the best unit every sample has: ")
    assert (result["unit"], result["unit_field"]) == ("completion_words", "completion_words")
    block = result["overall"]
    ratio = block["ratio_of_means"]
    # The publisher's facts: 11327 / 2983 mean words (their word count covers the whole
    # completion; the answer segment is a few dozen words of it).
    assert round(ratio["estimate"], 2) == 3.80
    assert block["mean_length"]["baseline"] == pytest.approx(2983, abs=0.5)
    assert block["mean_length"]["candidate"] == pytest.approx(11327, abs=0.5)
    assert ratio["low"] < ratio["estimate"] < ratio["high"]
    assert block["accuracy"]["delta"]["estimate"] == pytest.approx(-0.324)
    assert block["accuracy"]["mcnemar_p"] < 1e-3


def test_real_gptq_w4_interval_contains_one(math500_runs):
    ratio = compare_runs(math500_runs["bf16"], math500_runs["gptq-w4g128"]).as_json()["overall"]["ratio_of_means"]
    assert ratio["low"] <= 1.0 <= ratio["high"]


def test_zero_length_baseline_is_one_line_exit_2(tmp_path, capsys):
    b = trace_dir(tmp_path, "b", [counted("t", i, 0) for i in range(3)])
    c = trace_dir(tmp_path, "c", [counted("t", i, 5) for i in range(3)])
    assert main(["compare", str(b), str(c), "--unit", "words", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "words" in err


def test_outputs_are_readable_by_others(tmp_path):
    import os
    import stat

    from qr_metrics.files import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "out.txt") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


# ----------------------------------------------------------------------------- one unit rule


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


FAST_CLI = ["--n-resamples", "100", "--quiet"]
VERBS = {  # verb -> (arguments after the runs, how to read the unit of its --json output)
    "compare": (["--json", *FAST_CLI], lambda out: json.loads(out)["unit"]),
    "gate": (["--max-inflation", "9", "--json", *FAST_CLI], lambda out: json.loads(out)["unit"]),
    "select": (["--max-inflation", "9", "--json", *FAST_CLI], lambda out: json.loads(out)["unit"]),
    "leaderboard": (["--out", "board", "--no-plots", *FAST_CLI],
                    lambda out: json.loads((Path(out.splitlines()[0]).parent / "leaderboard.json").read_text())["unit"]),
    "replay": (["--json", "--quiet"], lambda out: json.loads(out)["unit"]),
    "analyze": (["--json", "--quiet"], lambda out: json.loads(out)["t"]["budget_accuracy"]["unit"]),
}


def _notices(caplog) -> list[str]:
    notices = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    return notices


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_falls_back_to_the_unit_every_sample_has_and_says_so(tmp_path, capsys, caplog, monkeypatch, verb):
    """Count-only data of the whole completion (a converted per-sample CSV): every verb
    measures in completion words, says so in one notice line (a warning: stderr), and names
    it in its output; a --unit the data lacks is one line naming the --unit that works."""
    monkeypatch.chdir(tmp_path)
    records = [{"task": "t", "doc_id": i, "correct": i % 3 > 0, "counts": {"completion_words": 100 + i}} for i in range(8)]
    base = trace_dir(tmp_path, "b", records, model="m", precision="bf16", bits=16)
    cand = trace_dir(tmp_path, "c", records, model="m", precision="int4", bits=4)
    extra, unit_of = VERBS[verb]
    runs = [base] if verb == "analyze" else [cand, "--baseline", base] if verb == "replay" else [base, cand]
    with caplog.at_level(logging.WARNING):
        code, out, err = _cli(capsys, verb, *runs, *extra)
        assert code == 0, err
        (notice,) = _notices(caplog)
        assert notice.startswith("lengths in completion words, the best unit every sample has: ")
        assert "count-only data" in notice and "\n" not in notice
        assert unit_of(out) == "completion_words"
        if verb != "analyze":
            code, _, err = _cli(capsys, verb, *runs, *extra, "--unit", "words")
            assert code == 2 and err.count("\n") == 1 and not _notices(caplog), err
            assert "no 'words' count (reasoning words)" in err and err.rstrip().endswith("use --unit completion_words")


def test_text_without_a_tokenizer_is_measured_in_reasoning_words(tmp_path, capsys, caplog):
    text = [{"task": "t", "doc_id": i, "completion": "a b c " * (i + 1) + "</think>\\boxed{1}"} for i in range(4)]
    base, cand = trace_dir(tmp_path, "b", text), trace_dir(tmp_path, "c", text)
    with caplog.at_level(logging.WARNING):
        code, out, err = _cli(capsys, "compare", base, cand, "--json", "--n-resamples", "100", "--quiet")
    assert code == 0 and json.loads(out)["unit"] == "words"
    (notice,) = _notices(caplog)
    assert notice.startswith("lengths in reasoning words, the best unit every sample has: ") and "--tokenizer" in notice
    code, out, _ = _cli(capsys, "compare", base, cand, "--n-resamples", "100", "--quiet")
    assert "unit: reasoning words" in out
    code, _, err = _cli(capsys, "compare", base, cand, "--unit", "tokens", "--quiet")
    assert code == 2 and err.rstrip().endswith("pass --tokenizer NAME_OR_PATH to count tokens or use --unit words"), err
