"""JSON outputs print figures, not binary rounding noise: a p90 of steps is 957.2, never
957.200000000001 (issue 20 item 15). One helper (``qr_metrics.files.json_ready``) rounds
floats to 12 significant digits at the JSON edge: ``--json``, ``--per-sample`` and
``leaderboard.json`` (whose CSV holds the same numbers)."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from qr_leaderboard.cli import main
from qr_metrics.files import SIGNIFICANT_DIGITS, json_ready, json_text

NUMBER = re.compile(r"(?<![\w.\"])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")

WORDS = [7, 38, 69]
"""np.percentile(WORDS, 90) is 62.800000000000004; the base run's mean ratio 1000/450 and
the like have 17 significant digits."""


def significant_digits(number: str) -> int:
    mantissa = re.split(r"[eE]", number.lstrip("-"))[0].replace(".", "")
    return len(mantissa.strip("0")) or 1


def numbers(text: str) -> list[str]:
    """The numbers of a JSON text, outside its strings."""
    return NUMBER.findall(re.sub(r'"(?:[^"\\]|\\.)*"', '""', text))


def assert_short(text: str) -> None:
    long = [n for n in numbers(text) if significant_digits(n) > SIGNIFICANT_DIGITS]
    assert not long, long


def trace_dir(root, name, words, correct, bits=16):
    directory = root / name
    directory.mkdir()
    records = [{"task": "t", "doc_id": i, "counts": {"words": w}, "correct": c}
               for i, (w, c) in enumerate(zip(words, correct))]  # fmt: skip
    (directory / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "run.json").write_text(json.dumps({"name": name, "model": "m", "precision": name, "bits": bits}))
    return directory


@pytest.fixture
def runs(tmp_path):
    assert repr(float(np.percentile(WORDS, 90))) == "62.800000000000004"  # the artifact this file is about
    base = trace_dir(tmp_path, "bf16", [100, 200, 100, 50, 90, 70], [True, True, False, True, True, False])
    cand = trace_dir(tmp_path, "int4", [300, 200, 400, 100, 91, 75], [True, False, False, True, True, True], bits=4)
    return tmp_path, base, cand


def cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return out


def test_json_ready_rounds_floats_only():
    value = {"p90": 957.200000000001, "ratio": 1000 / 450, "tiny": 1.234567890123456e-20, "n": 10**15 + 1,
             "ok": True, "none": None, "nan": math.nan, "inf": -math.inf, "np": np.float64(62.800000000000004),
             "nested": [{"x": 0.1 + 0.2}, (1 / 3, "a")]}  # fmt: skip
    ready = json_ready(value)
    assert ready["p90"] == 957.2 and ready["np"] == 62.8 and ready["nested"][0]["x"] == 0.3
    assert ready["ratio"] == 2.22222222222 and ready["tiny"] == 1.23456789012e-20
    assert ready["n"] == 10**15 + 1 and ready["ok"] is True and ready["none"] is None  # ints and booleans as they are
    assert math.isnan(ready["nan"]) and ready["inf"] == -math.inf
    assert ready["nested"][1] == (0.333333333333, "a")
    assert value["p90"] == 957.200000000001  # the input is not modified
    assert json.loads(json_text({"p90": 957.200000000001})) == {"p90": 957.2}


def test_analyze_json_and_per_sample(runs, capsys):
    root, _, _ = runs
    run = trace_dir(root, "three", WORDS, [True, False, True])
    out = cli(capsys, "analyze", run, "--json", "--quiet", "--per-sample", root / "s.jsonl")
    assert json.loads(out)["t"]["words"]["p90"] == 62.8
    assert_short(out)
    assert_short((root / "s.jsonl").read_text())


def test_compare_gate_select_replay_json(runs, capsys):
    _, base, cand = runs
    compared = cli(capsys, "compare", base, cand, "--json", "--quiet", "--n-resamples", "500")
    assert json.loads(compared)["overall"]["ratio_of_means"]["estimate"] == round(1166 / 610, 11)
    assert_short(compared)
    thresholds = ("--max-inflation", "3", "--max-accuracy-drop", "0.5", "--n-resamples", "500")
    assert_short(cli(capsys, "gate", base, cand, "--json", "--quiet", *thresholds))
    assert_short(cli(capsys, "select", base, cand, "--json", "--quiet", *thresholds))
    assert_short(cli(capsys, "replay", cand, "--baseline", base, "--json", "--quiet"))


def test_leaderboard_json_and_csv_hold_the_same_short_figures(runs, capsys):
    root, base, cand = runs
    cli(capsys, "leaderboard", base, cand, "--out", root / "board", "--quiet", "--no-plots")
    text = (root / "board" / "leaderboard.json").read_text()
    assert_short(text)
    row = [r for r in json.loads(text)["rows"] if r["run"] == "int4" and r["task"] == "overall"][0]
    assert row["ratio_of_means"]["estimate"] == round(1166 / 610, 11)
    with (root / "board" / "leaderboard.csv").open(newline="") as handle:
        cells = [c for r in csv.reader(handle) for c in r]
    assert_short(",".join(c for c in cells if NUMBER.fullmatch(c)))
