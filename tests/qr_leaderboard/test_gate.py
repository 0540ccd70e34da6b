"""qr-eval gate and select: the policy, decisions at and around each threshold, exit codes,
and the real R1-distill MATH-500 outputs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from qr_leaderboard.gate import GatePolicy, evaluate, load_policy
from qr_leaderboard.render.text import gate_summary
from qr_leaderboard.results import Comparison, PairedFigures, RateSides, Sides
from qr_metrics.pathologies import FlagRate
from qr_metrics.stats import AccuracyComparison, BootstrapConfig, Interval, MacroRatio
from qr_metrics.units import UNITS
from qr_metrics.runs import InputError
from helpers.cli import FAST, run_cli
from helpers.run_dirs import FIXTURE_BITS, QUANTIZED, fixture_runs, word_records, write_run


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    """20 items x 10 repeats. The candidate is 1.2 x longer on every sample and wrong on one
    repeat of every item, so every resample gives ratio 1.2 and accuracy delta -0.1
    exactly: the intervals collapse onto the estimates and thresholds can be hit exactly."""
    root = tmp_path_factory.mktemp("exact")
    base = write_run(root / "base", word_records([10] * 20, [True] * 20, repeats=10),
                     name="base", model="m", precision="bf16", bits=16)
    cand = write_run(root / "cand", word_records([12] * 20, [[False] + [True] * 9] * 20, repeats=10),
                     name="cand", model="m", precision="q4", bits=4)
    return base, cand


# ----------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_inflation": 0}, "max_inflation"),
        ({"max_inflation": True}, "max_inflation"),
        ({"max_inflation": math.inf}, "max_inflation"),
        ({"max_accuracy_drop": 1.5}, "max_accuracy_drop"),
        ({"max_accuracy_drop": "0.06"}, "max_accuracy_drop"),
        ({"max_rates": {"lop": 0.1}}, "max_rates.lop"),
        ({"max_rates": {"loop": -0.1}}, "max_rates.loop"),
        ({"ratio": "median"}, "ratio"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_policy_rejects_invalid_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"GatePolicy\.{field}=.* is invalid: must be"):
        GatePolicy(**kwargs)


def test_policy_file_loads_and_orders_rates(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("max_inflation: 1.2\nmax_accuracy_drop: 0.06\nmax_rates:\n  unclosed: 0.05\n  loop: 0.02\n")
    policy = load_policy(path)
    assert policy == GatePolicy(max_inflation=1.2, max_accuracy_drop=0.06, max_rates={"loop": 0.02, "unclosed": 0.05})
    assert list(policy.max_rates) == ["loop", "unclosed"]  # report order


@pytest.mark.parametrize(
    "text, expected",
    [
        ("max_inflation: 1.2\nmax_inflaton: 1.3\n", r"policy\.yaml:2: field 'max_inflaton': unknown key"),
        ("max_inflation: 1.2\nmax_rates:\n  loop: 0.02\n  lop: 0.1\n", r"policy\.yaml:4: field 'max_rates\.lop'"),
        ("max_accuracy_drop: six\n", r"policy\.yaml:1: field 'max_accuracy_drop'"),
        ("max_inflation: [1.2\n", r"policy\.yaml:2: malformed YAML"),
        ("- max_inflation\n", r"policy\.yaml:1: expected a mapping"),
    ],
)
def test_policy_file_errors_exit_2_with_one_line(tmp_path, capsys, exact, text, expected):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    base, cand = exact
    code, out, err = run_cli(capsys, "gate", base, cand, "--policy", path, *FAST)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("qr-eval: error: ")
    assert __import__("re").search(expected, err), err


def test_missing_policy_file_and_missing_thresholds_exit_2(tmp_path, capsys, exact):
    base, cand = exact
    code, _, err = run_cli(capsys, "gate", base, cand, "--policy", tmp_path / "absent.yaml", *FAST)
    assert code == 2 and "absent.yaml" in err and "cannot read" in err
    code, _, err = run_cli(capsys, "gate", base, cand, *FAST)
    assert code == 2 and "no thresholds" in err
    code, _, err = run_cli(capsys, "gate", base, cand, "--max-rate", "loop", *FAST)
    assert code == 2 and "PATHOLOGY=RATE" in err
    code, _, err = run_cli(capsys, "gate", base, cand, "--max-rate", "wobble=0.1", *FAST)
    assert code == 2 and "--max-rate wobble: 'wobble' is invalid: must be a pathology name" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-inflation", "-1"], "qr-eval: error: --max-inflation: -1.0 is invalid: must be a number > 0\n"),
        (["--max-accuracy-drop", "2"], "qr-eval: error: --max-accuracy-drop: 2.0 is invalid: must be a share in [0, 1]"),
        (["--max-rate", "loop=1.5"], "qr-eval: error: --max-rate loop: 1.5 is invalid: must be a rate in [0, 1]\n"),
        (["--min-budget-auc", "3"], "qr-eval: error: --min-budget-auc: 3.0 is invalid"),
        (["--max-inflation", "2", "--confidence", "1.5"],
         "qr-eval: error: --confidence: 1.5 is invalid: must be a number in (0, 1)\n"),
        (["--max-inflation", "2", "--n-resamples", "-5"],
         "qr-eval: error: --n-resamples: -5 is invalid: must be an integer in [1, 1000000]\n"),
    ],
)
def test_bad_flag_values_name_the_flag_not_a_class(capsys, exact, flags, message):
    base, cand = exact
    code, out, err = run_cli(capsys, "gate", base, cand, *FAST, *flags)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(message) and "GatePolicy" not in err and "BootstrapConfig" not in err


def test_policy_file_values_name_the_key_not_a_class(tmp_path, capsys, exact):
    path = tmp_path / "policy.yaml"
    path.write_text("max_inflation: -1\n")
    code, _, err = run_cli(capsys, "gate", *exact, "--policy", path, *FAST)
    assert code == 2 and err.endswith("policy.yaml:1: field 'max_inflation': -1 is invalid: must be a number > 0 or null\n")


def test_an_empty_policy_file_is_named_not_the_flag(tmp_path, capsys, exact):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    code, _, err = run_cli(capsys, "gate", *exact, "--policy", path, *FAST)
    assert code == 2 and err.count("\n") == 1
    assert f"{path}: no thresholds: set one of max_inflation" in err and "or --policy" not in err


def test_flags_override_the_policy_file(tmp_path, capsys, exact):
    base, cand = exact
    path = tmp_path / "policy.yaml"
    path.write_text("max_inflation: 1.1\nconfidence: 0.9\n")
    code, out, _ = run_cli(capsys, "gate", base, cand, "--policy", path, "--json", *FAST)
    result = json.loads(out)
    assert code == 1 and result["confidence"] == 0.9 and result["policy"]["max_inflation"] == 1.1
    code, out, _ = run_cli(capsys, "gate", base, cand, "--policy", path, "--max-inflation", "1.2",
                           "--confidence", "0.8", "--json", *FAST)
    result = json.loads(out)
    assert code == 0 and result["confidence"] == 0.8 and result["policy"]["max_inflation"] == 1.2


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    "flags, code",
    [
        (["--max-inflation", "1.2"], 0),  # exactly at the threshold passes
        (["--max-inflation", "1.1999"], 1),
        (["--max-inflation", "1.2001"], 0),
        (["--max-accuracy-drop", "0.1"], 0),
        (["--max-accuracy-drop", "0.0999"], 1),
        (["--max-accuracy-drop", "0.1001"], 0),
        (["--max-inflation", "1.2", "--max-accuracy-drop", "0.0999"], 1),  # every check must pass
    ],
)
def test_gate_at_and_around_each_threshold(capsys, exact, flags, code):
    base, cand = exact
    got, out, err = run_cli(capsys, "gate", base, cand, *flags, *FAST)
    assert got == code, out + err
    assert out.startswith(f"### qr-eval gate: {'PASS' if code == 0 else 'FAIL'}: cand against base")


def test_gate_verdict_names_each_check_figure_and_threshold(capsys, exact):
    base, cand = exact
    code, out, _ = run_cli(capsys, "gate", base, cand, "--max-inflation", "1.2", "--max-accuracy-drop", "0.05", *FAST)
    assert code == 1
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "check" not in line}
    inflation = rows["inflation (ratio\\_of\\_means), 95% upper bound"]
    assert "| 1.200 | ≤ 1.2 | pass |" in inflation
    drop = rows["accuracy drop, 95% upper bound"]
    assert "| 10.0 pts | ≤ 5 pts | **fail** |" in drop


def test_gate_json_figures(capsys, exact):
    base, cand = exact
    code, out, _ = run_cli(capsys, "gate", base, cand, "--max-inflation", "1.2", "--max-accuracy-drop", "0.1", "--json", *FAST)
    result = json.loads(out)
    assert code == 0 and result["passed"] is True
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["inflation"]["figure"] == 1.2 and checks["inflation"]["threshold"] == 1.2
    assert checks["accuracy_drop"]["figure"] == pytest.approx(0.1, abs=1e-15)
    assert result["comparison"]["overall"]["ratio_of_means"]["estimate"] == 1.2


def _comparison(ratio=(1.0, 0.9, 1.1), delta=(-0.02, -0.05, 0.01), rates=None):
    """A ``Comparison`` carrying only what ``evaluate`` reads; ``rates``: pathology -> the
    candidate's rate over 100 samples (None: no flag known)."""
    interval = lambda values: Interval(*values)  # noqa: E731
    accuracy = None if delta is None else AccuracyComparison(
        interval((0.8, None, None)), interval((0.78, None, None)), interval(delta), 1.0, 0, 0, 100, 100)
    flag = lambda rate: FlagRate(0, 0, 100) if rate is None else FlagRate(round(100 * rate), 100, 100)  # noqa: E731
    overall = PairedFigures(
        n_pairs=100, n_items=100, mean_length=Sides(1.0, 1.0), ratio_of_means=interval(ratio), both_correct_ratio=None,
        paired_geomean_ratio=None, ratio_is_lower_bound=False,
        pathology_rates={name: RateSides(FlagRate(0, 0, 100), flag(rate)) for name, rate in (rates or {}).items()},
        accuracy=accuracy, reasoning=Sides({}, {}), reflection_marker_ratio=None, notes=(),
    )
    macro = MacroRatio(interval(ratio), (), ())
    return Comparison(UNITS["words"], BootstrapConfig(), "b", Path("b"), "c", Path("c"), 100, 0, 0, (), {"t": overall},
                      overall, macro)


