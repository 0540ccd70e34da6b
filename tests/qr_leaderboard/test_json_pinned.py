"""Every ``--json`` output and leaderboard file, byte for byte, on the real fixtures.

The files under ``tests/qr_leaderboard/golden/`` were written by this test
(``QR_UPDATE_GOLDEN=1``) and are what the documented JSON schemas promise: a refactor that
changes one byte fails here, and a change of a figure is made on purpose (rewrite them and say
why in the commit).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.fixture_data import to_traces
from helpers.run_dirs import fixture_runs

from qr_leaderboard.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("QR_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def workdir(fixtures_dir, tmp_path_factory):
    """Run directories under one folder that the commands are run from, so that every
    ``source`` they print is the same relative path on every machine."""
    root = tmp_path_factory.mktemp("pinned")
    runs = fixture_runs(fixtures_dir, root / "csv")
    for config in ("smoothquant-w8a8kv8", "kvquant_star-kv3"):
        directory = root / "text" / config
        to_traces(fixtures_dir / "generations" / f"{config}_MATH-500.json", directory / "traces.jsonl", "MATH-500")
        bits = 8 if config.startswith("smooth") else 3
        (directory / "run.json").write_text(json.dumps({"name": config, "model": "r1-1.5b", "precision": config, "bits": bits}))
    assert set(runs) >= {"bf16", "awq-w3g128", "gptq-w4g128"}
    return root


COMMANDS = {
    "analyze_text.json": ["analyze", "text/kvquant_star-kv3", "--json"],
    "analyze_counts.json": ["analyze", "csv/awq-w3g128", "--json"],
    "compare_text.json": ["compare", "text/smoothquant-w8a8kv8", "text/kvquant_star-kv3", "--json", "--n-resamples", "999"],
    "compare_counts.json": ["compare", "csv/bf16", "csv/awq-w3g128", "--json", "--n-resamples", "999"],
    "gate_text.json": ["gate", "text/smoothquant-w8a8kv8", "text/kvquant_star-kv3", "--max-inflation", "1.5",
                       "--max-accuracy-drop", "0.1", "--max-rate", "loop=0.05", "--min-budget-auc", "0.3",
                       "--json", "--n-resamples", "999"],
    "gate_counts.json": ["gate", "csv/bf16", "csv/gptq-w4g128", "--max-inflation", "1.5", "--max-accuracy-drop", "0.1",
                         "--json", "--n-resamples", "999"],
    "select_counts.json": ["select", "csv/bf16", "csv/awq-w3g128", "csv/gptq-w4g128", "--max-inflation", "1.5",
                           "--max-accuracy-drop", "0.1", "--json", "--n-resamples", "999"],
    "replay_text.json": ["replay", "text/kvquant_star-kv3", "--baseline", "text/smoothquant-w8a8kv8", "--unit", "words",
                         "--json"],
}
BOARDS = {
    "board_counts": ["csv/bf16", "csv/awq-w3g128", "csv/gptq-w4g128"],
    "board_text": ["text/smoothquant-w8a8kv8", "text/kvquant_star-kv3", "--baseline", "smoothquant-w8a8kv8"],
}


def check(name: str, produced: str) -> None:
    golden = GOLDEN / name
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(produced)
    assert golden.exists(), f"{golden} missing: run with QR_UPDATE_GOLDEN=1 to write it"
    assert produced == golden.read_text(), f"{name} differs from {golden}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_json_output_is_pinned(name, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    code = main([*COMMANDS[name], "--quiet"])
    assert code in (0, 1), capsys.readouterr().err
    check(name, capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_leaderboard_files_are_pinned(name, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    args = BOARDS[name]
    assert main(["leaderboard", *args, "--out", name, "--no-plots", "--n-resamples", "999", "--quiet"]) == 0
    for suffix in ("json", "csv", "md", "html"):
        check(f"{name}.{suffix}", (workdir / name / f"leaderboard.{suffix}").read_text())
