"""Statistics: per-trial summaries from raw records, per-cell estimates across repetitions."""
