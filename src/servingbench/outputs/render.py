"""Re-render every output of a results folder from its summary.json alone."""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pyarrow as pa

from servingbench.analysis.timeseries import COLUMNS, TrialSeries, read_trial_series
from servingbench.outputs.figures import render_figures, render_timeseries_figures
from servingbench.outputs.html import render_html
from servingbench.results.payload_tables import payload_tables
from servingbench.results.scenario_tables import scenario_tables
from servingbench.results.schema import Summary
from servingbench.results.store import ResultsDir, load_summary
from servingbench.results.tables import Table, markdown_text, study_tables, summary_tables, to_csv, to_markdown

REPORT = "report.html"


def _write_tables(results: ResultsDir, title: str, complete: bool, tables: list[Table]) -> list[Path]:
    """tables/<name>.csv|.md per table and tables/README.md with all of them."""
    written = []
    sections = [f"# {markdown_text(title)}: results tables", "",
                "Per model and metric, rows are frameworks and columns the number of closed-loop users (the "
                "study's layout); values are means across repetitions, `-ci` tables add the 95% CI. The "
                "`summary-*` tables are the study's Tables 6 and 7, the best value per model in bold, "
                "followed by why any cell was not measured. `<model>-loadgen` tables list the MLPerf LoadGen "
                "scenarios, `<model>-server-sweep` the Server scenario at each offered rate and `capacity` the "
                "highest rate LoadGen calls VALID under the latency bound. `<endpoint>-payloads` (`servingbench load` "
                "with a payload) shows each payload's requests, bytes and latency. A study of both pipelines has "
                "`<model>.network_only-*` tables beside `<model>-*` (end to end): cells of different pipelines are "
                "never ranked together."]
    if not complete:
        sections.append("\n**This study did not finish**: the tables show the trials that completed.")
    for table in tables:
        written.append(results.write_text(f"tables/{table.name}.csv", to_csv(table)))
        markdown = to_markdown(table)
        written.append(results.write_text(f"tables/{table.name}.md", markdown))
        sections += ["", markdown]
    written.append(results.write_text("tables/README.md", "\n".join(sections) + "\n"))
    return written


def _trial_series(path: Path, summary: Summary) -> dict[str, TrialSeries]:
    """Each trial's time series, by trial id, where its request records are saved and readable (a trial cut
    short may have left an unfinished Parquet file; a copied folder may lack requests/)."""
    found = {}
    for trial in (t for cell in summary.cells for t in cell.repetitions):
        records = path / trial.records_file
        if records.is_file():
            try:
                found[trial.trial_id] = read_trial_series(
                    records, path / trial.telemetry_file if trial.telemetry_file else None)
            except (OSError, pa.ArrowException):
                continue
    return found


def _series_csv(series: TrialSeries) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in series.bins:
        writer.writerow("" if v is None else round(v, 3) if isinstance(v, float) else v
                        for v in dataclasses.astuple(row))
    return out.getvalue()


def render_outputs(path: Path) -> list[Path]:
    """Writes tables/, timeseries/, figures/ (PNG + SVG) and report.html; returns the files written."""
    summary = load_summary(path)
    results = ResultsDir(path)
    per_model = study_tables(summary)
    overall = summary_tables(summary) + scenario_tables(summary) + payload_tables(summary)
    written = _write_tables(results, summary.study, summary.complete, overall + per_model)
    series = _trial_series(path, summary)
    written += [results.write_text(f"timeseries/{trial_id}.csv", _series_csv(s)) for trial_id, s in series.items()]
    figures = render_figures(summary, path / "figures") + render_timeseries_figures(summary, series, path / "figures")
    written += [p for f in figures for p in (f.png, f.svg)]
    written.append(results.write_text(REPORT, render_html(path, summary, per_model, overall, figures)))
    return written