def test_gate_summary_is_the_verdict_in_plain_text():
    policy = GatePolicy(max_inflation=1.05, max_accuracy_drop=0.1)
    checks = evaluate(_comparison(ratio=(1.0, 0.9, 1.1)), policy)
    result = {"candidate": "w4", "baseline": "fp32", "passed": False, "checks": [c.as_dict() for c in checks]}
    lines = gate_summary(result).splitlines()
    assert lines[0] == "gate w4 vs fp32: FAIL"
    assert lines[1].startswith("  FAIL  inflation (ratio_of_means), 95% upper bound ≤ 1.05: ")
    assert lines[2].startswith("  pass  accuracy drop, 95% upper bound ≤ 10 pts: ")
    assert len(lines) == 3


def test_evaluate_bounds_are_inclusive_to_the_last_bit():
    high = 1.1234567
    at = evaluate(_comparison(ratio=(1.0, 0.9, high)), GatePolicy(max_inflation=high))
    below = evaluate(_comparison(ratio=(1.0, 0.9, high)), GatePolicy(max_inflation=math.nextafter(high, 0)))
    assert at[0].passed and not below[0].passed and at[0].figure == high
    low = -0.0537
    drop = evaluate(_comparison(delta=(-0.02, low, 0.01)), GatePolicy(max_accuracy_drop=0.0537))
    assert drop[0].figure == 0.0537 and drop[0].passed
    drop = evaluate(_comparison(delta=(-0.02, low, 0.01)), GatePolicy(max_accuracy_drop=math.nextafter(0.0537, 0)))
    assert not drop[0].passed
    rate = evaluate(_comparison(rates={"loop": 0.03}), GatePolicy(max_rates={"loop": 0.03}))
    assert rate[0].passed
    rate = evaluate(_comparison(rates={"loop": 0.03}), GatePolicy(max_rates={"loop": 0.0299}))
    assert not rate[0].passed


