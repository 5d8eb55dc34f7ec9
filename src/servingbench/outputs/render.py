"""Re-render every output of a results folder from its summary.json alone."""
from __future__ import annotations

from pathlib import Path

from servingbench.results.store import ResultsDir, load_summary
from servingbench.results.tables import study_tables, to_csv, to_markdown, unsupported_notes


def render_outputs(path: Path) -> list[Path]:
    """Writes tables/<model>-<metric>.csv|.md and tables/README.md; returns the files written."""
    summary = load_summary(path)
    results = ResultsDir(path)
    written = []
    sections = [f"# {summary.study}: results tables", "",
                "Rows are frameworks, columns the number of closed-loop users (the study's layout). "
                "Values are means across repetitions."]
    if not summary.complete:
        sections.append("\n**This study did not finish**: the tables show the trials that completed.")
    for table in study_tables(summary):
        written.append(results.write_text(f"tables/{table.name}.csv", to_csv(table)))
        markdown = to_markdown(table)
        written.append(results.write_text(f"tables/{table.name}.md", markdown))
        sections += ["", markdown]
    notes = unsupported_notes(summary)
    if notes:
        sections += ["", "## Cells not measured", ""] + [f"- {n}" for n in notes]
    written.append(results.write_text("tables/README.md", "\n".join(sections) + "\n"))
    return written
