"""The README's demo section is the demo's real output (issue 20 item 15).

One full ``qr-eval demo --quiet`` (all precisions, 100 problems: greedy on CPU, so the same
figures on every run) as a user runs it; then

- the README's fenced demo output equals what it printed, line for line (the output
  directory aside, which the README shows as ``/home/you/qr-demo``);
- every figure the prose after it quotes is computed from that run (``qr-eval analyze
  --json`` of the runs, their side files and ``leaderboard.json``), in :func:`claims`: a
  phrase of the README per figure, with the figure filled in from the run; and no number is
  left in that prose that no phrase accounts for;
- the time the README gives is the time it took, where the machine allows telling.

On 2 cores the demo takes about 40 s when the machine is idle and several minutes when
it is busy: this is the slowest test file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from qr_leaderboard.cli import main
from qr_leaderboard.demo.story import PRECISIONS
from qr_metrics.runs import read_run

ROOT = Path(__file__).resolve().parents[1]
README_OUT = "/home/you/qr-demo"
"""Where the README's demo output says it wrote (``--out``)."""
RUNS = [p + suffix for p in PRECISIONS for suffix in ("", "-rescue")]


@dataclass
class Demo:
    out: Path
    printed: str
    wall_s: float
    others_cpu_s: float | None
    """CPU seconds that other processes used on this machine while the demo ran (None where
    /proc/stat is absent): near 0 on an idle machine."""


def _busy_cpu_s() -> float | None:
    """CPU seconds spent on this machine since boot, all processes (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    """The default demo, in a folder of its own, timed from the command's start to its end."""
    out = tmp_path_factory.mktemp("readme-demo") / "qr-demo"
    busy, own = _busy_cpu_s(), _children_cpu_s()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "qr_leaderboard.cli", "demo", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    after = _busy_cpu_s()
    others = None if busy is None or after is None else max(0.0, (after - busy) - (_children_cpu_s() - own))
    return Demo(out, done.stdout, wall, others)


def readme() -> str:
    return (ROOT / "README.md").read_text()


def set_up() -> str:
    return readme().split("## Set up", 1)[1].split("\n## ", 1)[0]


def readme_demo_output() -> str:
    """The fenced block after "prints this (real output):"."""
    after = set_up().split("prints this (real output):", 1)[1]
    return re.match(r"\s*```\n(.*?)```", after, re.S).group(1)


def readme_demo_prose() -> str:
    """The paragraph after the demo's output, whitespace collapsed."""
    after = set_up().split("prints this (real output):", 1)[1]
    paragraph = re.match(r"\s*```\n.*?```\n\n(.*?)\n\n", after, re.S).group(1)
    return " ".join(paragraph.split())


def test_readme_shows_the_demo_output(demo):
    shown = readme_demo_output().replace(README_OUT, "OUT").splitlines()
    printed = demo.printed.replace(str(demo.out), "OUT").splitlines()
    assert shown == printed


# ----------------------------------------------------------------------------- the prose


@dataclass
class Figures:
    """What the prose quotes, from the demo's own outputs."""

    analyzed: dict  # run -> its task's ``qr-eval analyze --json`` object
    rows: dict  # run -> its overall row of leaderboard.json
    sides: dict  # run -> the side-file records of its samples
    max_gen_toks: int

    def pct(self, run: str, figure: str = "accuracy") -> str:
        value = self.analyzed[run]["accuracy"] if figure == "accuracy" else self.analyzed[run]["rates"][figure]
        return f"{100 * value:.0f}"

    def count(self, run: str, pathology: str) -> int:
        return self.analyzed[run]["counts"][pathology]

    def rescue(self, run: str) -> dict:
        return self.analyzed[run]["rescue"]

    def events(self, run: str) -> list:
        return [event for side in self.sides[run] for event in side.rescue]


@pytest.fixture(scope="module")
def figures(demo) -> Figures:
    analyzed = {}
    for name in RUNS:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["analyze", str(demo.out / "runs" / name), "--json", "--quiet"]) == 0
        (analyzed[name],) = json.loads(printed.getvalue()).values()
    board = json.loads((demo.out / "leaderboard" / "leaderboard.json").read_text())
    rows = {row["run"]: row for row in board["rows"] if row["task"] == "overall"}
    runs = {name: read_run(demo.out / "runs" / name) for name in RUNS}
    sides = {name: [s.side for s in run.samples if s.side is not None] for name, run in runs.items()}
    (budget,) = {s.max_gen_toks for run in runs.values() for s in run.samples}
    return Figures(analyzed, rows, sides, budget)