def test_an_accuracy_gain_gives_a_negative_drop_that_passes():
    checks = evaluate(_comparison(delta=(0.05, 0.02, 0.08)), GatePolicy(max_accuracy_drop=0.0))
    assert checks[0].figure == -0.02 and checks[0].passed


@pytest.mark.parametrize(
    "comparison, policy, reason",
    [
        (_comparison(ratio=(1.0, None, None)), GatePolicy(max_inflation=2.0), "has no interval"),
        (_comparison(delta=None), GatePolicy(max_accuracy_drop=0.5), "accuracy unknown"),
        (_comparison(delta=(-0.1, None, None)), GatePolicy(max_accuracy_drop=0.5), "no interval"),
        (_comparison(rates={"loop": None}), GatePolicy(max_rates={"loop": 1.0}), "loop rate unknown"),
    ],
)
def test_a_figure_the_data_cannot_give_fails_its_check(comparison, policy, reason):
    (check,) = evaluate(comparison, policy)
    assert check.figure is None and not check.passed and reason in check.detail


def test_pathology_rate_from_completions(tmp_path, capsys):
    closed = "First I add.\n\nThen I check.</think>The answer is \\boxed{1}."
    unclosed = "First I add.\n\nThen I check, and check, and go on"
    records = lambda texts: [{"task": "t", "doc_id": i, "completion": c, "correct": True} for i, c in enumerate(texts)]
    base = write_run(tmp_path / "b", records([closed] * 4), name="b")
    cand = write_run(tmp_path / "c", records([closed] * 3 + [unclosed]), name="c")
    code, out, _ = run_cli(capsys, "gate", base, cand, "--max-rate", "unclosed=0.25", "--json", *FAST)
    assert code == 0 and json.loads(out)["checks"][0]["figure"] == 0.25
    code, out, _ = run_cli(capsys, "gate", base, cand, "--max-rate", "unclosed=0.249", *FAST)
    assert code == 1 and "| unclosed rate | 25.0% | ≤ 24.9% | **fail** |" in out


