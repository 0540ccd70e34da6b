"""Names of the leaderboard object's parts, shared by the builder and the renderers (so that
neither imports the other)."""

OVERALL = "overall"
"""The ``task`` of a run's row over all its tasks."""

REASONING_FIELDS = ("budget_auc", "budget_curve", "token_efficiency", "markers_per_1k_words", "repeats")
"""Row fields from ``reasoning_figures`` (``repeats`` only with several repeats per item)."""

INTERVAL_FIELDS = ("accuracy", "ratio_of_means", "both_correct_ratio", "paired_geomean_ratio",
                   "macro_ratio", "accuracy_delta", "speedup_per_token", "effective_speedup")
"""Row fields holding ``{estimate, low, high}`` (or None)."""