def claims(f: Figures) -> dict[str, bool]:
    """Each phrase of the README's demo prose that quotes the demo, with its figures filled in
    from the run, mapped to whether the run bears out what it says beyond its figures."""
    fp32, w3, w3r, w2, w2r = "fp32", "w3", "w3-rescue", "w2", "w2-rescue"
    same = ("accuracy", "reasoning_tokens", "rates")
    wrong_w3 = f.analyzed[w3]["n"] - round(f.analyzed[w3]["n"] * f.analyzed[w3]["accuracy"])
    fired = [e.position + e.tokens_cut for e in f.events(w3r)]  # the trace's length when rescue fired
    copies = {e.tokens_cut // e.period for e in f.events(w3r)}
    delayed_full = sorted({f.pct(run, "delayed_commitment") for run in RUNS[:6] + [w3r]})  # fp32, W8, W4; W3 rescued
    unchanged = all(f.analyzed[run][k] == f.analyzed[fp32][k] for run in RUNS[:6] for k in same)
    repeated, budget, unclosed = (f.count(w3, k) for k in ("repetition", "budget_exhausted", "unclosed"))
    return {
        "W8 and W4 change nothing.": unchanged,
        f"At 3 bits accuracy falls to {f.pct(w3)} %": True,
        f"the reasoning grows by {100 * (f.rows[w3]['ratio_of_means']['estimate'] - 1):.0f} %": True,
        f"in {repeated} traces the check rejects the candidate answer": repeated == wrong_w3,
        f"(a correct one in {f.count(w3, 'answer_found_not_given')} of them)": True,
        f"{budget} run out of the {f.max_gen_toks}-token budget": True,
        f"{unclosed} of them inside their reasoning": f.count(w3, "exhausted_in_reasoning") == unclosed,
        f"{wrong_w3 - budget} closes on a wrong answer": unclosed <= budget,  # the others stopped by themselves
        f"only {f.count(w3, 'loop')} still ends in its repeated block": True,
        "fires mid-trace,": max(fired) < f.max_gen_toks and all(e.trigger == "loop" for e in f.events(w3r)),
        f"at the {'third' if copies == {3} else copies} copy": True,
        f"({min(fired)} to {max(fired)} tokens in)": True,
        "where the repetition began, at the trace's first token": all(e.position == 0 for e in f.events(w3r)),
        f"hands each of the {f.rescue(w3r)['rescued']} to the full-precision model": f.rescue(w3r)["committed"] == 0,
        f"({f.rescue(w3r)['fell_back']} fallbacks)": True,
        f"winning back all {float(f.pct(w3r)) - float(f.pct(w3)):.0f} points and all the extra tokens":
            f.analyzed[w3r]["accuracy"] == f.analyzed[fp32]["accuracy"]
            and f.analyzed[w3r]["reasoning_tokens"]["mean"] == f.analyzed[fp32]["reasoning_tokens"]["mean"],
        f"At 2 bits the model is broken ({f.pct(w2)} %)": True,
        f"rescue fires on {f.rescue(w2r)['rescued']} traces": True,
        f"({f.rescue(w2r)['committed']} commits of an answer already written, "
        f"{f.rescue(w2r)['fell_back']} fallbacks)": True,
        f"accuracy comes back to {f.pct(w2r)} %": True,
        f"is {delayed_full[0]} % on the fp32, W8 and W4 runs and on W3 with rescue": len(delayed_full) == 1,
        f"{f.pct(w3, 'delayed_commitment')} % at W3": True,
        f"{f.pct(w2, 'delayed_commitment')} % at W2 ({f.pct(w2r, 'delayed_commitment')} % with rescue)": True,
        f"(some traces hit the {f.max_gen_toks}-token budget)": all(
            row["ratio_is_lower_bound"] == (f.analyzed[run]["rates"]["budget_exhausted"] > 0)
            for run, row in f.rows.items() if run != fp32),  # fmt: skip
    }


def test_readme_prose_quotes_the_demo_run(figures):
    prose = readme_demo_prose()
    found = claims(figures)
    missing = [phrase for phrase in found if phrase not in prose]
    assert not missing, f"the README's demo prose does not say (with this run's figures): {missing}"
    assert all(found.values()), [phrase for phrase, holds in found.items() if not holds]


def test_every_number_in_the_demo_prose_is_checked(figures):
    """A figure added to the prose needs its phrase in :func:`claims`."""
    rest = readme_demo_prose()
    for phrase in claims(figures):
        rest = rest.replace(phrase, " ")
    rest = re.sub(r"`[^`]*`", " ", rest)  # options and file names
    rest = re.sub(r"\b(?:fp32|[Ww][2348])\b", " ", rest)  # precisions
    assert not re.findall(r"\S*\d\S*", rest), rest


# ----------------------------------------------------------------------------- the time

IDLE_CLAIM = re.compile(r"in about (\d+) s on an idle machine with 2 CPU cores")
OTHERS_IDLE = 0.25
"""Other processes used less than a quarter of a core on average: the machine was idle."""


def test_readme_gives_the_demo_time(demo):
    """The README's idle time is within a factor 2 of this run where this run can tell: a
    2-core machine (or fewer) is never much faster than the claim, and an idle one never much
    slower. On a busy machine the demo takes minutes, as the README says."""
    (claim,) = (int(s) for s in IDLE_CLAIM.findall(" ".join(set_up().split())))
    assert "several minutes on a busy one" in " ".join(set_up().split())
    cores = os.cpu_count() or 1
    idle = demo.others_cpu_s is not None and demo.others_cpu_s < OTHERS_IDLE * demo.wall_s
    print(f"demo: {demo.wall_s:.0f} s wall, other processes {demo.others_cpu_s} CPU s, {cores} cores, README {claim} s")
    if cores <= 2:
        assert demo.wall_s > claim / 2, f"the demo took {demo.wall_s:.0f} s; the README says about {claim} s"
    if idle and cores >= 2:
        assert demo.wall_s < 2 * claim, f"the demo took {demo.wall_s:.0f} s on an idle machine; the README: {claim} s"