def test_gate_appends_its_verdict_to_the_github_step_summary(tmp_path, capsys, monkeypatch, exact):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    base, cand = exact
    code, out, _ = run_cli(capsys, "gate", base, cand, "--max-inflation", "1.5", "--json", *FAST)
    assert code == 0 and json.loads(out)["passed"]
    text = summary.read_text()
    assert text.startswith("earlier step\n### qr-eval gate: PASS: cand against base")
    assert "| 1.200 | ≤ 1.5 | pass |" in text  # the candidate is 12 words / 10 on every sample


# ----------------------------------------------------------------------------- select


@pytest.fixture(scope="module")
def priced(tmp_path_factory):
    """Baseline 100 words, all correct; candidates with known bits and mean lengths."""
    root = tmp_path_factory.mktemp("priced")
    n = 30
    base = write_run(root / "base", word_records([100] * n, [True] * n), name="base", model="m", precision="bf16", bits=16)

    def cand(name, bits, length, wrong=0):
        return write_run(root / name, word_records([length] * n, [i >= wrong for i in range(n)]),
                         name=name, model="m", precision=name, bits=bits)

    return base, {
        "w4-150": cand("w4-150", 4, 150),   # cost 600
        "w3-200": cand("w3-200", 3, 200),   # cost 600: ties with w4-150, fewer bits
        "w4-140": cand("w4-140", 4, 140),   # cost 560: cheapest passing
        "w2-100": cand("w2-100", 2, 100, wrong=15),  # cost 200 but accuracy falls by half
        "w8-100": cand("w8-100", 8, 100),   # cost 800
    }


def test_select_picks_the_cheapest_passing_candidate(capsys, priced):
    base, c = priced
    code, out, err = run_cli(capsys, "select", base, c["w8-100"], c["w4-150"], c["w2-100"], c["w4-140"],
                             "--max-inflation", "2.5", "--max-accuracy-drop", "0.1", *FAST)
    assert (code, out) == (0, "w4-140\n")
    assert "qr-eval select: selected w4-140" in err


def test_equal_costs_go_to_fewer_bits_and_only_then(capsys, priced):
    base, c = priced
    args = ["--max-inflation", "2.5", "--max-accuracy-drop", "0.1", *FAST]
    assert run_cli(capsys, "select", base, c["w4-150"], c["w3-200"], *args)[:2] == (0, "w3-200\n")
    assert run_cli(capsys, "select", base, c["w3-200"], c["w4-150"], *args)[:2] == (0, "w3-200\n")
    # fewer bits do not win against a lower cost
    assert run_cli(capsys, "select", base, c["w3-200"], c["w8-100"], c["w4-140"], *args)[:2] == (0, "w4-140\n")


