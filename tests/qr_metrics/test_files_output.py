"""Where ``--per-sample FILE`` (and ``convert --out FILE``) write: ``-`` is stdout, symlinks and
special files are written through, a missing directory is an error (issue 20, item 7)."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from qr_leaderboard.cli import main

RECORDS = [{"task": "t", "doc_id": i, "completion": f"step {i}</think>\\boxed{{{i}}}", "gold": str(i)} for i in range(3)]


@pytest.fixture
def traces(tmp_path) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def analyze(capsys, traces: Path, per_sample) -> tuple[int, str, str]:
    code = main(["analyze", str(traces), "--quiet", "--per-sample", str(per_sample)])
    out, err = capsys.readouterr()
    return code, out, err


def doc_ids(text: str) -> list[int]:
    return [json.loads(line)["doc_id"] for line in text.splitlines() if line.startswith("{")]


def test_dash_is_stdout(traces, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = analyze(capsys, Path(traces.name), "-")
    assert code == 0, err
    assert doc_ids(out) == [0, 1, 2]
    # the table follows the records; a traces.jsonl given by a relative name is named by its folder
    assert f"run: {tmp_path.name}" in out
    assert not (tmp_path / "-").exists()


def test_a_symlink_is_written_through_to_its_target(traces, tmp_path, capsys):
    (tmp_path / "results").mkdir()
    target = tmp_path / "results" / "samples.jsonl"
    target.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    code, _, err = analyze(capsys, traces, link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert doc_ids(target.read_text()) == [0, 1, 2]


def test_a_symlink_to_a_device_stays_a_symlink(traces, tmp_path, capsys):
    link = tmp_path / "out"
    link.symlink_to(os.devnull)  # as /dev/stdout links to the terminal or the pipe
    code, _, err = analyze(capsys, traces, link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == os.devnull


def test_a_fifo_is_opened_and_written(traces, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, err = analyze(capsys, traces, fifo)
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # not replaced by a regular file
    assert received and doc_ids(received[0]) == [0, 1, 2]


def test_a_missing_directory_is_an_error_and_is_not_created(traces, tmp_path, capsys):
    code, out, err = analyze(capsys, traces, tmp_path / "missing" / "samples.jsonl")
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "missing/samples.jsonl" in err and "no such directory" in err
    assert not (tmp_path / "missing").exists()
    assert out == ""  # an output error stops the command before its table
