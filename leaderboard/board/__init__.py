"""The leaderboard's rows: baselines, speedups and the documented ``leaderboard.json`` object."""

from .build import build_leaderboard

__all__ = ["build_leaderboard"]
