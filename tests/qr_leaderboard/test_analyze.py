"""qr-eval analyze on real generations and on bad input."""

from __future__ import annotations

import json
import re

import pytest

from helpers.fixture_data import generations_to_traces
from qr_leaderboard.cli import main
from qr_metrics.measure import measure
from qr_metrics.pathologies import PATHOLOGIES

GENERATIONS = [
    "gptq-w4g128_AIME-90",
    "kvquant_star-kv3_AIME-90",
    "kvquant_star-kv3_MATH-500",
    "smoothquant-w8a8kv8_AIME-90",
    "smoothquant-w8a8kv8_MATH-500",
]


@pytest.mark.parametrize("name", GENERATIONS)
def test_unclosed_count_equals_completions_without_closing_tag(fixtures_dir, tmp_path, capsys, name):
    task = name.split("_")[-1]
    records = generations_to_traces(fixtures_dir / "generations" / f"{name}.json", tmp_path / "t.jsonl", task)
    expected = sum("</think>" not in r["completion"] for r in records)
    assert main(["analyze", str(tmp_path / "t.jsonl"), "--json", "--quiet",
                 "--per-sample", str(tmp_path / "s.jsonl")]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)[task]
    assert summary["n"] == len(records)
    assert summary["counts"]["unclosed"] == expected
    # An unclosed trace has no answer: every one of them is graded wrong.
    per_sample = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert all(not s["correct"] for s in per_sample if s["flags"]["unclosed"])
    # Loops end traces that never close; closed traces do not loop (DESIGN.md, section 3).
    assert not any(s["flags"]["loop"] for s in per_sample if not s["flags"]["unclosed"])
    assert set(summary["rates"]) == set(PATHOLOGIES)


def test_kv3_math500_loops_and_the_15625_trace(fixtures_dir, tmp_path, capsys):
    records = generations_to_traces(
        fixtures_dir / "generations" / "kvquant_star-kv3_MATH-500.json", tmp_path / "t.jsonl", "MATH-500"
    )
    assert main(["analyze", str(tmp_path / "t.jsonl"), "--json", "--quiet", "--per-sample", str(tmp_path / "s.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out)["MATH-500"]
    assert summary["counts"]["unclosed"] == 13
    assert summary["counts"]["loop"] >= 7  # most unclosed traces end in loops
    per_sample = {json.loads(line)["doc_id"]: json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()}
    (doc_id,) = [r["doc_id"] for r in records if r["completion"].rstrip().endswith("Therefore, 15625=5")]
    hit = per_sample[doc_id]
    assert hit["flags"]["loop"] and hit["loop_kind"] == "exact"
    text = records[doc_id]["completion"]
    onset = hit["loop_onset_char"]
    tail = text[onset:]
    # The onset precedes the repeated tail, which runs to the budget cut ("...=5") ...
    assert tail.count("Therefore, 15625=5^6.") > 100
    assert set(re.split(r"\s*Therefore", tail)) == {", 15625=5^6.", ", 15625=5"}
    # ... and is its start: the sentence before it breaks the period ("So, 15625=5^6.").
    assert text[:onset].endswith("So")


def test_real_accuracy_matches_the_publishers_grading_closely(fixtures_dir):
    """math-verify grading of the answer segment agrees with the publisher's own grading
    on closed traces (they graded unclosed traces too, which qr-eval never does)."""
    items = json.loads((fixtures_dir / "generations" / "smoothquant-w8a8kv8_MATH-500.json").read_text())
    agree = total = 0
    for item in items:
        if "</think>" not in item["generated_text"]:
            continue
        m = measure(item["generated_text"], gold=item["gold"])
        total += 1
        agree += bool(m.correct) == bool(item["metrics"]["extractive_match"])
    assert total >= 80 and agree / total >= 0.95


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "t", "doc_id": 0, "completion": "x"}\n{"task": "t", "completion": "y"}\n')
    out = tmp_path / "per_sample.jsonl"
    assert main(["analyze", str(bad), "--per-sample", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.jsonl:2" in err and "doc_id" in err
    assert not out.exists() and not list(tmp_path.glob(".per_sample*"))


def test_human_table(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"task": "t", "doc_id": 0, "completion": "a</think>\\boxed{2}", "gold": "2"}) + "\n")
    assert main(["analyze", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    header, _, row = out.splitlines()[1:4]
    cells = dict(zip(re.split(r"\s{2,}", header), row.split()))
    # one sample, graded right; its reasoning is "a": 1 word; no pathology; no budget known
    assert cells == {"task": "t", "n": "1", "acc%": "100.0", "mean words": "1", "p90 words": "1", "loop%": "0.0",
                     "rep%": "0.0", "budget%": "-", "budget_in_r%": "-", "unclosed%": "0.0", "delayed%": "0.0",
                     "found_lost%": "0.0", "no_ans%": "0.0"}  # fmt: skip


def test_answer_found_not_given_is_unknown_without_a_gold(tmp_path, capsys):
    """Intermediate answers cannot be graded without a gold: '-' (unknown), not 0 %."""
    trace = "Maybe \\boxed{3}. No, 4.</think>\\boxed{4}"
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"task": "t", "doc_id": i, "completion": trace, "correct": ok}) + "\n"
                            for i, ok in enumerate([False, True])))
    assert measure(trace, correct=False).flags["answer_found_not_given"] is None
    assert measure(trace, gold="3").flags["answer_found_not_given"] is True
    assert main(["analyze", str(path), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)["t"]
    assert summary["rates"]["answer_found_not_given"] is None and summary["counts"]["answer_found_not_given"] is None
    assert main(["analyze", str(path), "--quiet"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()[1:4]
    rates = dict(zip(header.split()[-len(PATHOLOGIES):], row.split()[-len(PATHOLOGIES):]))
    assert rates["found_lost%"] == "-" and rates["unclosed%"] == "0.0"


def test_code_tasks_need_an_explicit_opt_in(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    record = {
        "task": "qr_humaneval",
        "doc_id": 0,
        "completion": "ok</think>\n```python\ndef add(a, b):\n    return a + b\n```",
        "gold": {"prelude": "", "tests": "assert add(1, 2) == 3", "entry_point": None},
    }
    path = tmp_path / "code.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert main(["analyze", str(path), "--quiet", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--confirm-run-unsafe-code" in err
