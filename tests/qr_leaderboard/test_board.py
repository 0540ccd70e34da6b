"""qr-eval leaderboard: the files, their round trips, baselines, escaping, the real
R1-distill MATH-500 outputs, and the HTML page rendered by headless Chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from qr_leaderboard.cli import main
from qr_leaderboard.render.csv_table import CSV_COLUMNS, csv_rows
from helpers.run_dirs import FIXTURE_BITS, MODEL, fixture_runs, word_records, write_run
from helpers.side_runs import COMPLETIONS, side, write_lm_eval_run, write_side

FAST = ["--unit", "words", "--n-resamples", "500", "--quiet"]
HOSTILE = "<script>alert('x')</script> & \"q\" | *b* $x$"
FILES = {
    "leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html",
    "accuracy_vs_length.png", "accuracy_vs_length.svg", "inflation_by_bits.png", "inflation_by_bits.svg",
    "budget_accuracy.png", "budget_accuracy.svg",
}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Two models, two tasks. Model m: bf16 baseline, a 4-bit run 1.2x longer on every
    sample (lengths are multiples of 5, so exactly), a run named like a script tag; model
    other: one 3-bit run and no baseline."""
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(1)
    lengths = {t: (5 * rng.integers(10, 100, size=12)).tolist() for t in ("algebra", "geometry")}
    correct = {t: (rng.random(12) < 0.7).tolist() for t in ("algebra", "geometry")}

    def records(scale, flip=0):
        out = []
        for task in ("algebra", "geometry"):
            ok = [c if i >= flip else not c for i, c in enumerate(correct[task])]
            out += word_records([round(scale * n) for n in lengths[task]], ok, task=task)
        return out

    runs = {
        "bf16": write_run(root / "bf16", records(1), name="m-bf16", model="m", precision="bf16", bits=16),
        "int4": write_run(root / "int4", records(1.2), name="m-int4", model="m", precision="int4", bits=4),
        "hostile": write_run(root / "hostile", records(2, flip=3), name=HOSTILE, model="m", precision="int3", bits=3),
        "orphan": write_run(root / "orphan", records(1), name="other-int3", model="other", precision="int3", bits=3),
    }
    return runs, lengths, correct


@pytest.fixture(scope="module")
def board(synthetic, tmp_path_factory):
    runs, _, _ = synthetic
    out = tmp_path_factory.mktemp("board") / "out"
    code = main(["leaderboard", *map(str, (runs["bf16"], runs["int4"], runs["hostile"], runs["orphan"])),
                 "--out", str(out), "--title", "Board <b>1</b>", "--speedup", "int4=2.4", *FAST])
    assert code == 0
    return out


