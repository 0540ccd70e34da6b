"""``qr-eval demo``: the whole pipeline offline on the embedded toy model, on every backend.

The demo is the one part of ``qr_leaderboard`` that reaches up to the adapters (it runs
models); everything else reads runs.
"""