def test_select_json_gives_every_candidate_checks_and_cost(capsys, priced):
    base, c = priced
    code, out, _ = run_cli(capsys, "select", base, c["w2-100"], c["w4-150"], "--max-inflation", "1.4",
                           "--max-accuracy-drop", "0.1", "--json", *FAST)
    result = json.loads(out)
    assert code == 1 and result["selected"] is None
    by_name = {r["name"]: r for r in result["candidates"]}
    assert by_name["w2-100"]["cost"] == 200 and by_name["w4-150"]["cost"] == 600
    assert by_name["w2-100"]["bits"] == 2 and by_name["w2-100"]["mean_length"] == 100
    assert [ch["name"] for ch in by_name["w2-100"]["checks"]] == ["inflation", "accuracy_drop"]
    assert [ch["passed"] for ch in by_name["w2-100"]["checks"]] == [True, False]
    assert [ch["passed"] for ch in by_name["w4-150"]["checks"]] == [False, True]


def test_select_exits_1_with_no_name_when_none_passes(capsys, priced):
    base, c = priced
    code, out, err = run_cli(capsys, "select", base, c["w2-100"], "--max-accuracy-drop", "0.1", *FAST)
    assert code == 1 and out == "" and "no candidate passes" in err


def test_select_needs_bits_and_distinct_names(tmp_path, capsys, priced):
    base, c = priced
    nobits = write_run(tmp_path / "nobits", word_records([100] * 30, [True] * 30), name="nobits")
    code, out, err = run_cli(capsys, "select", base, c["w4-150"], nobits, "--max-inflation", "2", *FAST)
    assert code == 2 and out == "" and "nobits" in err and "'bits'" in err
    code, _, err = run_cli(capsys, "select", base, c["w4-150"], c["w4-150"], "--max-inflation", "2", *FAST)
    assert code == 2 and "two candidates are named 'w4-150'" in err


# ----------------------------------------------------------------------------- real outputs


