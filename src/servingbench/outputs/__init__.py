"""Everything rendered from a saved results folder: tables, figures, report.html, and comparisons of two."""
