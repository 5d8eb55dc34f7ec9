"""report.html: one self-contained page (figures embedded as base64 PNG) answering, per model, who is
fastest and how sure that is, then showing the tables, figures, scorecard, warnings and setup."""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from servingbench.analysis.slo import breaches, observed_text
from servingbench.errors import ServingbenchError, describe
from servingbench.outputs import findings
from servingbench.outputs.figures import BREAKDOWN, CAPACITY, SWEEP, TIMESERIES, RenderedFigure
from servingbench.results.schema import ModelInfo, Summary
from servingbench.results.tables import METRICS, RESOURCE_METRICS, Grid, Table, grids, table_name, unsupported_notes
from servingbench.usability.evidence import gather_evidence
from servingbench.usability.scorecard import CRITERIA, load_scorecards


@dataclass(frozen=True)
class ModelSection:
    grid: Grid
    info: ModelInfo | None
    verdicts: list[findings.Verdict]
    breakdown: list[str]
    not_measured: list[str]  # "framework / model: status: reason"
    tables: list[Table]
    breakdown_figure: tuple[str, str] | None  # (caption, data URI): shown with the answers
    figures: list[tuple[str, str]]


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _model_sections(summary: Summary, tables: list[Table], figures: list[RenderedFigure]) -> list[ModelSection]:
    by_name = {t.name: t for t in tables}
    infos = {m.name: m for m in summary.models}
    sections = []
    for grid in grids(summary):
        info = infos.get(grid.model)
        floor = info.inprocess_latency_ms.mean if info and info.inprocess_latency_ms else None
        # the CI variant where a metric has one: it carries the same means
        shown = [by_name[name] for m in METRICS + RESOURCE_METRICS
                 if (name := table_name(grid.name, m, ci=m.estimate is not None)) in by_name]
        embedded = {f: (f.kind.caption, data_uri(f.png)) for f in figures
                    if f.model == grid.name and f.cell is None}
        sections.append(ModelSection(
            grid, info, findings.model_verdicts(grid), findings.breakdown_lines(grid, floor),
            unsupported_notes(summary, grid.model, grid.pipeline), shown,
            next((uri for f, uri in embedded.items() if f.kind is BREAKDOWN), None),
            [uri for f, uri in embedded.items() if f.kind is not BREAKDOWN]))
    return sections


def template_environment() -> Environment:
    """The package's templates, with the `number` filter; pages share page.html.j2's style and macros."""
    env = Environment(loader=PackageLoader("servingbench.outputs"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(number=lambda v: "-" if v is None else findings.number(v))
    return env


def _flatten(data: object, prefix: str = "") -> list[tuple[str, str]]:
    """Nested JSON as (dotted key, value) rows."""
    if isinstance(data, dict):
        return [row for k, v in data.items() for row in _flatten(v, f"{prefix}{k}.")]
    if isinstance(data, list) and any(isinstance(v, dict) for v in data):
        return [row for i, v in enumerate(data) for row in _flatten(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), ", ".join(map(str, data)) if isinstance(data, list) else str(data))]


def _listed(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _setup_sentence(study: object) -> str:
    """The study's shape in one line, from whatever study.yaml has (edited by hand, any key may be amiss)."""
    if not isinstance(study, dict):
        return ""
    load = study.get("load") if isinstance(study.get("load"), dict) else {}
    parts = [f"{key} {_listed(study[key])}" for key in ("frameworks", "models") if study.get(key)]
    parts += [f"{study[key]} {label}" for key, label in (("size", "model size"), ("weights", "weights"))
              if study.get(key)]
    if load.get("users"):
        parts.append(f"{_listed(load['users'])} closed-loop users")
    if load.get("repetitions"):
        length = f" of {load['duration_s']} s" if load.get("duration_s") else ""
        parts.append(f"{load['repetitions']} repetitions{length} per load level")
    return "; ".join(parts)


def _read(path: Path, parse: Callable[[str], object]) -> tuple[str | None, object]:
    """A saved file's text and its parsed content (None, None where it is missing), or a one-line error."""
    if not path.is_file():
        return None, None
    try:
        text = path.read_text(encoding="utf-8")
        return text, parse(text)
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON
        raise ServingbenchError(f"{path} is not readable {path.suffix[1:].upper()}: {describe(exc)}") from None


def _megabytes(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:.0f} MB"


def render_html(path: Path, summary: Summary, tables: list[Table], summary_tables: list[Table],
                figures: list[RenderedFigure]) -> str:
    study_yaml, study = _read(path / "study.yaml", yaml.safe_load)
    _, environment = _read(path / "environment.json", json.loads)
    env = template_environment()
    env.filters.update(megabytes=_megabytes, observed=observed_text)
    scorecards = load_scorecards()
    return env.get_template("report.html.j2").render(
        summary=summary,
        setup=_setup_sentence(study),
        study_yaml=study_yaml,
        environment=[] if environment is None else _flatten(environment),
        sections=_model_sections(summary, tables, figures),
        summary_tables=summary_tables,
        open_loop_figures=[(f.kind.caption, data_uri(f.png)) for f in figures if f.kind in (CAPACITY, SWEEP)],
        timeseries_caption=TIMESERIES.caption,
        timeseries=[(f.cell.label, data_uri(f.png)) for f in figures if f.kind is TIMESERIES and f.cell],
        scorecards=scorecards,
        score_rows=[(title, [card.rows()[i][1] for card in scorecards]) for i, title in enumerate(CRITERIA.values())],
        evidence=gather_evidence(summary, scorecards),
        warnings=findings.warnings(summary),
        correctness=findings.correctness(summary),
        slo_cells=[c for c in summary.cells if c.slo],
        slo_breaches=breaches(summary),
    )
