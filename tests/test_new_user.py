"""What a new user tripped over (issue 13): exit codes, run metadata, pipes and paths."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from qr_leaderboard.cli import build_parser, main
from qr_metrics.runs import HEADER_FIELDS, InputError, read_run
from helpers.run_dirs import word_records, write_run

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--unit", "words", "--n-resamples", "200", "--quiet"]
STAMPS = ("2026-11-22T10-00-00.1", "2026-11-22T11-00-00.1")


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def lm_eval_run(directory: Path, stamp: str, words: list[int], pretrained: str = "/models/tiny") -> Path:
    """A stock lm-eval output folder: ``results_<stamp>.json`` and one samples file, no run.json."""
    directory.mkdir(parents=True, exist_ok=True)
    results = {
        "results": {"qr_math": {"acc,none": 1.0}},
        "configs": {"qr_math": {"generation_kwargs": {"max_gen_toks": 4096, "until": []}}},
        "config": {"model": "hf", "model_args": f"pretrained={pretrained}"},
    }
    (directory / f"results_{stamp}.json").write_text(json.dumps(results))
    samples = [
        {"doc_id": i, "target": "2", "resps": [[" ".join(["w"] * n) + "</think>\\boxed{2}"]]} for i, n in enumerate(words)
    ]
    (directory / f"samples_qr_math_{stamp}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    return directory


@pytest.fixture
def pair(tmp_path):
    base = write_run(tmp_path / "base", word_records(list(range(10, 30)), [True] * 20),
                     name="base", model="m", precision="bf16", bits=16)
    cand = write_run(tmp_path / "cand", word_records(list(range(11, 31)), [True] * 20),
                     name="cand", model="m", precision="int4", bits=4)
    return base, cand


def assert_one_line_error(code, err, *words):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("qr-eval: error: ")
    for word in words:
        assert word in err


# ----------------------------------------------------------------------------- 1. exit codes


VERB_ARGS = {
    "compare": [],
    "leaderboard": ["--out", "board", "--no-plots"],
    "gate": ["--max-inflation", "1.2"],
    "select": ["--max-inflation", "1.2"],
}


@pytest.mark.parametrize("verb", list(VERB_ARGS))
@pytest.mark.parametrize("confidence", ["95", "0", "1.5"])
def test_confidence_out_of_range_exits_2_with_one_line(pair, capsys, tmp_path, monkeypatch, verb, confidence):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, verb, *pair, *VERB_ARGS[verb], "--confidence", confidence, *FAST)
    assert_one_line_error(code, err, "confidence")


def _bad_inputs(root: Path) -> dict[str, list]:
    """Bad input a user can give each verb, found by trying: each must be one line, exit 2."""
    (root / "latin.jsonl").write_bytes(b'{"task": "t", "doc_id": 0, "completion": "caf\xe9"}\n')
    (root / "list").mkdir()
    (root / "list" / f"results_{STAMPS[0]}.json").write_text("[1, 2]")
    write_run(root / "typed", word_records([10], [True]), name=3, model=["m"])
    (root / "policy.yaml").write_bytes(b"max_inflation: 1.2 # \xe9\n")
    (root / "afile").write_text("x")
    (root / "adir").mkdir()
    good = write_run(root / "good", word_records([10, 12], [True, True]), name="good", bits=4)
    return {
        "not UTF-8": ["analyze", root / "latin.jsonl", "--quiet"],
        "results not an object": ["analyze", root / "list", "--quiet"],
        "run.json field types": ["analyze", root / "typed", "--quiet"],
        "per-sample is a directory": ["analyze", good, "--per-sample", root / "adir", "--quiet"],
        "policy not UTF-8": ["gate", good, good, "--policy", root / "policy.yaml", *FAST],
        "demo out is a file": ["demo", "--out", root / "afile", "--quiet"],
    }


@pytest.mark.parametrize("case", [
    "not UTF-8", "results not an object", "run.json field types", "per-sample is a directory",
    "policy not UTF-8", "demo out is a file",
])  # fmt: skip
def test_bad_input_of_every_verb_exits_2_with_one_line(tmp_path, capsys, case):
    code, _, err = cli(capsys, *_bad_inputs(tmp_path)[case])
    assert_one_line_error(code, err)


# ----------------------------------------------------------------------------- 2. closed pipe


def test_a_closed_pipe_ends_quietly(pair):
    """``qr-eval compare --json | head -1``: the reader is gone before anything is written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qr_leaderboard.cli", "compare", *map(str, pair), "--json", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    process.stdout.close()
    err = process.stderr.read()
    code = process.wait(timeout=120)
    assert err == "", err
    assert code == 141  # 128 + SIGPIPE, what a shell reports for a Unix tool cut off the same way


# ----------------------------------------------------------------------------- 3. empty input


