"""qr-eval replay: the commit policy applied offline, checked against counts made here
independently (a brace scan for ``\\boxed{}``, a phrase search for stated answers,
math-verify called directly, words by ``str.split``)."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest
from math_verify import parse, verify

from helpers.fixture_data import generations_to_traces
from qr_leaderboard.cli import main
from helpers.run_dirs import write_run


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def last_boxed(text: str) -> tuple[int, str] | None:
    at = text.rfind("\\boxed{")
    while at != -1:
        depth, open_at = 0, at + len("\\boxed")
        for j in range(open_at, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return at, text[open_at + 1 : j].strip()
        at = text.rfind("\\boxed{", 0, at)
    return None


def last_stated(text: str) -> tuple[int, str] | None:
    """The last "the answer is X" (or "final answer: X"), X up to the sentence's end."""
    lowered, best = text.lower(), None
    for phrase in ("the answer is", "final answer is", "the answer:", "final answer:"):
        at = lowered.rfind(phrase)
        if at != -1 and (best is None or at > best[0]):
            rest = text[at + len(phrase) :].lstrip(" :")
            answer = rest[1 : rest.find("$", 1)] if rest.startswith("$") else re.split(r"[\n.;,]", rest, maxsplit=1)[0]
            best = (at, answer.strip())
    return best


def expected_replay(traces: list[dict], per_sample: list[dict]) -> dict:
    """Rescued count, accuracy before/after and words saved, computed from the analyze
    per-sample output (which traces loop, and where) without qr-eval's replay code."""
    rescued, saved, before, after = 0, 0, [], []
    for trace, sample in zip(traces, per_sample):
        before.append(sample["correct"])
        after.append(sample["correct"])
        if not sample["flags"]["loop"]:
            continue
        assert "<think>" not in trace["completion"]  # the prompt opened the reasoning
        reasoning = trace["completion"].split("</think>")[0]
        kept = trace["completion"][: sample["loop_onset_char"]]
        found = [a for a in (last_boxed(kept), last_stated(kept)) if a]
        if not found:
            continue
        answer = max(found)[1]
        rescued += 1
        saved += len(reasoning.split()) - len(kept.split())
        after[-1] = any(verify(parse(gold), parse(f"${answer}$")) for gold in trace["gold"])
    return {"rescued": rescued, "saved": saved, "before": np.mean(before), "after": np.mean(after)}


@pytest.fixture(scope="module")
def replayed(fixtures_dir, tmp_path_factory):
    """name -> (replay JSON, the expected figures), each file measured once per module."""
    cache = {}

    def get(name: str):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            traces = generations_to_traces(fixtures_dir / "generations" / f"{name}.json", root / "t.jsonl", "MATH-500")
            code, _, err = run_cli("analyze", root / "t.jsonl", "--quiet", "--per-sample", root / "s.jsonl")
            assert code == 0, err
            per_sample = [json.loads(line) for line in (root / "s.jsonl").read_text().splitlines()]
            code, out, err = run_cli("replay", root / "t.jsonl", "--json", "--quiet")
            assert code == 0, err
            cache[name] = json.loads(out), expected_replay(traces, per_sample)
        return cache[name]

    return get


# smoothquant's file holds a rescue that turns a wrong trace right (doc 20: "45").
@pytest.mark.parametrize("name", ["kvquant_star-kv3_MATH-500", "smoothquant-w8a8kv8_MATH-500"])
def test_real_replay_matches_an_independent_count(replayed, name):
    result, expected = replayed(name)
    task = result["tasks"]["MATH-500"]
    assert result["unit"] == "words" and result["policy"] == "commit"
    assert task["rescued"] == expected["rescued"] > 0
    assert task["saved"] == expected["saved"] > 0
    assert task["accuracy"]["before"] == pytest.approx(expected["before"])
    assert task["accuracy"]["after"] == pytest.approx(expected["after"])
    assert task["mean_length"]["before"] - task["mean_length"]["after"] == pytest.approx(expected["saved"] / task["n"])


def test_kv3_math500_figures(replayed):
    """The figures the README shows."""
    task = replayed("kvquant_star-kv3_MATH-500")[0]["tasks"]["MATH-500"]
    assert (task["n"], task["loops"], task["rescued"], task["saved"]) == (100, 8, 3, 11830)
    assert task["accuracy"] == {"before": 0.61, "after": 0.61}


LOOPING = "Let me add. 2+3 is 5, so \\boxed{5}. Hmm, check again." + " Wait, 2 plus 3 is 5." * 30
NO_ANSWER = "Hmm, no idea yet." + " Wait, is it 7 or 8?" * 30
CLOSED = "2+2 is 4.</think>The answer is \\boxed{4}."


@pytest.fixture
def small(tmp_path):
    """A looping trace with an answer before its loop, one without, a closed correct one;
    a counts-only baseline with 10 words per item."""
    traces = [
        {"task": "t", "doc_id": 0, "completion": LOOPING, "gold": "5"},
        {"task": "t", "doc_id": 1, "completion": NO_ANSWER, "gold": "7"},
        {"task": "t", "doc_id": 2, "completion": CLOSED, "gold": "4"},
    ]
    run = write_run(tmp_path / "cand", traces, name="cand")
    base = write_run(tmp_path / "base", [{"task": "t", "doc_id": i, "correct": True, "counts": {"words": 10}}
                                         for i in range(3)], name="base")  # fmt: skip
    code, _, err = run_cli("analyze", run, "--quiet", "--per-sample", tmp_path / "s.jsonl")
    assert code == 0, err
    onset = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["loop_onset_char"]
    return run, base, onset


