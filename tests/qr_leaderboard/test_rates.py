"""One pathology rate: over the samples whose flag is known, reported with its coverage, the
same in analyze, compare, the leaderboard and the gate (issue 21, item 1)."""

from __future__ import annotations

import json

from helpers.run_dirs import write_run

from qr_leaderboard.cli import main

LOOP = "<think>Let me see. " + "Therefore, 15625=5^6. " * 40
PLAIN = "<think>Two plus two is four, so the answer follows.</think> The answer is \\boxed{4}."


def _runs(tmp_path):
    """A candidate with two text samples (one looping) and two count-only samples."""
    base = [{"task": "t", "doc_id": i, "completion": PLAIN, "gold": "4"} for i in range(4)]
    cand = [
        {"task": "t", "doc_id": 0, "completion": LOOP, "gold": "4"},
        {"task": "t", "doc_id": 1, "completion": PLAIN, "gold": "4"},
        {"task": "t", "doc_id": 2, "correct": True, "counts": {"words": 11}},
        {"task": "t", "doc_id": 3, "correct": True, "counts": {"words": 11}},
    ]
    header = {"model": "m", "bits": 4}
    return (write_run(tmp_path / "base", base, name="base", precision="bf16", **header),
            write_run(tmp_path / "cand", cand, name="cand", precision="w4", **header))


def _json(capsys, *args):
    code = main([*map(str, args), "--quiet"])
    return code, json.loads(capsys.readouterr().out)


def test_analyze_compare_and_leaderboard_give_one_rate_with_its_coverage(tmp_path, capsys):
    base, cand = _runs(tmp_path)
    _, summary = _json(capsys, "analyze", cand, "--json")
    assert summary["t"]["rates"]["loop"] == 0.5
    assert summary["t"]["known"]["loop"] == 2 and summary["t"]["n"] == 4

    _, comparison = _json(capsys, "compare", base, cand, "--json", "--n-resamples", "99")
    loop = comparison["overall"]["pathology_rates"]["loop"]
    assert loop == {"baseline": 0.0, "candidate": 0.5, "known": {"baseline": 4, "candidate": 2}}

    assert main(["leaderboard", str(base), str(cand), "--out", str(tmp_path / "lb"), "--no-plots",
                 "--n-resamples", "99", "--quiet"]) == 0
    board = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    row = next(r for r in board["rows"] if r["run"] == "cand" and r["task"] == "overall")
    assert row["rates"]["loop"] == 0.5 and row["rates_known"]["loop"] == 2 and row["n"] == 4
    assert "| 50.0 (2/4) |" in (tmp_path / "lb" / "leaderboard.md").read_text()


def test_the_gate_bounds_a_partly_known_rate_as_if_every_unknown_sample_had_it(tmp_path, capsys):
    """1 looping of 2 known, 2 unknown: the rate is 50 %, and at most 75 %."""
    base, cand = _runs(tmp_path)
    code, verdict = _json(capsys, "gate", base, cand, "--max-rate", "loop=0.5", "--json", "--n-resamples", "99")
    (check,) = verdict["checks"]
    assert code == 1 and check["figure"] == 0.75 and not check["passed"]
    assert check["detail"] == "loop: candidate 50.0% of the 2 of 4 samples whose flag is known, at most 75.0% " \
                              "if the 2 unknown have it, baseline 0.0%"
    code, verdict = _json(capsys, "gate", base, cand, "--max-rate", "loop=0.75", "--json", "--n-resamples", "99")
    assert code == 0 and verdict["checks"][0]["passed"]