def test_every_file_is_written(board):
    assert {p.name for p in board.iterdir()} == FILES
    for plot in ("accuracy_vs_length", "inflation_by_bits", "budget_accuracy"):
        assert (board / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (board / f"{plot}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "</svg>" in svg


def test_json_rows_per_run_per_task_and_overall(board, synthetic):
    _, lengths, correct = synthetic
    data = json.loads((board / "leaderboard.json").read_text())
    assert data["tasks"] == ["algebra", "geometry"] and data["unit"] == "words"
    keyed = {(r["run"], r["task"]): r for r in data["rows"]}
    assert len(data["rows"]) == 4 * 3
    base, int4, orphan = keyed[("m-bf16", "overall")], keyed[("m-int4", "overall")], keyed[("other-int3", "overall")]
    assert (base["role"], int4["role"], orphan["role"]) == ("baseline", "candidate", "no_baseline")
    assert int4["baseline"] == "m-bf16" and orphan["baseline"] is None
    # the 4-bit run is 1.2x longer on every sample: ratio and interval collapse onto 1.2
    assert int4["ratio_of_means"] == pytest.approx({"estimate": 1.2, "low": 1.2, "high": 1.2})
    assert int4["effective_speedup"]["estimate"] == pytest.approx(2.4 / 1.2)
    assert int4["speedup_per_token"] == {"estimate": 2.4, "low": None, "high": None}  # given: no interval of its own
    assert int4["speedup_source"] == "given: --speedup int4=2.4" and base["effective_speedup"] is None
    # absolute figures, by numpy
    all_lengths = lengths["algebra"] + lengths["geometry"]
    all_correct = correct["algebra"] + correct["geometry"]
    assert base["mean_length"] == pytest.approx(np.mean(all_lengths))
    assert base["accuracy"]["estimate"] == pytest.approx(np.mean(all_correct))
    assert base["accuracy"]["low"] < base["accuracy"]["estimate"] < base["accuracy"]["high"]
    assert keyed[("m-bf16", "geometry")]["mean_length"] == pytest.approx(np.mean(lengths["geometry"]))
    hostile = keyed[(HOSTILE, "algebra")]
    assert hostile["accuracy_delta"]["estimate"] == pytest.approx(
        (sum(not c for c in correct["algebra"][:3]) - sum(correct["algebra"][:3])) / 12)
    # no baseline: absolute figures only, and the row says so
    assert orphan["ratio_of_means"] is None and orphan["accuracy_delta"] is None
    assert orphan["accuracy"] is not None and "no baseline" in orphan["notes"][0]
    assert set(base["rates"]) >= {"loop", "budget_exhausted", "unclosed", "delayed_commitment"}


def test_budget_auc_shares_one_axis_across_runs(board, synthetic):
    """Every row's curve runs to the longest trace of any run in its scope (the script-tag run,
    twice as long); the AUC is checked against a Riemann sum of OAA_t over integer budgets."""
    _, lengths, correct = synthetic
    rows = {(r["run"], r["task"]): r for r in json.loads((board / "leaderboard.json").read_text())["rows"]}
    for scope, tasks in (("algebra", ["algebra"]), ("overall", ["algebra", "geometry"])):
        lens = [n for t in tasks for n in lengths[t]]
        ok = [c for t in tasks for c in correct[t]]
        limit = 2 * max(lens)
        # OAA_t is a right-continuous step in t: sampled at t = 0.5, 1.5, ... it integrates exactly
        area = sum(sum(c and n <= t + 0.5 for n, c in zip(lens, ok)) / len(lens) for t in range(limit))
        row = rows[("m-bf16", scope)]
        assert row["budget_curve"]["limit"] == limit
        assert row["budget_auc"] == pytest.approx(area / limit)
        assert rows[("m-int4", scope)]["budget_auc"] < row["budget_auc"]  # longer, equally correct


def test_csv_round_trips_with_the_json(board):
    data = json.loads((board / "leaderboard.json").read_text())
    with (board / "leaderboard.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        parsed = list(reader)
    expected = csv_rows(data)
    assert len(parsed) == len(expected) == len(data["rows"])
    for got, want in zip(parsed, expected):
        for column in CSV_COLUMNS:
            value, cell = want[column], got[column]
            if value is None:
                assert cell == ""
            elif isinstance(value, bool):
                assert cell == str(value).lower()
            elif isinstance(value, (int, float)):
                assert float(cell) == value  # repr round trip: exact
            else:
                assert cell == value


def test_markdown_is_a_pasteable_table(board, synthetic):
    text = (board / "leaderboard.md").read_text()
    assert text.startswith("## Board &lt;b&gt;1&lt;/b&gt;\n")
    assert "<script>" not in text and "<b>" not in text
    tables = [block for block in text.split("\n\n") if block.startswith("| Run |")]
    assert len(tables) == 3  # overall, algebra, geometry
    for table in tables:
        lines = table.splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1 and len(lines) == 2 + 4  # header, rule, one row per run
    overall = tables[0]
    rows = [line.strip("| ").split(" | ") for line in overall.splitlines()[2:]]
    cells = {row[0]: row for row in rows}
    lengths = [n for task in ("algebra", "geometry") for n in synthetic[1][task]]
    accuracy = f"{100 * np.mean([c for task in ('algebra', 'geometry') for c in synthetic[2][task]]):.1f} ["
    # run, model, precision, bits, n (12 items in each of 2 tasks), accuracy, mean words, inflation, both-correct
    int4, bf16, orphan = cells["m-int4"], cells["m-bf16"], cells["other-int3"]
    assert int4[:5] == ["m-int4", "m", "int4", "4", "24"] and int4[5].startswith(accuracy)
    # every sample 1.2x longer: the intervals collapse onto 1.20
    assert int4[6:9] == [f"{np.mean([round(1.2 * n) for n in lengths]):.0f}", "1.20 [1.20, 1.20]", "1.20 [1.20, 1.20]"]
    # effective speedup column appears when a speedup is known: --speedup 2.4 over inflation 1.2
    assert int4[-1] == f"{2.4 / 1.2:.2f} [2.00, 2.00]"
    assert bf16[:5] == ["m-bf16", "m", "bf16", "16", "24"] and bf16[5].startswith(accuracy)
    assert bf16[6:9] == [f"{np.mean(lengths):.0f}", "baseline", "baseline"]
    assert orphan[:5] == ["other-int3", "other", "int3", "3", "24"] and orphan[7:9] == ["n/a †", "n/a †"]
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; \"q\" \\| \\*b\\* $x$" in overall
    assert "† other-int3: no baseline: no full-precision run of model 'other'" in text


class _Page(HTMLParser):
    """Tables (id -> rows of data-run), external references, script count."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.table: str | None = None
        self.refs: list[str] = []
        self.scripts = 0
        self.ready: list[str] = []
        self.images: list[str] = []
        self.widths: dict[str, dict[str, float]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.table = attrs.get("id")
            self.rows[self.table] = []
            if attrs.get("data-sortable"):
                self.ready.append(attrs["data-sortable"])
            if attrs.get("data-widths"):
                self.widths[self.table] = json.loads(attrs["data-widths"])
        if tag == "tr" and "data-run" in attrs and self.table:
            self.rows[self.table].append(attrs["data-run"])
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href", "action", "poster", "data"):
            if attrs.get(name) and not attrs[name].startswith(("data:", "#")):
                self.refs.append(attrs[name])


def test_html_is_one_self_contained_escaped_page(board):
    text = (board / "leaderboard.html").read_text()
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(", text, re.I)
    page = _Page()
    page.feed(text)
    assert page.refs == [] and page.scripts == 1
    assert len(page.images) == 3 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.rows["table-overall"] == ["m-bf16", "m-int4", HOSTILE, "other-int3"]
    assert set(page.rows) == {"table-overall", "table-task-1", "table-task-2"}
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "<script>alert" not in text and "<b>1</b>" not in text and "Board &lt;b&gt;1&lt;/b&gt;" in text


def test_baseline_rules(synthetic, tmp_path, capsys):
    runs, _, _ = synthetic
    out = tmp_path / "named"
    code, _, _ = run_cli(capsys, "leaderboard", runs["int4"], runs["orphan"], "--baseline", runs["bf16"],
                         "--out", out, "--no-plots", *FAST)
    assert code == 0 and {p.name for p in out.iterdir()} == {
        "leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html"}
    rows = {(r["run"], r["task"]): r for r in json.loads((out / "leaderboard.json").read_text())["rows"]}
    assert rows[("m-bf16", "overall")]["role"] == "baseline"  # a baseline path outside RUN... becomes a row
    assert rows[("other-int3", "overall")]["baseline"] == "m-bf16"  # explicit: every row
    code, _, _ = run_cli(capsys, "leaderboard", runs["bf16"], runs["int4"], runs["hostile"],
                         "--baseline", "precision=int4", "--out", tmp_path / "rule", "--no-plots", *FAST)
    rows = {(r["run"], r["task"]): r for r in json.loads((tmp_path / "rule" / "leaderboard.json").read_text())["rows"]}
    assert rows[("m-bf16", "overall")]["ratio_of_means"]["estimate"] == pytest.approx(1 / 1.2)
    assert rows[("m-int4", "overall")]["role"] == "baseline"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--baseline", "nothing-like-this"], "is not 'auto', 'precision=LABEL'"),
        (["--speedup", "fp8=2"], "no run has precision 'fp8'"),
        (["--speedup", "int4=fast"], "expected PRECISION=X"),
    ],
)
def test_bad_leaderboard_input_exits_2_and_writes_nothing(synthetic, tmp_path, capsys, extra, message):
    runs, _, _ = synthetic
    code, out, err = run_cli(capsys, "leaderboard", runs["bf16"], runs["int4"], "--out", tmp_path / "o", *extra, *FAST)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_two_full_precision_runs_of_one_model_are_ambiguous(synthetic, tmp_path, capsys):
    runs, _, _ = synthetic
    twin = write_run(tmp_path / "fp16", word_records([10] * 3, [True] * 3, task="algebra"),
                     name="m-fp16", model="m", precision="fp16", bits=16)
    code, _, err = run_cli(capsys, "leaderboard", runs["bf16"], twin, runs["int4"], "--out", tmp_path / "o", *FAST)
    assert code == 2 and "2 candidate baselines" in err and "--baseline" in err


def test_a_ratio_without_interval_reads_the_same_on_the_page_and_in_the_gate(tmp_path, capsys):
    """Two tasks of one item each: every task is held fixed, so the overall ratio has no
    interval: the page shows "4.00 [-]" (not "4.00 [4.00, 4.00]") where the gate says so."""
    records = lambda words: [r for t in ("a", "b") for r in word_records([words], [True], task=t)]
    base = write_run(tmp_path / "b", records(100), name="b", model="m", precision="bf16", bits=16)
    cand = write_run(tmp_path / "c", records(400), name="c", model="m", precision="w4", bits=4)
    code, _, _ = run_cli(capsys, "leaderboard", base, cand, "--out", tmp_path / "o", "--no-plots", *FAST)
    assert code == 0
    overall = (tmp_path / "o" / "leaderboard.md").read_text().split("### a")[0]
    assert "| 4.00 [-] | 4.00 [-] |" in overall and "[4.00, 4.00]" not in overall
    html = (tmp_path / "o" / "leaderboard.html").read_text()
    assert ">4.00 [-]</td>" in html and "4.00 [4.00, 4.00]" not in html
    code, out, _ = run_cli(capsys, "gate", base, cand, "--max-inflation", "5", *FAST)
    assert code == 1 and "ratio\\_of\\_means 4.000 has no interval (every task has only 1 item)" in out


def test_missing_matplotlib_is_one_line_naming_the_extra(synthetic, tmp_path, capsys, monkeypatch):
    runs, _, _ = synthetic
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run_cli(capsys, "leaderboard", runs["bf16"], "--out", tmp_path / "o", *FAST)
    assert code == 2 and 'pip install "qr-eval[plot]"' in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_speedup_from_run_metadata(tmp_path, capsys):
    base = write_run(tmp_path / "b", word_records([100, 200], [True, True]), name="b", model="m", precision="bf16", bits=16)
    cand = write_run(tmp_path / "c", word_records([125, 250], [True, True]), name="c", model="m", precision="w4",
                     bits=4, speedup=3.0)
    code, _, _ = run_cli(capsys, "leaderboard", base, cand, "--out", tmp_path / "o", "--no-plots", *FAST)
    rows = {(r["run"], r["task"]): r for r in json.loads((tmp_path / "o" / "leaderboard.json").read_text())["rows"]}
    assert code == 0 and rows[("c", "overall")]["effective_speedup"]["estimate"] == pytest.approx(3.0 / 1.25)
    code, _, _ = run_cli(capsys, "leaderboard", base, cand, "--out", tmp_path / "o", "--no-plots",
                         "--speedup", "w4=2.5", *FAST)
    rows = {(r["run"], r["task"]): r for r in json.loads((tmp_path / "o" / "leaderboard.json").read_text())["rows"]}
    assert rows[("c", "overall")]["effective_speedup"]["estimate"] == pytest.approx(2.5 / 1.25)  # the flag wins


# ----------------------------------------------------------------------------- measured per-token speedup


def timed_run(directory, seconds, batches=None, **header):
    """An lm-eval run (model m, timed on cpu) whose five samples' side records carry the
    low-bit decode seconds per token ``seconds[i]`` of batch ``batches[i]`` (default: each
    sample its own batch), 10 tokens each; same completions in every run (inflation 1)."""
    write_lm_eval_run(directory, "pretrained=/models/tiny,device=cpu", model="m", **header)
    keys = [(task, i) for task, texts in COMPLETIONS.items() for i in range(len(texts))]
    batches = list(range(len(keys))) if batches is None else batches
    write_side(directory / "qr_sidecar.jsonl", [
        side(task, i, tokens={"lowbit": 10}, decode_s_per_token={"lowbit": seconds[b]}, wall_s={"generate": float(b)})
        for (task, i), b in zip(keys, batches)
    ])  # fmt: skip
    return directory


def speedup_board(tmp_path, capsys, *runs, extra=()):
    out = tmp_path / "board"
    code, _, _ = run_cli(capsys, "leaderboard", *runs, "--out", out, "--no-plots", *FAST, *extra)
    assert code == 0
    data = json.loads((out / "leaderboard.json").read_text())
    return out, {r["run"]: r for r in data["rows"] if r["task"] == "overall"}


BASE_S = [0.0100, 0.0104, 0.0097, 0.0102, 0.0099]


def test_a_noisy_or_single_measured_speedup_is_withheld_with_its_reason(tmp_path, capsys):
    """Batch timings that scatter around the baseline's (0.22, 2.64, 1.04 in the issue) and a
    run timed in one batch give no per-token speedup: "-" with the reason, never a number."""
    base = timed_run(tmp_path / "bf16", [0.010, 0.030, 0.002, 0.020, 0.005], name="m-bf16", precision="bf16")
    noisy = timed_run(tmp_path / "int4", [0.004, 0.025, 0.001, 0.030, 0.012], name="m-int4", precision="int4")
    single = timed_run(tmp_path / "int3", [0.004], batches=[0] * 5, name="m-int3", precision="int3")
    out, rows = speedup_board(tmp_path, capsys, base, noisy, single)
    for run, reason in (("m-int4", "too noisy: "), ("m-int3", "one timing (")):
        row = rows[run]
        assert row["speedup_per_token"] is None and row["effective_speedup"] is None
        assert row["speedup_withheld"].startswith(reason), row["speedup_withheld"]
        assert row["speedup_source"] == "measured: decode s/token of the side files, baseline m-bf16's over this run's (cpu)"
        assert f"per-token speedup withheld: {row['speedup_withheld']}" in row["notes"]
    assert "includes 1" in rows["m-int4"]["speedup_withheld"]
    assert "1 low-bit batch timing(s); an interval needs 3 of each" in rows["m-int3"]["speedup_withheld"]
    md = (out / "leaderboard.md").read_text()
    lines = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| m-")}
    assert lines["m-int4"].endswith("| - |") and lines["m-int3"].endswith("| - |")  # the effective speedup cell
    assert "m-int4: per-token speedup withheld (-): too noisy: " in md
    html = (out / "leaderboard.html").read_text()
    assert 'title="per-token speedup withheld (-): one timing (' in html


def test_a_consistent_measured_speedup_is_shown_with_its_interval_and_source(tmp_path, capsys):
    """Five batch timings per run, 2.5x apart with little scatter: the speedup is the ratio of
    the mean seconds per token, its interval scipy's bootstrap over both sets of timings,
    and the row says where it was measured."""
    from scipy import stats

    fast = [0.0040, 0.0042, 0.0039, 0.0041, 0.0038]
    base = timed_run(tmp_path / "bf16", BASE_S, name="m-bf16", precision="bf16")
    int4 = timed_run(tmp_path / "int4", fast, name="m-int4", precision="int4")
    out, rows = speedup_board(tmp_path, capsys, base, int4)
    row = rows["m-int4"]
    # equal tokens per batch: the token-weighted means are plain means
    expected = stats.bootstrap((BASE_S, fast), lambda x, y, axis=-1: x.mean(axis) / y.mean(axis), paired=False,
                               vectorized=True, n_resamples=500, method="BCa", rng=np.random.default_rng(0))
    speedup = row["speedup_per_token"]
    assert speedup["estimate"] == pytest.approx(np.mean(BASE_S) / np.mean(fast))
    assert speedup["low"] == pytest.approx(expected.confidence_interval.low)
    assert speedup["high"] == pytest.approx(expected.confidence_interval.high)
    assert 1 < speedup["low"] < speedup["estimate"] < speedup["high"]  # a real interval, not zero-width
    assert row["speedup_withheld"] is None
    assert row["speedup_source"] == "measured: decode s/token of the side files, baseline m-bf16's over this run's (cpu)"
    # inflation 1 exactly ([1, 1]): the effective speedup carries the speedup's own interval
    assert row["effective_speedup"] == pytest.approx(speedup)
    md = (out / "leaderboard.md").read_text()
    shown = f"{speedup['estimate']:.2f} [{speedup['low']:.2f}, {speedup['high']:.2f}]"
    assert [line for line in md.splitlines() if line.startswith("| m-int4 |")][0].endswith(f"| {shown} |")
    assert f"m-int4: per-token speedup {shown}, measured: decode s/token of the side files" in md
    with (out / "leaderboard.csv").open(newline="") as handle:
        csv_row = [r for r in csv.DictReader(handle) if r["run"] == "m-int4" and r["task"] == "overall"][0]
    assert float(csv_row["speedup_per_token_low"]) == speedup["low"] and csv_row["speedup_source"] == row["speedup_source"]


def test_a_measured_speedup_never_reads_as_a_zero_width_interval():
    """Identical timings are copies, not repeats; all-zero times and one resample give no
    interval: each is withheld with its reason instead of "2.00 [2.00, 2.00]"."""
    from qr_metrics.speedup import measured_speedup, timings_from
    from qr_metrics.stats import BootstrapConfig

    same = measured_speedup(timings_from([0.02] * 4), timings_from([0.01] * 4))
    assert same.speedup.estimate == 2.0 and same.speedup.low is None
    assert same.withheld == "no interval: the timings do not vary (4 reference and 4 low-bit batch timing(s))"
    assert measured_speedup(timings_from([0.0] * 3), timings_from(BASE_S)).withheld.startswith("no time: ")
    one = measured_speedup(timings_from(BASE_S), timings_from([0.004, 0.0041, 0.0039]), BootstrapConfig(n_resamples=1))
    assert one.withheld.endswith("; 1 resample(s))") and one.speedup.low is None


def test_a_given_speedup_is_kept_as_given_over_noisy_timings(tmp_path, capsys):
    base = timed_run(tmp_path / "bf16", BASE_S, name="m-bf16", precision="bf16")
    int4 = timed_run(tmp_path / "int4", [0.004, 0.025, 0.001, 0.030, 0.012], name="m-int4", precision="int4",
                     speedup=1.7)
    _, rows = speedup_board(tmp_path, capsys, base, int4)
    row = rows["m-int4"]
    assert row["speedup_per_token"] == {"estimate": 1.7, "low": None, "high": None}
    assert (row["speedup_source"], row["speedup_withheld"]) == ("given: run.json speedup", None)
    assert row["effective_speedup"] == pytest.approx({"estimate": 1.7, "low": 1.7, "high": 1.7})  # inflation [1, 1]
    _, rows = speedup_board(tmp_path, capsys, base, int4, extra=("--speedup", "int4=3"))
    assert rows["m-int4"]["speedup_per_token"]["estimate"] == 3.0
    assert rows["m-int4"]["speedup_source"] == "given: --speedup int4=3"


# ----------------------------------------------------------------------------- real outputs


@pytest.fixture(scope="module")
def real_board(fixtures_dir, tmp_path_factory):
    runs = fixture_runs(fixtures_dir, tmp_path_factory.mktemp("r1-distill"))
    out = tmp_path_factory.mktemp("real-board") / "board"
    code = main(["leaderboard", *map(str, runs.values()), "--out", str(out), "--title", "R1-Distill-1.5B, MATH-500",
                 "--unit", "completion_words", "--n-resamples", "2000", "--quiet",
                 "--speedup", "awq-w4g128=2.1", "--speedup", "awq-w3g128=2.5"])  # every column the page can show
    assert code == 0
    return out


def test_real_leaderboard_holds_six_rows(real_board):
    data = json.loads((real_board / "leaderboard.json").read_text())
    overall = [r for r in data["rows"] if r["task"] == "overall"]
    assert [r["run"] for r in overall] == list(FIXTURE_BITS)
    assert [r["bits"] for r in overall] == list(FIXTURE_BITS.values())
    assert {r["model"] for r in overall} == {MODEL}
    assert [r["role"] for r in overall] == ["baseline"] + ["candidate"] * 5
    assert all(r["baseline"] == "bf16" for r in overall)
    rows = {r["run"]: r for r in overall}
    assert rows["bf16"]["accuracy"]["estimate"] == pytest.approx(0.85)
    assert rows["awq-w3g128"]["ratio_of_means"]["estimate"] == pytest.approx(3.7968, abs=1e-4)
    assert rows["awq-w3g128"]["ratio_of_means"]["low"] > 3
    md = (real_board / "leaderboard.md").read_text()
    assert md.count("| DeepSeek-R1-Distill-Qwen-1.5B |") == 6


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1600", *args, url],
        capture_output=True, text=True, timeout=120,
    )


# Appended to a copy of the page: each table's widths, after the page's own script ran.
_MEASURE = """<script>
document.querySelectorAll("table").forEach(function (table) {
  var box = table.parentElement;
  table.setAttribute("data-widths", JSON.stringify({
    table: table.scrollWidth, right: table.getBoundingClientRect().right, box: box.clientWidth,
    box_scroll: box.scrollWidth, viewport: document.documentElement.clientWidth}));
});
</script>
</body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium); "
                    ".ci/run installs it where apt-get is available as root")
def test_html_renders_in_headless_chromium(real_board, tmp_path):
    """One Chromium run in a 1400 x 1600 window takes a screenshot and dumps the DOM after
    the page's script ran: the sortable table holds the six runs, ``#sort=ratio_of_means-desc``
    sorted it by inflation (largest first), every column fits the window (no horizontal
    scrollbar), and the plots were decoded and drawn."""
    page_file = tmp_path / "leaderboard.html"
    page_file.write_text((real_board / "leaderboard.html").read_text().replace("</body>", _MEASURE))
    shot = tmp_path / "page.png"
    result = _chromium(page_file.as_uri() + "#sort=ratio_of_means-desc", tmp_path / "profile",
                       f"--screenshot={shot}", "--dump-dom")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]

    page = _Page()
    page.feed(result.stdout)
    assert page.ready == ["ready"]
    (widths,) = page.widths.values()  # one task: the overall table only
    assert 1300 < widths["viewport"] <= 1400, widths
    assert widths["table"] <= widths["box"] == widths["box_scroll"] and widths["right"] <= widths["viewport"], widths
    assert sorted(page.rows["table-overall"]) == sorted(FIXTURE_BITS)
    data = json.loads((real_board / "leaderboard.json").read_text())
    ratio = {r["run"]: (r["ratio_of_means"] or {"estimate": 1.0})["estimate"] for r in data["rows"] if r["task"] == "overall"}
    assert page.rows["table-overall"] == sorted(ratio, key=ratio.get, reverse=True)
    assert page.rows["table-overall"][0] == "awq-w3g128"

    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1400)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, table rules, plots
    # the plots' orange (#ff7f0e: awq-w4g128, the second run, in every plot) is drawn in the
    # lower half of the window
    orange = np.abs(pixels[800:] - np.array([1.0, 127 / 255, 14 / 255])).max(axis=-1) < 0.08
    assert orange.sum() > 50