def test_small_run_with_baseline(small):
    run, base, onset = small
    code, out, err = run_cli("replay", run, "--baseline", base, "--json", "--quiet", "--unit", "words")
    assert code == 0, err
    result = json.loads(out)
    task = result["tasks"]["t"]
    before = [len(LOOPING.split()), len(NO_ANSWER.split()), len("2+2 is 4.".split())]
    after = [len(LOOPING[:onset].split()), before[1], before[2]]
    assert (task["n"], task["loops"], task["rescued"]) == (3, 2, 1)
    assert task["accuracy"] == {"before": pytest.approx(1 / 3), "after": pytest.approx(2 / 3)}
    assert task["saved"] == sum(before) - sum(after)
    assert task["mean_length"] == {"before": pytest.approx(np.mean(before)), "after": pytest.approx(np.mean(after))}
    inflation = task["inflation"]
    assert inflation["n_pairs"] == 3
    assert inflation["before"]["estimate"] == pytest.approx(np.mean(before) / 10)
    assert inflation["after"]["estimate"] == pytest.approx(np.mean(after) / 10)
    assert result["baseline"]["name"] == "base" and result["warnings"] == []
    # The same ratio before rescue as compare's.
    code, out, _ = run_cli("compare", base, run, "--unit", "words", "--json", "--quiet")
    assert json.loads(out)["tasks"]["t"]["ratio_of_means"] == inflation["before"]


def test_against_counts_of_whole_completions_in_completion_words(small, tmp_path):
    """A per-sample CSV's baseline counts whole completions: the replay compares completion
    words, the candidate's cut at the loop onset (the committed answer's words not counted)."""
    run, _, onset = small
    base = write_run(tmp_path / "csv", [{"task": "t", "doc_id": i, "correct": True, "counts": {"completion_words": 10}}
                                        for i in range(3)], name="csv")  # fmt: skip
    code, out, err = run_cli("replay", run, "--baseline", base, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["unit"], result["unit_field"]) == ("completion_words", "completion_words")
    before = [len(LOOPING.split()), len(NO_ANSWER.split()), len(CLOSED.split())]
    after = [len(LOOPING[:onset].split()), before[1], before[2]]
    task = result["tasks"]["t"]
    assert task["saved"] == sum(before) - sum(after) > 0
    assert task["inflation"]["after"]["estimate"] == pytest.approx(np.mean(after) / 10)
    code, out, _ = run_cli("replay", run, "--baseline", base, "--quiet")
    assert "unit: completion words" in out
    cells = table_row(out, "t")
    assert cells["saved completion words"] == str(sum(before) - sum(after))
    assert cells["mean completion words before->after"] == f"{np.mean(before):.0f} -> {np.mean(after):.0f}"


def table_row(out: str, task: str) -> dict[str, str]:
    """The replay table's row of ``task``: header -> cell (columns are 2+ spaces apart)."""
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("task "))
    row = next(line for line in lines if line.startswith(f"{task} "))
    return dict(zip(re.split(r"\s{2,}", header), re.split(r"\s{2,}", row)))


def test_table_names_the_figures(small):
    run, base, onset = small
    code, out, err = run_cli("replay", run, "--baseline", base, "--quiet")
    assert code == 0, err
    before = [len(LOOPING.split()), len(NO_ANSWER.split()), len("2+2 is 4.".split())]
    after = [len(LOOPING[:onset].split()), before[1], before[2]]
    cells = table_row(out, "t")
    figures = [cells[k] for k in ("task", "n", "loops", "rescued", "acc% before->after")]
    assert figures == ["t", "3", "2", "1", "33.3 -> 66.7"]
    assert cells["saved words"] == str(sum(before) - sum(after))
    assert cells["mean words before->after"] == f"{np.mean(before):.0f} -> {np.mean(after):.0f}"
    # the baseline has 10 words per item: inflation is the mean length over 10
    assert cells["inflation before"].startswith(f"{np.mean(before) / 10:.2f} [")
    assert cells["inflation after"].startswith(f"{np.mean(after) / 10:.2f} [")


def test_tokens_with_a_tokenizer(small, tiny_model_dir, tmp_path):
    run, _, _ = small
    code, _, err = run_cli("analyze", run, "--quiet", "--tokenizer", tiny_model_dir, "--per-sample", tmp_path / "k.jsonl")
    assert code == 0, err
    first = json.loads((tmp_path / "k.jsonl").read_text().splitlines()[0])
    code, out, err = run_cli("replay", run, "--json", "--quiet", "--tokenizer", tiny_model_dir)
    assert code == 0, err
    result = json.loads(out)
    assert result["unit"] == "tokens"
    assert result["tasks"]["t"]["saved"] == first["counts"]["reasoning_tokens"] - first["loop_onset"] > 0


def test_no_gold_leaves_accuracy_after_unknown(tmp_path):
    run = write_run(tmp_path / "r", [{"task": "t", "doc_id": 0, "completion": LOOPING, "correct": False}])
    code, out, err = run_cli("replay", run, "--json", "--quiet")
    assert code == 0, err
    task = json.loads(out)["tasks"]["t"]
    assert task["rescued"] == 1 and task["accuracy"] == {"before": 0.0, "after": None}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--unit", "tokens"], ("sample(s) have no 'reasoning_tokens' count: no tokenizer could be resolved; "
                                "pass --tokenizer NAME_OR_PATH to count tokens or use --unit words")),
        (["--baseline", "missing"], "missing: no such file or directory"),
    ],
)
def test_bad_input_exits_2_in_one_line(small, argv, message):
    code, _, err = run_cli("replay", small[0], "--quiet", *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_only_the_commit_policy(small):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("replay", small[0], "--policy", "fallback")
    assert exit_info.value.code == 2
