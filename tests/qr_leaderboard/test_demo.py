"""The README's main job: ``qr-eval demo`` tells the whole story offline (here reduced: a few
problems, fp32 and W4 only, through the same code)."""

import contextlib
import io
import json

import pytest

from qr_leaderboard.cli import main
from qr_leaderboard.demo.story import GATE_POLICY
from qr_metrics.runs import SIDE_FILE, read_run

PROBLEMS = 8
RUNS = ("fp32", "fp32-rescue", "w4", "w4-rescue")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The reduced demo's output directory and what it printed."""
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--out", str(out), "--quiet", "--problems", str(PROBLEMS), "--precisions", "fp32,w4"])
    assert code == 0
    return out, printed.getvalue()


def expected_gate(out) -> tuple[str, dict]:
    """The W4 gate's verdict worked out from the leaderboard's figures and the README's
    thresholds (an upper bound at or under each threshold passes), and W4's inflation."""
    board = json.loads((out / "leaderboard" / "leaderboard.json").read_text())
    w4 = next(row for row in board["rows"] if row["run"] == "w4" and row["task"] == "overall")
    passed = (w4["ratio_of_means"]["high"] <= GATE_POLICY["max_inflation"]
              and -w4["accuracy_delta"]["low"] <= GATE_POLICY["max_accuracy_drop"]
              and w4["rates"]["loop"] <= GATE_POLICY["max_rates"]["loop"])  # fmt: skip
    return ("PASS" if passed else "FAIL"), w4["ratio_of_means"]


def run_cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_demo_writes_runs_leaderboard_and_gate(demo):
    demo = demo[0]
    for name in RUNS:
        run = read_run(demo / "runs" / name)
        assert len(run.samples) == PROBLEMS and run.tasks == ["qr_toy"] and run.model == "qr-toy"
        assert all(s.side is not None for s in run.samples)  # the side file was read
        (results,) = (demo / "runs" / name).rglob("results_*.json")  # ... beside results_*.json, as the README says
        assert (results.parent / SIDE_FILE).is_file() and not (demo / "runs" / name / SIDE_FILE).exists()
    assert read_run(demo / "runs" / "w4-rescue").precision == "rtn-w4g32+rescue"
    assert read_run(demo / "runs" / "w4").bits == 4
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html",
                 "accuracy_vs_length.png", "inflation_by_bits.svg"):  # fmt: skip
        assert (demo / "leaderboard" / name).stat().st_size > 0, name
    verdict, ratio = expected_gate(demo)
    gate = (demo / "gate.md").read_text()
    assert gate.splitlines()[0] == f"### qr-eval gate: {verdict}: w4 against fp32"
    assert f"ratio\\_of\\_means {ratio['estimate']:.3f} \\[{ratio['low']:.3f}, {ratio['high']:.3f}\\]" in gate


def test_demo_figures_agree_with_analyze_and_compare(demo, capsys):
    demo = demo[0]
    board = json.loads((demo / "leaderboard" / "leaderboard.json").read_text())
    overall = {row["run"]: row for row in board["rows"] if row["task"] == "overall"}
    assert set(overall) == set(RUNS)
    for name in RUNS:
        analyzed = json.loads(run_cli(capsys, "analyze", demo / "runs" / name, "--json", "--quiet"))["qr_toy"]
        row = overall[name]
        assert analyzed["accuracy"] == pytest.approx(row["accuracy"]["estimate"])
        assert analyzed["reasoning_tokens"]["mean"] == pytest.approx(row["mean_length"])
        for rate in ("repetition", "loop", "unclosed", "budget_exhausted"):
            assert analyzed["rates"][rate] == pytest.approx(row["rates"][rate])
        if name.endswith("-rescue"):
            assert "rescue" in analyzed
        if name == "fp32":
            continue
        compared = json.loads(run_cli(capsys, "compare", demo / "runs" / "fp32", demo / "runs" / name, "--json", "--quiet"))
        assert compared["overall"]["ratio_of_means"] == pytest.approx(row["ratio_of_means"])
        assert compared["overall"]["accuracy"]["delta"] == pytest.approx(row["accuracy_delta"])


def test_demo_summary_shows_the_leaderboard_figures_and_the_gate(demo):
    out, printed = demo
    board = json.loads((out / "leaderboard" / "leaderboard.json").read_text())
    lines = {line.split()[0]: line for line in printed.splitlines() if line.split()[:1] and line.split()[0] in RUNS}
    for row in board["rows"]:
        line = lines[row["run"]]
        assert f" {100 * row['accuracy']['estimate']:.1f} " in line
        assert f" {row['mean_length']:.1f} " in line
        if row["run"] != "fp32":
            ratio = row["ratio_of_means"]
            assert f"{ratio['estimate']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}]" in line
        assert (" on " in line) == row["run"].endswith("-rescue")
    verdict, ratio = expected_gate(out)
    assert f"\ngate w4 vs fp32: {verdict}\n" in printed
    assert f": ratio_of_means {ratio['estimate']:.3f} [{ratio['low']:.3f}, {ratio['high']:.3f}]\n" in printed
    assert str(out / "leaderboard") in printed


def test_demo_refuses_what_it_cannot_run(tmp_path, capsys):
    for argv in (["--precisions", "w4"], ["--precisions", "fp32,w5"], ["--precisions", "fp32"], ["--problems", "0"],
                 ["--problems", "100000"]):
        assert main(["demo", "--out", str(tmp_path / "x"), "--quiet", *argv]) == 2
        assert capsys.readouterr().err.startswith("qr-eval: error: ")
    assert not (tmp_path / "x").exists()


def test_tokenizers_with_the_same_vocabulary_count_alike(tiny_model_factory, tmp_path):
    from qr_metrics.counts import same_tokenizer

    a = tiny_model_factory("default", seed=0)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (copy / name).write_bytes((a / name).read_bytes())
    assert same_tokenizer(str(a), str(copy))
    assert not same_tokenizer(str(a), str(tmp_path / "missing"))
    assert not same_tokenizer(str(a), None)