def test_each_run_is_measured_once_and_text_runs_show_pathology_rates(tmp_path, capsys, monkeypatch):
    """Each run is measured once, and each row's budget curve is computed once, on the one
    axis every row shares (issue 21, item 4: the comparison's figures are the row's)."""
    import qr_leaderboard.figures as figures
    import qr_leaderboard.options as options

    closed = "First I add.\n\nThen I check.</think>The answer is \\boxed{1}."
    unclosed = "First I add.\n\nThen I check, and check, and go on"

    def texts(*completions):
        return [{"task": "t", "doc_id": i, "completion": c, "correct": True} for i, c in enumerate(completions)]

    runs = [
        write_run(tmp_path / "b", texts(closed, closed, closed, closed), name="b", model="m", precision="bf16", bits=16),
        write_run(tmp_path / "q4", texts(closed, closed, closed, unclosed), name="q4", model="m", precision="q4", bits=4),
        write_run(tmp_path / "q3", texts(closed, unclosed, closed, unclosed), name="q3", model="m", precision="q3", bits=3),
    ]
    measured, limits = [], []
    original, curve = options.measure_run, figures.budget_curve
    monkeypatch.setattr(options, "measure_run", lambda run, *a: measured.append(run.name) or original(run, *a))
    monkeypatch.setattr(figures, "budget_curve", lambda lengths, correct, limit, points: limits.append(limit)
                        or curve(lengths, correct, limit, points))
    code, _, _ = run_cli(capsys, "leaderboard", *runs, "--out", tmp_path / "o", "--no-plots", *FAST)
    assert code == 0 and sorted(measured) == ["b", "q3", "q4"]
    # the baseline's row once; each candidate's comparison once per side, its row taking the candidate's
    assert len(limits) == 1 + 2 * 2 and len(set(limits)) == 1
    rows = {r["run"]: r for r in json.loads((tmp_path / "o" / "leaderboard.json").read_text())["rows"]
            if r["task"] == "overall"}
    assert [rows[n]["rates"]["unclosed"] for n in ("b", "q4", "q3")] == [0.0, 0.25, 0.5]
    assert rows["q4"]["rates"]["loop"] == 0.0
    md = (tmp_path / "o" / "leaderboard.md").read_text()
    assert "| q3 | m | q3 | 3 | 4 |" in md and "| 50.0 |" in md
    measured.clear()
    code, out, _ = run_cli(capsys, "select", *runs, "--max-rate", "unclosed=0.3", *FAST)
    assert (code, out) == (0, "q4\n") and sorted(measured) == ["b", "q3", "q4"]
