"""The results folder: resolved study, environment, raw records, versioned summary, tables."""
