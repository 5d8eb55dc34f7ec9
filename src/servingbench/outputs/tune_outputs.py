"""Re-render every output of a tune folder from its tune.json alone: tables/tune-*.csv|md, figures/pareto-*
and tune-report.html. The page is always tune-report.html, so a folder that also holds a study's summary.json
keeps both reports side by side."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servingbench.outputs.figures import RenderedFigure
from servingbench.outputs.html import data_uri, template_environment
from servingbench.outputs.tune_figures import PARETO, render_tune_figures
from servingbench.outputs.tune_tables import (
    TuneTable,
    bound_text,
    candidates_table,
    default_vs_tuned,
    models,
    percentile_name,
    ranking_table,
)
from servingbench.results.store import ResultsDir
from servingbench.results.tables import Table, to_csv, to_markdown
from servingbench.results.tune_schema import TuneSummary
from servingbench.results.tune_store import load_tune_summary

TUNE_REPORT = "tune-report.html"


@dataclass(frozen=True)
class ModelSection:
    model: str
    default_vs_tuned: Table
    pareto: tuple[str, str] | None  # (caption, data URI)
    candidates: Table


def _write(results: ResultsDir, table: TuneTable, markdown: bool = True) -> list[Path]:
    written = [results.write_text(f"tables/{table.name}.csv", to_csv(table.full()))]
    if markdown:
        written.append(results.write_text(f"tables/{table.name}.md", to_markdown(table.readable())))
    return written


def warnings(summary: TuneSummary) -> list[str]:
    """What makes a result doubtful or missing, per framework x model."""
    found = [] if summary.complete else ["the tune did not finish: results cover the candidates measured so far"]
    for r in summary.results:
        where = f"{r.framework} / {r.model}"
        if r.status in ("unsupported", "failed"):
            found.append(f"{where}: {r.status}: {r.reason}")
        found += [f"{where}: {w}" for w in r.warnings]
        found += [f"{where}: candidate {c.id} failed: {c.reason}" for c in r.candidates if c.status == "failed"]
        found += [f"{where}: candidate {c.id} gave wrong answers" for c in r.candidates if c.correct is False]
    return found


def render_tune_html(summary: TuneSummary, figures: list[RenderedFigure]) -> str:
    pareto = {f.model: (f.kind.caption, data_uri(f.png)) for f in figures if f.kind is PARETO}
    sections = [ModelSection(m, default_vs_tuned(summary, m).readable(), pareto.get(m),
                             candidates_table(summary, m).readable()) for m in models(summary)]
    return template_environment().get_template("tune-report.html.j2").render(
        summary=summary, bound=bound_text(summary), percentile=percentile_name(summary),
        ranking=ranking_table(summary).readable(), sections=sections,
        warnings=warnings(summary))


def render_tune_outputs(path: Path) -> list[Path]:
    """Writes tables/tune-<model>.csv|md, tune-ranking.csv|md, tune-candidates.csv, figures/pareto-<model>.png|svg
    and tune-report.html; returns the files written."""
    summary = load_tune_summary(path)
    results = ResultsDir(path)
    written = [p for m in models(summary) for p in _write(results, default_vs_tuned(summary, m))]
    written += _write(results, ranking_table(summary)) + _write(results, candidates_table(summary), markdown=False)
    figures = render_tune_figures(summary, path / "figures")
    written += [p for f in figures for p in (f.png, f.svg)]
    written.append(results.write_text(TUNE_REPORT, render_tune_html(summary, figures)))
    return written
