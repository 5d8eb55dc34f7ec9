"""Re-render every output of a results folder from its summary.json alone."""
from __future__ import annotations

from pathlib import Path

from servingbench.outputs.figures import render_figures
from servingbench.outputs.html import render_html
from servingbench.results.scenario_tables import scenario_tables
from servingbench.results.store import ResultsDir, load_summary
from servingbench.results.tables import Table, study_tables, summary_tables, to_csv, to_markdown

REPORT = "report.html"


def _write_tables(results: ResultsDir, title: str, complete: bool, tables: list[Table]) -> list[Path]:
    """tables/<name>.csv|.md per table and tables/README.md with all of them."""
    written = []
    sections = [f"# {title}: results tables", "",
                "Per model and metric, rows are frameworks and columns the number of closed-loop users (the "
                "study's layout); values are means across repetitions, `-ci` tables add the 95% CI. The "
                "`summary-*` tables are the study's Tables 6 and 7, the best value per model in bold, "
                "followed by why any cell was not measured. `<model>-loadgen` tables list the MLPerf LoadGen "
                "scenarios and `capacity` the highest rate LoadGen calls VALID under the latency bound."]
    if not complete:
        sections.append("\n**This study did not finish**: the tables show the trials that completed.")
    for table in tables:
        written.append(results.write_text(f"tables/{table.name}.csv", to_csv(table)))
        markdown = to_markdown(table)
        written.append(results.write_text(f"tables/{table.name}.md", markdown))
        sections += ["", markdown]
    written.append(results.write_text("tables/README.md", "\n".join(sections) + "\n"))
    return written


def render_outputs(path: Path) -> list[Path]:
    """Writes tables/, figures/ (PNG + SVG) and report.html; returns the files written."""
    summary = load_summary(path)
    results = ResultsDir(path)
    per_model, overall = study_tables(summary), summary_tables(summary) + scenario_tables(summary)
    written = _write_tables(results, summary.study, summary.complete, overall + per_model)
    figures = render_figures(summary, path / "figures")
    written += [p for f in figures for p in (f.png, f.svg)]
    written.append(results.write_text(REPORT, render_html(path, summary, per_model, overall, figures)))
    return written