def _csv_column(fixtures_dir, name, column):
    with (fixtures_dir / "per_sample" / f"{name}_MATH-500.csv").open(newline="") as handle:
        return [row[column] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def real(fixtures_dir, tmp_path_factory):
    return fixture_runs(fixtures_dir, tmp_path_factory.mktemp("r1-distill"))


THRESHOLDS = ["--max-inflation", "1.2", "--max-accuracy-drop", "0.06", "--n-resamples", "2000", "--quiet"]


@pytest.mark.parametrize("name, code", [("awq-w4g128", 0), ("awq-w3g128", 1), ("gptq-w3g128", 1)])
def test_gate_on_the_real_math500_outputs(fixtures_dir, real, capsys, name, code):
    got, out, _ = run_cli(capsys, "gate", real["bf16"], real[name], "--json", *THRESHOLDS)
    result = json.loads(out)
    assert got == code and result["passed"] is (code == 0)
    # the point estimates, independently from the publisher's CSV
    base_words = [int(w) for w in _csv_column(fixtures_dir, "bf16", "word_count")]
    cand_words = [int(w) for w in _csv_column(fixtures_dir, name, "word_count")]
    base_ok = [v == "True" for v in _csv_column(fixtures_dir, "bf16", "is_correct")]
    cand_ok = [v == "True" for v in _csv_column(fixtures_dir, name, "is_correct")]
    overall = result["comparison"]["overall"]
    assert overall["ratio_of_means"]["estimate"] == pytest.approx(sum(cand_words) / sum(base_words), rel=1e-12)
    assert overall["accuracy"]["delta"]["estimate"] == pytest.approx((sum(cand_ok) - sum(base_ok)) / 500, abs=1e-12)
    checks = {c["name"]: c for c in result["checks"]}
    if name == "awq-w4g128":  # passes with a margin the bootstrap's noise cannot cross
        assert checks["inflation"]["figure"] < 1.15 and checks["accuracy_drop"]["figure"] < 0.055
    elif name == "awq-w3g128":
        assert not checks["inflation"]["passed"] and not checks["accuracy_drop"]["passed"]
        assert checks["inflation"]["figure"] > 3
    else:  # gptq-w3g128 keeps its length but loses accuracy
        assert checks["inflation"]["passed"] and checks["accuracy_drop"]["figure"] > 0.12


def test_select_on_the_real_math500_outputs(fixtures_dir, real, capsys):
    code, out, err = run_cli(capsys, "select", real["bf16"], *(real[n] for n in QUANTIZED), *THRESHOLDS)
    assert (code, out) == (0, "awq-w4g128\n"), err
    code, out, _ = run_cli(capsys, "select", real["bf16"], *(real[n] for n in QUANTIZED), "--json", *THRESHOLDS)
    result = json.loads(out)
    assert result["selected"] == "awq-w4g128"
    passed = {c["name"]: c["passed"] for c in result["candidates"]}
    assert passed == {"awq-w4g128": True, "awq-w3g128": False, "gptq-w4g128": True,
                      "gptq-w3g128": False, "kvquant_star-kv4": True}
    for candidate in result["candidates"]:  # cost = bits x mean words, from the publisher's CSV
        words = [int(w) for w in _csv_column(fixtures_dir, candidate["name"], "word_count")]
        assert candidate["bits"] == FIXTURE_BITS[candidate["name"]]
        assert candidate["cost"] == pytest.approx(FIXTURE_BITS[candidate["name"]] * sum(words) / len(words), rel=1e-12)


def test_unknown_pathology_rates_fail_on_counts_only_data_and_say_what_gives_them(real, capsys):
    code, out, _ = run_cli(capsys, "gate", real["bf16"], real["awq-w4g128"], "--max-rate", "loop=0.5",
                           "--max-rate", "budget_exhausted=0.5", "--json", "--n-resamples", "500", "--quiet")
    details = {c["name"]: c["detail"] for c in json.loads(out)["checks"]}
    assert code == 1
    assert details["loop"] == "loop rate unknown: needs the completions' text (count-only data has none)"
    assert details["budget_exhausted"].startswith("budget_exhausted rate unknown: needs a finish reason, or token counts")


def test_input_error_is_reported_not_raised(tmp_path, capsys):
    with pytest.raises(InputError):
        load_policy(tmp_path / "none.yaml")


# ----------------------------------------------------------------------------- examples


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


def test_the_example_policy_loads():
    policy = load_policy(EXAMPLES / "qr-gate.yaml")
    assert policy == GatePolicy(max_inflation=1.2, max_accuracy_drop=0.06, confidence=0.95)


@pytest.mark.parametrize("verb", ["gate", "select"])
def test_the_example_policy_passes_what_the_readme_says_passes(real, capsys, verb):
    """README: on the fixtures' per-sample counts awq-w4g128 passes and select picks it, with
    the thresholds of examples/qr-gate.yaml."""
    runs = [real["bf16"], real["awq-w4g128"]] if verb == "gate" else [real["bf16"], *(real[n] for n in QUANTIZED)]
    code, out, err = run_cli(capsys, verb, *runs, "--policy", EXAMPLES / "qr-gate.yaml", "--n-resamples", "2000", "--quiet")
    assert code == 0, out + err
    assert (out == "awq-w4g128\n") if verb == "select" else ("PASS: awq-w4g128" in out)


def test_the_example_workflow_uses_real_verbs_and_options():
    import re

    import yaml

    from qr_leaderboard.cli import build_parser

    text = (EXAMPLES / "quantized-checkpoint-gate.yml").read_text()
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["gate"]["steps"]
    scripts = "\n".join(step.get("run", "") for step in steps).replace("\\\n", " ")
    verbs = build_parser()._subparsers._group_actions[0].choices
    used = re.findall(r"qr-eval (\w[\w-]*)([^\n]*)", scripts)
    assert {verb for verb, _ in used} >= {"select", "gate", "leaderboard", "tasks-path"}
    for verb, rest in used:
        known = {o for action in verbs[verb]._actions for o in action.option_strings}
        assert set(re.findall(r"(--[a-z-]+)", _own_words(rest))) <= known, (verb, rest)


def _own_words(rest: str) -> str:
    """The command's own text: nested $(...) left out, cut where its own $(...) closes or
    at a pipe, a redirection or a list operator."""
    kept, depth, i = [], 0, 0
    while i < len(rest):
        if rest.startswith("$(", i):
            depth, i = depth + 1, i + 2
            continue
        if depth == 0 and rest[i] in ")|>;&":
            break
        if rest[i] == ")":
            depth -= 1
        elif depth == 0:
            kept.append(rest[i])
        i += 1
    return "".join(kept)