def test_a_trace_file_without_records_is_an_input_error(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, out, err = cli(capsys, "analyze", empty, "--quiet")
    assert_one_line_error(code, err, "empty.jsonl", "no record")
    assert out == ""
    lm_eval_run(tmp_path / "lm", STAMPS[0], [])
    with pytest.raises(InputError, match=r"samples_qr_math_.*\.jsonl: .*no record"):
        read_run(tmp_path / "lm")


# ----------------------------------------------------------------------------- 4. duplicate line


def test_a_duplicate_sample_names_the_line_of_its_second_occurrence(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in word_records([10, 11, 12], [True] * 3)))
    with path.open("a") as handle:
        handle.write("\n" + json.dumps(word_records([13], [True])[0]) + "\n")  # doc 0 again, on line 5
    with pytest.raises(InputError, match=r"c\.jsonl:5: field 'doc_id': duplicate sample"):
        read_run(path)
    run = lm_eval_run(tmp_path / "lm", STAMPS[0], [3, 4])
    samples = run / f"samples_qr_math_{STAMPS[0]}.jsonl"
    samples.write_text(samples.read_text() + samples.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"samples_qr_math_.*\.jsonl:3: field 'doc_id': duplicate sample"):
        read_run(run)


# ----------------------------------------------------------------------------- 5. run selection


def _verbs():
    return build_parser()._subparsers._group_actions[0].choices


def test_every_verb_that_reads_runs_has_the_same_run_selection_options():
    reading = {name: p for name, p in _verbs().items() if any(a.metavar in ("RUN", "BASELINE") for a in p._actions)}
    assert {"analyze", "compare", "leaderboard", "gate", "select"} <= set(reading)
    for name, parser in reading.items():
        options = {o for a in parser._actions for o in a.option_strings}
        assert {"--timestamp", "--label"} <= options, name


@pytest.mark.parametrize("verb, codes", [("compare", {0}), ("leaderboard", {0}), ("gate", {0, 1}), ("select", {0, 1})])
def test_timestamp_picks_one_run_in_every_directory_that_holds_several(tmp_path, capsys, monkeypatch, verb, codes):
    monkeypatch.chdir(tmp_path)
    base, cand = tmp_path / "base", tmp_path / "cand"
    lm_eval_run(base, STAMPS[0], list(range(10, 30)))
    lm_eval_run(base, STAMPS[1], list(range(10, 30)))
    lm_eval_run(cand, STAMPS[1], list(range(11, 31)), pretrained="/models/tiny-int4")
    labels = ["--label", f"{base}=tiny:bf16:16", "--label", f"{cand}=tiny:int4:4"]
    code, _, err = cli(capsys, verb, base, cand, *VERB_ARGS[verb], *labels, *FAST)
    assert_one_line_error(code, err, "--timestamp")
    code, _, err = cli(capsys, verb, base, cand, *VERB_ARGS[verb], *labels, "--timestamp", STAMPS[1], *FAST)
    assert code in codes, err
    code, _, err = cli(capsys, verb, base, cand, *VERB_ARGS[verb], *labels, "--timestamp", "2020-01-01", *FAST)
    assert_one_line_error(code, err, "2020-01-01")


# ----------------------------------------------------------------------------- 6. run metadata


def test_run_json_at_the_output_path_root_or_beside_the_results(tmp_path):
    out = tmp_path / "out"
    lm_eval_run(out / "models__tiny", STAMPS[0], [3, 4])
    (out / "run.json").write_text(json.dumps({"name": "q4", "precision": "int4", "bits": 4}))
    run = read_run(out)
    assert (run.name, run.precision, run.bits) == ("q4", "int4", 4)
    (out / "models__tiny" / "run.json").write_text(json.dumps({"name": "near", "precision": "int3", "bits": 3}))
    assert read_run(out).name == "near"  # the nearer one wins


def test_labels_let_the_leaderboard_find_the_baseline_of_stock_lm_eval_runs(tmp_path, capsys):
    base = lm_eval_run(tmp_path / "bf16", STAMPS[0], list(range(10, 30)), pretrained="Org/Model")
    cand = lm_eval_run(tmp_path / "int4", STAMPS[0], list(range(11, 31)), pretrained="Org/Model-AWQ")
    board = tmp_path / "board"
    code, _, err = cli(capsys, "leaderboard", base, cand, "--out", board, "--no-plots",
                       "--label", f"{base}=Org/Model:bf16:16", "--label", f"{cand}/=Org/Model:awq-w4:4", *FAST)
    assert code == 0, err
    written = json.loads((board / "leaderboard.json").read_text())
    runs = {r["name"]: (r["model"], r["precision"], r["bits"], r["role"]) for r in written["runs"]}
    assert runs == {"Org/Model": ("Org/Model", "bf16", 16, "baseline"), "Org/Model-AWQ": ("Org/Model", "awq-w4", 4, "candidate")}
    code, _, err = cli(capsys, "analyze", base, "--label", f"{tmp_path / 'other'}=m:bf16:16", "--quiet")
    assert_one_line_error(code, err, "--label", "other")
    code, _, err = cli(capsys, "analyze", base, "--label", f"{base}=bf16:many", "--quiet")
    assert_one_line_error(code, err, "--label", "many")


def test_readme_says_where_run_json_goes_and_what_it_holds():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Run metadata (run.json)", 1)[1].split("\n## ", 1)[0]
    assert set(HEADER_FIELDS) <= set(section.replace("`", " ").replace(",", " ").split())
    for words in ("results_*.json", "--output_path", "--label", "nearer"):
        assert words in section, words


