"""Samples present in one run only: excluded by default in compare, an error under
--strict and in gate/select unless --allow-missing (a gate must not pass a checkpoint that
was not evaluated on the whole set)."""

from __future__ import annotations

import json

import pytest

from helpers.cli import FAST, run_cli
from helpers.run_dirs import word_records, write_run

THRESHOLDS = ["--max-inflation", "1.2", "--max-accuracy-drop", "0.05"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 20-item baseline; candidates 1.1 x longer on all 20 items, on the first 10 only,
    and on all 20 plus one item the baseline lacks."""
    root = tmp_path_factory.mktemp("unpaired")
    base = write_run(root / "base", word_records([10] * 20, [True] * 20), name="base", bits=16)
    full = write_run(root / "full", word_records([11] * 20, [True] * 20), name="full", bits=4)
    half = write_run(root / "half", word_records([11] * 10, [True] * 10), name="half", bits=3)
    extra = write_run(root / "extra", word_records([11] * 21, [True] * 21), name="extra", bits=4)
    return {"base": base, "full": full, "half": half, "extra": extra}


def assert_one_line_error(code, err, *parts):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("qr-eval: error: ")
    for part in parts:
        assert part in err


HALF_MESSAGE = ("10 sample(s) are in one run only (10 baseline, 0 candidate)", "doc_id 10 repeat 0 in the baseline only")


def test_compare_strict_refuses_half_a_candidate(runs, capsys):
    code, out, err = run_cli(capsys, "compare", runs["base"], runs["half"], "--strict", *FAST)
    assert_one_line_error(code, err, str(runs["half"]), *HALF_MESSAGE)
    assert out == ""


def test_compare_without_strict_excludes_them(runs, capsys):
    code, out, _ = run_cli(capsys, "compare", runs["base"], runs["half"], "--json", *FAST)
    assert code == 0
    result = json.loads(out)
    assert (result["n_pairs"], result["only_baseline"], result["only_candidate"]) == (10, 10, 0)
    assert result["overall"]["ratio_of_means"]["estimate"] == pytest.approx(11 / 10)  # over the 10 pairs
    assert result["overall"]["mean_length"] == {"baseline": 10.0, "candidate": 11.0}


def test_strict_refuses_samples_the_baseline_lacks(runs, capsys):
    code, _, err = run_cli(capsys, "compare", runs["base"], runs["extra"], "--strict", *FAST)
    assert_one_line_error(code, err, "1 sample(s) are in one run only (0 baseline, 1 candidate)",
                          "doc_id 20 repeat 0 in the candidate only")  # fmt: skip


def test_gate_refuses_half_a_candidate(runs, capsys):
    code, out, err = run_cli(capsys, "gate", runs["base"], runs["half"], *THRESHOLDS, *FAST)
    assert_one_line_error(code, err, *HALF_MESSAGE, "--allow-missing")
    assert out == ""


def test_gate_allow_missing_evaluates_the_pairs(runs, capsys):
    code, out, _ = run_cli(capsys, "gate", runs["base"], runs["half"], *THRESHOLDS, *FAST, "--allow-missing", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["passed"] and result["comparison"]["n_pairs"] == 10
    assert [c["figure"] for c in result["checks"]] == [pytest.approx(1.1), pytest.approx(0.0)]
    assert any("no partner" in w for w in result["warnings"])


def test_gate_passes_the_full_candidate(runs, capsys):
    code, out, _ = run_cli(capsys, "gate", runs["base"], runs["full"], *THRESHOLDS, *FAST, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["passed"] and result["comparison"]["n_pairs"] == 20 and result["warnings"] == []
    assert [c["figure"] for c in result["checks"]] == [pytest.approx(1.1), pytest.approx(0.0)]  # 11 / 10 words


def test_select_refuses_half_a_candidate_unless_allowed(runs, capsys):
    # half is the cheapest (3 bits): without --allow-missing it must not be chosen silently.
    code, _, err = run_cli(capsys, "select", runs["base"], runs["full"], runs["half"], *THRESHOLDS, *FAST)
    assert_one_line_error(code, err, str(runs["half"]), *HALF_MESSAGE)
    code, out, _ = run_cli(capsys, "select", runs["base"], runs["full"], runs["half"], *THRESHOLDS, *FAST,
                           "--allow-missing")  # fmt: skip
    assert code == 0 and out == "half\n"
