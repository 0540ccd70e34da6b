"""Accuracy under a thinking budget, token efficiency, reflection markers and the spread
between repeats: each against an independent computation, on hand-made samples and on the
real R1-distill generations (answers stated mid-reasoning, plenty of "Wait")."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from helpers.fixture_data import generations_to_traces
from qr_leaderboard.cli import main
from qr_leaderboard.compare import compare_runs
from qr_leaderboard.gate import GatePolicy, evaluate
from qr_leaderboard.options import Options
from qr_metrics.runs import read_run
from qr_metrics.stats import BootstrapConfig
from qr_metrics.graders import MATH
from qr_metrics.efficiency import budget_curve, count_markers, repeat_spread
from qr_metrics.measure import measure
from qr_metrics.params import DEFAULT_PARAMS, MeasureParams
from qr_metrics.segments import split_reasoning
from helpers.run_dirs import make_lm_eval_run, word_records, write_run

FAST = ["--unit", "words", "--n-resamples", "200", "--quiet"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- budget curve


def test_budget_curve_against_explicit_loops():
    lengths = [3, 10, 10, 25, 40, 7]
    correct = [True, True, False, True, False, True]
    curve = budget_curve(lengths, correct, limit=40, points=8)
    assert curve.budgets == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    for t, accuracy in zip(curve.budgets, curve.accuracy):
        within = 0
        for n, ok in zip(lengths, correct):
            if ok and n <= t:
                within += 1
        assert accuracy == within / 6
    # area by hand: each correct trace of length n is counted from t = n to t = 40
    assert curve.auc == pytest.approx(((40 - 3) + (40 - 10) + (40 - 25) + (40 - 7)) / 6 / 40)


def test_budget_auc_is_a_riemann_limit_and_traces_past_the_limit_add_nothing():
    rng = np.random.default_rng(3)
    lengths = rng.uniform(0, 150, size=50)
    correct = rng.random(50) < 0.6
    curve = budget_curve(lengths, correct, limit=100)
    ts = (np.arange(200_000) + 0.5) * 100 / 200_000
    oaa = [(correct[:, None] & (lengths[:, None] <= ts[None, :])).mean(axis=0)]
    assert curve.auc == pytest.approx(float(np.mean(oaa)), abs=1e-5)
    assert 0 <= curve.auc <= correct.mean()
    with pytest.raises(ValueError, match="positive limit"):
        budget_curve(lengths, correct, limit=0)


# ----------------------------------------------------------------------------- markers


def test_markers_whole_words_any_case_longest_first():
    text = (
        "Wait, that is off. But wait, 2+2. Hmm... HMM. Alternatively, let me double-check it.\n"
        "Let me  double-check again. I awaited a waiter; waiting is not wait-listing? "
    )
    # wait, but wait, Hmm, HMM, Alternatively, let me double-check, Let me  double-check, wait(-listing)
    assert count_markers(text, DEFAULT_PARAMS.reflection_markers) == 8
    assert count_markers(text, ("wait",)) == 3  # "but wait" now counts as its "wait"
    assert count_markers(text, ("awaited",)) == 1


def test_markers_count_as_the_plain_word_boundary_pattern_does():
    """The fast pattern (boundary checked after the first letter) against the textbook one."""
    rng = random.Random(3)
    markers = DEFAULT_PARAMS.reflection_markers + ("_x", "-ok", "2nd")
    pieces = ["wait", "Wait", "await", "but", "but  wait", "hmm", "hmmm", "let me", "double-check", "x", "_x",
              "-ok", "2nd", "a2nd", "alternatively", ",", ".", " ", "\n", "ß", "é"]
    plain = re.compile(r"\b(?:" + "|".join(
        r"\s+".join(map(re.escape, m.split())) for m in sorted(markers, key=len, reverse=True)) + r")\b")
    for _ in range(2000):
        text = "".join(rng.choice(pieces) + rng.choice(["", " ", ", "]) for _ in range(rng.randint(0, 12)))
        assert count_markers(text, markers) == len(plain.findall(text.lower())), text


def test_marker_list_is_a_validated_parameter():
    assert MeasureParams.from_mapping({"reflection_markers": ["hmm"]}).reflection_markers == ("hmm",)
    for bad in ("wait", ["wait", ""], [3]):
        with pytest.raises(ValueError, match="MeasureParams.reflection_markers=.* is invalid"):
            MeasureParams(reflection_markers=bad)
    with pytest.raises(ValueError, match="budget_points"):
        MeasureParams(budget_points=0)


# ----------------------------------------------------------------------------- efficiency


class WhitespaceTokens:
    """A token counter whose tokens are whitespace words (so token positions are checkable by hand)."""

    def encode(self, text):
        found = list(re.finditer(r"\S+", text))
        return np.arange(len(found)), np.array([m.start() for m in found], dtype=np.int64)


def test_first_correct_and_reflection_on_a_hand_made_trace():
    reasoning = "Let x be two. So the answer is 4. Wait, check: two plus two is 4. Yes."
    m = measure(reasoning + "</think>\\boxed{4}", gold="4", tokenizer=WhitespaceTokens())
    # "Let x be two. So" precede the stated answer: 5 of 17 words
    assert m.first_correct == {"words": 5, "reasoning_tokens": 5}
    assert m.counts["words"] == m.counts["reasoning_tokens"] == 17
    assert m.reflection_markers == 1
    wrong = measure(reasoning + "</think>\\boxed{5}", gold="4")
    assert wrong.first_correct is None
    never_stated = measure("Two plus two. Done.</think>\\boxed{4}", gold="4")
    assert never_stated.first_correct == {"words": 4}  # first written after the reasoning


def test_per_sample_and_per_task_efficiency(tmp_path, capsys):
    records = [
        {"task": "t", "doc_id": 0, "gold": "4", "completion": "a b the answer is 4. c d e f</think>\\boxed{4}"},
        {"task": "t", "doc_id": 1, "gold": "9", "completion": "a b c d</think>\\boxed{9}"},
        {"task": "t", "doc_id": 2, "gold": "1", "completion": "wait hmm the answer is 2.</think>\\boxed{2}"},
    ]
    write_run(tmp_path / "r", records, name="r")
    code, out, _ = run_cli(capsys, "analyze", tmp_path / "r", "--json", "--quiet", "--per-sample", tmp_path / "s.jsonl")
    assert code == 0
    per_sample = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert per_sample[0]["first_correct"] == {"words": 2} and per_sample[0]["reflection"] == {"words": 8}
    assert per_sample[0]["token_efficiency"] == {"words": pytest.approx(2 / 10)}
    assert per_sample[1]["token_efficiency"] == {"words": 1.0}
    assert per_sample[2]["first_correct"] is None and per_sample[2]["reflection_markers"] == 2
    summary = json.loads(out)["t"]
    assert summary["efficiency"] == {
        "unit": "words", "n_correct": 2, "first_correct": 3.0, "reflection": 4.0,
        "token_efficiency": pytest.approx((2 / 10 + 1) / 2),
    }
    # --json floats keep 12 significant digits (qr_metrics.files.json_ready)
    assert summary["reflection_markers"] == {"total": 2, "per_sample": round(2 / 3, 12),
                                             "per_1k_words": pytest.approx(2000 / 20)}  # fmt: skip
    limit = 10  # the longest trace; no token budget without a tokenizer
    assert summary["budget_accuracy"]["limit"] == limit
    assert summary["budget_accuracy"]["auc"] == pytest.approx(((1 - 10 / limit) + (1 - 4 / limit)) / 3)
    assert summary["repeats"] is None


# ----------------------------------------------------------------------------- repeats


def test_repeat_spread_by_hand():
    # 3 items x 2 repeats, item 2 has a third repeat
    item = ["a", "a", "b", "b", "c", "c", "c"]
    repeat = [0, 1, 0, 1, 0, 1, 2]
    correct = [1, 0, 1, 1, 0, 0, 1]
    spread = repeat_spread(item, repeat, correct)
    assert spread.pass_at_1 == pytest.approx((0.5 + 1 + 1 / 3) / 3)
    assert spread.per_repeat == [2 / 3, 1 / 3, 1.0]
    mean = (2 / 3 + 1 / 3 + 1) / 3
    assert spread.spread == pytest.approx(((2 / 3 - mean) ** 2 + (1 / 3 - mean) ** 2 + (1 - mean) ** 2) ** 0.5 / 2**0.5)
    assert repeat_spread(["a", "b"], [0, 0], [1, 0]) is None


def test_lm_eval_repeats_reach_analyze_and_compare(tmp_path, capsys):
    """Three repeats of one document as lm-eval logs them ([[r0, r1, r2]]) are three samples;
    pass@1 and the spread come out per task in analyze and on both sides in compare."""
    texts = ["x</think>\\boxed{2}", "y y</think>\\boxed{3}", "z z z</think>\\boxed{2}"]
    make_lm_eval_run(tmp_path / "base", "s1", responses=[[t] for t in texts])
    make_lm_eval_run(tmp_path / "cand", "s1", responses=[[t] for t in reversed(texts)])
    code, out, _ = run_cli(capsys, "analyze", tmp_path / "base", "--json", "--quiet")
    repeats = json.loads(out)["qr_math"]["repeats"]
    assert repeats == {"n_repeats": 3, "pass_at_1": pytest.approx(2 / 3), "per_repeat": [1.0, 0.0, 1.0],
                       "spread": pytest.approx(np.std([1, 0, 1], ddof=1))}
    code, out, _ = run_cli(capsys, "compare", tmp_path / "base", tmp_path / "cand", "--json", *FAST)
    assert code == 0
    block = json.loads(out)["tasks"]["qr_math"]
    assert block["n_pairs"] == 3 and block["repeats"]["candidate"]["per_repeat"] == [1.0, 0.0, 1.0]


# ----------------------------------------------------------------------------- real generations


@pytest.fixture(scope="module")
def real(fixtures_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    runs = {}
    for name in ("smoothquant-w8a8kv8", "kvquant_star-kv3"):
        records = generations_to_traces(fixtures_dir / "generations" / f"{name}_MATH-500.json",
                                        root / name / "traces.jsonl", "MATH-500")
        (root / name / "run.json").write_text(json.dumps({"name": name}))
        per = root / f"{name}.jsonl"
        assert main(["analyze", str(root / name), "--json", "--quiet", "--per-sample", str(per)]) == 0
        runs[name] = (root / name, records, [json.loads(line) for line in per.read_text().splitlines()])
    return runs


def _markers_by_words(reasoning: str) -> int:
    """The default markers counted on a word list, longest phrase first (not by regex alternation)."""
    words = re.findall(r"[a-z]+|-", reasoning.lower())
    phrases = [("let", "me", "double", "-", "check"), ("but", "wait"), ("alternatively",), ("wait",), ("hmm",)]
    count, i = 0, 0
    while i < len(words):
        for phrase in phrases:
            if tuple(words[i:i + len(phrase)]) == phrase:
                count, i = count + 1, i + len(phrase)
                break
        else:
            i += 1
    return count


def test_real_markers_and_efficiency(real, capsys):
    summaries = {}
    for name, (directory, records, per_sample) in real.items():
        for record, sample in zip(records, per_sample):
            text = record["completion"]
            segments = split_reasoning(text, DEFAULT_PARAMS)  # the segment is given; the figures are tested
            reasoning = segments.reasoning
            assert sample["reflection_markers"] == _markers_by_words(reasoning)
            if sample["correct"]:
                # the first stated answer equal to the final one, or the end of the reasoning
                final = MATH.final_answer(segments.answer)
                stated = [pos for pos, answer in MATH.intermediate_answers(reasoning) if MATH.same_answer(answer, final)]
                first = len(reasoning[: stated[0] if stated else len(reasoning)].split())
                assert sample["first_correct"]["words"] == first
                assert sample["reflection"]["words"] == len(reasoning.split()) - first
                if sample["flags"]["delayed_commitment"]:
                    assert sample["token_efficiency"]["words"] < 0.75
            else:
                assert sample["first_correct"] is None
        summaries[name] = json.loads(run_cli(capsys, "analyze", directory, "--json", "--quiet")[1])["MATH-500"]
        words = sum(s["counts"]["words"] for s in per_sample)
        markers = sum(s["reflection_markers"] for s in per_sample)
        assert summaries[name]["reflection_markers"]["per_1k_words"] == pytest.approx(1000 * markers / words)
        solved = [s["token_efficiency"]["words"] for s in per_sample if s["correct"]]
        assert summaries[name]["efficiency"]["token_efficiency"] == pytest.approx(np.mean(solved))
    assert any(s["reflection"]["words"] > 0 for s in real["kvquant_star-kv3"][2] if s["correct"])
    # the 3-bit KV cache says "wait" and the like more often per word than W8A8KV8
    assert (summaries["kvquant_star-kv3"]["reflection_markers"]["per_1k_words"]
            > summaries["smoothquant-w8a8kv8"]["reflection_markers"]["per_1k_words"] > 10)


def test_real_compare_budget_auc_marker_ratio_and_gate(real, capsys):
    base_dir, _, base = real["smoothquant-w8a8kv8"]
    cand_dir, _, cand = real["kvquant_star-kv3"]
    code, out, _ = run_cli(capsys, "compare", base_dir, cand_dir, "--json", *FAST)
    assert code == 0
    result = json.loads(out)
    block = result["tasks"]["MATH-500"]
    limit = max(s["counts"]["words"] for s in base + cand)
    for side, samples in (("baseline", base), ("candidate", cand)):
        curve = block["budget_accuracy"][side]
        assert curve["limit"] == limit
        area = 0.0
        for s in samples:  # each correct trace adds the budgets it fits in
            if s["correct"]:
                area += (limit - s["counts"]["words"]) / limit
        assert curve["auc"] == pytest.approx(area / len(samples))
    rates = [1000 * sum(s["reflection_markers"] for s in run) / sum(s["counts"]["words"] for s in run)
             for run in (base, cand)]
    assert block["reflection_marker_ratio"] == pytest.approx(rates[1] / rates[0])
    assert block["budget_accuracy"]["candidate"]["auc"] < block["budget_accuracy"]["baseline"]["auc"]
    # the gate's min_budget_auc: inclusive at the figure, failing just above it
    comparison = compare_runs(read_run(base_dir), read_run(cand_dir), Options(unit="words", progress=False,
                                                                              bootstrap=BootstrapConfig(n_resamples=99)))
    auc = comparison.overall.reasoning.candidate["budget_accuracy"]["auc"]
    assert result["overall"]["budget_accuracy"]["candidate"]["auc"] == pytest.approx(auc, rel=1e-11)
    (at,) = evaluate(comparison, GatePolicy(min_budget_auc=auc))
    (above,) = evaluate(comparison, GatePolicy(min_budget_auc=min(1.0, auc + 1e-9)))
    assert (at.name, at.kind, at.passed, above.passed) == ("budget_auc", "auc", True, False)
    code, out, _ = run_cli(capsys, "gate", base_dir, cand_dir, "--min-budget-auc", "0.9", *FAST)
    assert code == 1 and "budget AUC" in out and "≥ 0.9" in out


def test_gate_budget_auc_fails_without_correctness_and_rejects_out_of_range(tmp_path, capsys):
    records = word_records([10, 20], [True, False])
    for r in records:
        del r["correct"]
    base = write_run(tmp_path / "b", records, name="b")
    cand = write_run(tmp_path / "c", records, name="c")
    code, out, _ = run_cli(capsys, "gate", base, cand, "--min-budget-auc", "0.1", *FAST)
    assert code == 1 and "budget AUC unknown" in out
    for bad in (1.5, -0.1, True):
        with pytest.raises(ValueError, match=r"GatePolicy\.min_budget_auc="):
            GatePolicy(min_budget_auc=bad)
