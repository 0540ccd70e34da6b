"""Every verb that measures takes the same measurement parameters: a file of ``MeasureParams``
keys (``--measure-params``), else what the lm-eval run logged in its ``metadata``, else the
defaults; and says which it used (issue 21, item 2)."""

from __future__ import annotations

import json

import pytest

from qr_leaderboard.cli import main

from helpers.run_dirs import make_lm_eval_run

REASON_TAGS = {"think_open": "<reason>", "think_close": "</reason>"}
CLOSED = "Two and two.</reason> So \\boxed{4}"


def _run(directory, metadata=None, completion=CLOSED):
    make_lm_eval_run(directory, "s1", task="qr_gsm8k", responses=([completion],))
    results_file = directory / "results_s1.json"
    results = json.loads(results_file.read_text())
    if metadata is not None:
        results["configs"]["qr_gsm8k"]["metadata"] = {"version": 1.0, **metadata}
    sample_file = directory / "samples_qr_gsm8k_s1.jsonl"
    sample = json.loads(sample_file.read_text())
    sample["target"], sample["arguments"]["gen_args_0"]["arg_0"] = "4", "<|Assistant|><reason>\n"
    sample_file.write_text(json.dumps(sample) + "\n")
    results_file.write_text(json.dumps(results))
    full = directory.name == "plain"
    header = {"name": directory.name, "model": "m", "precision": "bf16" if full else "w4", "bits": 16 if full else 4}
    (directory / "run.json").write_text(json.dumps(header))
    return directory


def _analyze(capsys, caplog, *args):
    caplog.clear()
    assert main(["analyze", *map(str, args), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)["qr_gsm8k"], caplog.text


def test_analyze_measures_an_lm_eval_run_with_the_tags_it_logged(tmp_path, capsys, caplog):
    summary, err = _analyze(capsys, caplog, _run(tmp_path / "logged", REASON_TAGS))
    assert summary["words"]["mean"] == 3.0 and summary["accuracy"] == 1.0  # "Two and two." is the reasoning
    assert "with think_open='<reason>', think_close='</reason>' (from its lm-eval metadata)" in err
    default, err = _analyze(capsys, caplog, _run(tmp_path / "plain"))  # read with <think> tags: no reasoning
    assert default["words"]["mean"] == 0.0 and "measuring" not in err


def test_a_params_file_wins_over_the_logged_metadata_on_every_verb(tmp_path, capsys, caplog):
    params = tmp_path / "params.yaml"
    params.write_text("think_open: <reason>\nthink_close: </reason>\n")
    plain = _run(tmp_path / "plain")
    summary, err = _analyze(capsys, caplog, plain, "--measure-params", params)
    assert summary["words"]["mean"] == 3.0 and "(from --measure-params)" in err
    other = _run(tmp_path / "other")
    for verb in (["compare", plain, other], ["replay", plain], ["leaderboard", plain, other, "--out", tmp_path / "lb",
                                                                    "--no-plots"],
                 ["gate", plain, other, "--max-rate", "unclosed=0"], ["select", plain, other, "--max-rate", "unclosed=0"]):
        caplog.clear()
        code = main([*map(str, verb), "--measure-params", str(params), "--quiet"])
        assert code in (0, 1), capsys.readouterr().err
        assert "(from --measure-params)" in caplog.text, verb[0]


@pytest.mark.parametrize("text, problem", [
    ("think_close: ''\n", "field 'think_close': '' is invalid: must be a non-empty string"),
    ("thinking: x\n", "unknown measurement parameter(s) ['thinking']"),
    ("- a\n", "expected a mapping of MeasureParams keys"),
])
def test_a_bad_params_file_is_one_line_naming_it(tmp_path, capsys, text, problem):
    params = tmp_path / "params.yaml"
    params.write_text(text)
    assert main(["analyze", str(_run(tmp_path / "run")), "--measure-params", str(params), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qr-eval: error: {params}:") and problem in err and err.count("\n") == 1
