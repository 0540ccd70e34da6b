"""``qr-eval`` in-process, for the tests of its verbs."""

from __future__ import annotations

from qr_leaderboard.cli import main

FAST = ["--unit", "words", "--n-resamples", "500", "--quiet"]
"""Counts-only runs measured in words, and a bootstrap small enough to be quick."""


def run_cli(capsys, *argv):
    """``(exit code, stdout, stderr)`` of ``qr-eval *argv``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