# ----------------------------------------------------------------------------- 7. and 8. demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``qr-eval demo --quiet`` as a user runs it (reduced: 4 problems, fp32 and W4): in a folder
    of their own, a relative --out."""
    where = tmp_path_factory.mktemp("user")
    done = subprocess.run(
        [sys.executable, "-m", "qr_leaderboard.cli", "demo", "--out", "qr-demo", "--quiet",
         "--problems", "4", "--precisions", "fp32,w4"],
        cwd=where, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "qr-demo", done


def test_demo_runs_count_tokens_from_any_directory(demo, capsys):
    runs = demo[0] / "runs"
    assert Path(read_run(runs / "w4").tokenizer).is_absolute()
    code, out, err = cli(capsys, "analyze", runs / "w4", "--json", "--quiet")  # from the checkout, not the demo's folder
    assert code == 0, err
    assert "reasoning_tokens" in json.loads(out)["qr_toy"]
    code, out, err = cli(capsys, "compare", runs / "fp32", runs / "w4", "--n-resamples", "200", "--quiet")
    assert code == 0, err


def test_a_tokenizer_that_does_not_load_is_named_not_called_different(tmp_path, capsys, caplog):
    base = write_run(tmp_path / "b", [{"task": "t", "doc_id": 0, "completion": "a b</think>\\boxed{1}"}],
                     name="b", tokenizer=str(tmp_path / "gone-a"))  # fmt: skip
    cand = write_run(tmp_path / "c", [{"task": "t", "doc_id": 0, "completion": "a b c</think>\\boxed{1}"}],
                     name="c", tokenizer=str(tmp_path / "gone-b"))  # fmt: skip
    code, _, err = cli(capsys, "compare", base, cand, "--unit", "tokens", "--quiet")
    assert_one_line_error(code, err, "gone-a", "does not load", "--unit words")
    assert "different tokenizers" not in err
    for verb, runs in (("compare", [base, cand]), ("analyze", [base])):  # the default unit: words, said once
        with caplog.at_level(logging.WARNING):
            assert cli(capsys, verb, *runs, "--quiet")[0] == 0
        (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        caplog.clear()
        assert "gone-a" in warning and "does not load" in warning and "lengths in reasoning words" in warning
        assert "different tokenizers" not in warning


def test_demo_quiet_prints_nothing_on_stderr(demo):
    assert demo[1].stderr == ""


# ----------------------------------------------------------------------------- 9. descriptions


# what a description may claim -> the module that must ship for the claim to be true
CLAIMS = {
    "vllm": ROOT / "adapters" / "vllm.py",
    "replay": ROOT / "leaderboard" / "replay.py",
    "qr-hf": ROOT / "adapters" / "hf.py",
    "loop rescue": ROOT / "adapters" / "control" / "policy.py",
    "fp16 planning": ROOT / "adapters" / "control" / "policy.py",
    "rtn": ROOT / "adapters" / "quant.py",
    "bitsandbytes": ROOT / "adapters" / "quant.py",
    "gptq": ROOT / "adapters" / "quant.py",
}
NOT_ADAPTERS = {"replay"}  # a verb of qr-eval, not the adapters' to describe


def _descriptions() -> dict[str, tuple[str, set[str]]]:
    """Each shipped description and the claims it must make exactly when they ship."""
    import qr_adapters

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        "pyproject description": (project["description"], set(CLAIMS)),
        "qr_adapters docstring": (qr_adapters.__doc__, set(CLAIMS) - NOT_ADAPTERS),
    }


@pytest.mark.parametrize("where", ["pyproject description", "qr_adapters docstring"])
def test_descriptions_claim_what_ships_and_only_that(where):
    text, claims = _descriptions()[where]
    for claim in sorted(claims):
        shipped = CLAIMS[claim].exists()
        assert (claim in text.lower()) == shipped, f"{where}: mentions {claim!r}: {not shipped}, shipped: {shipped}"


# ----------------------------------------------------------------------------- 10. task READMEs


def test_every_task_family_has_a_readme_and_qr_maths_has_qr_aimes_shape():
    tasks = ROOT / "lm_eval_tasks"
    families = [d for d in tasks.iterdir() if d.is_dir() and any(d.glob("*.yaml"))]
    assert "qr_math" in {d.name for d in families}
    for family in families:
        readme = family / "README.md"
        assert readme.is_file(), f"{family.name} has no README.md"
        assert readme.read_text().startswith(f"# {family.name}\n") and "\n## Citation\n" in readme.read_text()
    text = (tasks / "qr_math" / "README.md").read_text()
    for section in ("## Dataset", "## Prompt", "## Answer checking", "## Citation", "## Checklist"):
        assert f"\n{section}\n" in text, section
    config = (tasks / "qr_math" / "qr_math.yaml").read_text()
    for key in ("dataset_path", "test_split"):
        value = config.split(f"{key}: ", 1)[1].split()[0]
        assert f"`{value}`" in text, (key, value)
