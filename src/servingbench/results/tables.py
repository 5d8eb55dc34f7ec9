"""The study's tables: per model and metric (rows = framework, columns = users), and its summary
Tables 6 and 7 (rows = model, columns = framework, the best value per model marked)."""
from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from typing import Callable

from servingbench.pipeline import DEFAULT_PIPELINE, PIPELINE_WORDS, Pipeline, served_id, served_label
from servingbench.results.schema import CellSummary, Estimate, Summary


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    value: Callable[[CellSummary], float | None]
    estimate: Callable[[CellSummary], Estimate | None] | None = None  # mean with its 95% CI
    lower_is_better: bool = True
    optional: bool = False  # a table only where the results have values (newer results folders)


METRICS = (
    Metric("throughput", "Throughput", "requests per second",
           lambda c: c.throughput_rps.mean if c.throughput_rps else None,
           lambda c: c.throughput_rps, lower_is_better=False),
    Metric("latency", "Mean latency", "milliseconds", lambda c: c.latency_ms.get("mean"),
           lambda c: c.latency_ms_ci95.get("mean")),
    Metric("latency_p50", "Median (p50) latency", "milliseconds", lambda c: c.latency_ms.get("p50"),
           lambda c: c.latency_ms_ci95.get("p50")),
    Metric("latency_p99", "p99 latency", "milliseconds", lambda c: c.latency_ms.get("p99"),
           lambda c: c.latency_ms_ci95.get("p99")),
    Metric("failures", "Failures", "failures per second",
           lambda c: c.failures_per_s.mean if c.failures_per_s else None),
)
THROUGHPUT, LATENCY = METRICS[0], METRICS[1]


def _resource(name: str, stat: str) -> Callable[[CellSummary], float | None]:
    """A telemetry statistic averaged over the repetitions that sampled it."""
    def value(cell: CellSummary) -> float | None:
        found = [getattr(s, stat) for t in cell.repetitions if t.resources and (s := getattr(t.resources, name))]
        return statistics.fmean(found) if found else None
    return value


def _trial_mean(name: str) -> Callable[[CellSummary], float | None]:
    """A per-trial figure averaged over the repetitions that have it."""
    def value(cell: CellSummary) -> float | None:
        found = [v for t in cell.repetitions if (v := getattr(t, name)) is not None]
        return statistics.fmean(found) if found else None
    return value


RESOURCE_METRICS = (
    Metric("server_cpu", "Server CPU (process tree, mean)", "% of one core", _resource("server_cpu_percent", "mean"),
           optional=True),
    Metric("server_memory", "Server memory (peak RSS)", "MB", _resource("server_rss_mb", "max"), optional=True),
    Metric("load_cpu", "Load generator CPU (peak)", "% of one core", _resource("load_cpu_percent", "max"),
           optional=True),
    Metric("load_cpu_per_request", "Load generator CPU per request", "microseconds",
           _trial_mean("load_cpu_us_per_request"), optional=True),
    Metric("gpu_util", "GPU utilisation (mean)", "%", _resource("gpu_util_percent", "mean"), optional=True),
    Metric("gpu_memory", "GPU memory (peak)", "MB", _resource("gpu_memory_mb", "max"), optional=True),
    Metric("gpu_power", "GPU power (mean)", "W", _resource("gpu_power_w", "mean"), optional=True),
)
NOT_MEASURED = ("unsupported", "failed")


@dataclass(frozen=True)
class Table:
    name: str      # file stem, e.g. "resnet50-throughput"
    title: str
    header: list[str]
    rows: list[list[str]]
    bold: frozenset[tuple[int, int]] = frozenset()  # (row, column) of the best values
    notes: list[str] = field(default_factory=list)


def table_name(model: str, metric: Metric, ci: bool = False) -> str:
    return f"{model}-{metric.key}{'-ci' if ci else ''}"


@dataclass(frozen=True)
class Grid:
    """One model's closed-loop cells of one pipeline, addressed by framework and user count: the frameworks it ranks
    were handed the same input and answered the same output."""

    model: str
    frameworks: list[str]
    users: list[int]
    cells: dict[tuple[str, int], CellSummary]
    pipeline: Pipeline = DEFAULT_PIPELINE
    only_pipeline: bool = True  # the study measured no other: the default one goes unsaid

    @property
    def name(self) -> str:
        """In file names: "resnet50", or "resnet50.network_only" beside an end-to-end grid."""
        return served_id(self.model, self.pipeline)

    @property
    def title(self) -> str:
        """In titles and headings: the model, and its pipeline wherever it is not the lone default one."""
        if self.pipeline == DEFAULT_PIPELINE and self.only_pipeline:
            return self.model
        return f"{self.model}, {PIPELINE_WORDS[self.pipeline]}"

    def measured(self, framework: str, users: int) -> CellSummary | None:
        """The cell if it has repetitions to show (a running cell of an unfinished study counts)."""
        cell = self.cells.get((framework, users))
        return cell if cell and cell.status not in NOT_MEASURED and cell.repetitions else None

    def ranking(self, users: int, metric: Metric) -> list[tuple[str, CellSummary]]:
        """Frameworks measured at this load with a value, best first."""
        found = [(fw, c, value) for fw in self.frameworks
                 if (c := self.measured(fw, users)) and (value := metric.value(c)) is not None]
        ranked = sorted(found, key=lambda item: item[2] * (1 if metric.lower_is_better else -1))
        return [(fw, c) for fw, c, _ in ranked]


def grids(summary: Summary) -> list[Grid]:
    """Per model, a grid per pipeline: cells of different pipelines are never ranked together."""
    found = []
    closed = [c for c in summary.cells if c.scenario == "closed"]
    pipelines = list(dict.fromkeys(c.pipeline for c in closed))
    for model in dict.fromkeys(c.model for c in closed):
        for pipeline in pipelines:
            cells = [c for c in closed if c.model == model and c.pipeline == pipeline]
            if cells:
                found.append(Grid(model, list(dict.fromkeys(c.framework for c in cells)),
                                  sorted({c.users for c in cells}), {(c.framework, c.users): c for c in cells},
                                  pipeline, only_pipeline=len(pipelines) == 1))
    return found


def _cell_text(cell: CellSummary | None, metric: Metric) -> str:
    if cell is None:
        return ""
    if cell.status in NOT_MEASURED:
        return cell.status
    value = metric.value(cell)
    return "" if value is None else f"{value:.2f}"


def ci_text(estimate: Estimate | None, number: Callable[[float], str] = "{:.2f}".format, missing: str = "") -> str:
    """As "mean [low, high]"; with one repetition there is no interval: "mean [n=1]"."""
    if estimate is None or estimate.mean is None:
        return missing
    if estimate.ci95_low is None or estimate.ci95_high is None:
        return f"{number(estimate.mean)} [n={estimate.n}]"
    return f"{number(estimate.mean)} [{number(estimate.ci95_low)}, {number(estimate.ci95_high)}]"


def _ci_cell_text(cell: CellSummary | None, metric: Metric) -> str:
    if cell is None or cell.status in NOT_MEASURED or metric.estimate is None:
        return _cell_text(cell, metric)
    return ci_text(metric.estimate(cell))


def study_tables(summary: Summary) -> list[Table]:
    """Per model and metric; metrics with a CI also get a `<model>-<metric>-ci` table of "mean [low, high]",
    telemetry metrics only where the results have them."""
    tables = []
    for grid in grids(summary):
        header = ["Framework \\ Users"] + [str(u) for u in grid.users]
        for metric in METRICS + RESOURCE_METRICS:
            if metric.optional and not any(metric.value(c) is not None for c in grid.cells.values()):
                continue
            title = f"{metric.title} of the {grid.title} model (in {metric.unit})"
            variants = [(False, "", _cell_text)]
            if metric.estimate:
                variants.append((True, ", mean [95% CI] across repetitions", _ci_cell_text))
            for ci, note, text in variants:
                rows = [[fw] + [text(grid.cells.get((fw, u)), metric) for u in grid.users] for fw in grid.frameworks]
                tables.append(Table(table_name(grid.name, metric, ci), title + note, header, rows))
    return tables


def _summary_table(summary: Summary, name: str, title: str, metric: Metric, highest: bool) -> Table:
    all_grids = grids(summary)
    frameworks = list(dict.fromkeys(fw for g in all_grids for fw in g.frameworks))
    rows, bold = [], set()
    for r, grid in enumerate(all_grids):
        users = grid.users[-1] if highest else grid.users[0]
        ranking = grid.ranking(users, metric)
        best_value = metric.value(ranking[0][1]) if ranking else None
        best = [fw for fw, c in ranking if metric.value(c) == best_value]
        row = [grid.title, str(users)]
        for fw in frameworks:
            cell = grid.cells.get((fw, users))
            row.append(_cell_text(cell, metric) or "-")
            if fw in best:
                bold.add((r, len(row) - 1))
        rows.append(row + [" / ".join(best)])
    notes = unsupported_notes(summary)
    return Table(name, title, ["Model", "Users"] + frameworks + ["best"], rows, frozenset(bold), notes)


def summary_tables(summary: Summary) -> list[Table]:
    """The study's Tables 6 and 7: mean latency at the lowest load, throughput at the highest."""
    return [
        _summary_table(summary, "summary-latency-lowest-load",
                       "Latency at the lowest user count, per model and framework (mean, milliseconds; "
                       "the study's Table 6; best in bold)", LATENCY, highest=False),
        _summary_table(summary, "summary-throughput-highest-load",
                       "Throughput at the highest user count, per model and framework (requests per second; "
                       "the study's Table 7; best in bold)", THROUGHPUT, highest=True),
    ]


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.header)
    writer.writerows(table.rows)
    return out.getvalue()


def markdown_text(value: str) -> str:
    """Text as Markdown shows it, not as markup: names and reasons come from users and servers, and a `|` would
    split a table cell, `<script>` or a line break would be taken as HTML or a new block."""
    return " ".join(value.splitlines()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(table: Table) -> str:
    def text(r: int, c: int, value: str) -> str:
        return f"**{markdown_text(value)}**" if (r, c) in table.bold else markdown_text(value)

    lines = [f"**{markdown_text(table.title)}**", "", "| " + " | ".join(map(markdown_text, table.header)) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.header))) + "|"]
    lines += ["| " + " | ".join(text(r, c, v) for c, v in enumerate(row)) + " |" for r, row in enumerate(table.rows)]
    if table.notes:
        lines += [""] + [f"- {markdown_text(note)}" for note in table.notes]
    return "\n".join(lines) + "\n"


def unsupported_notes(summary: Summary, model: str | None = None, pipeline: str | None = None) -> list[str]:
    """Why a cell is missing, once per framework x model x pipeline (of one model and pipeline if given)."""
    seen = {}
    for c in summary.cells:
        served = (c.framework, c.model, c.pipeline)
        if c.status in NOT_MEASURED and served not in seen and model in (None, c.model) \
                and pipeline in (None, c.pipeline):
            seen[served] = f"{served_label(c.framework, c.pipeline)} / {c.model}: {c.status}: {c.reason}"
    return list(seen.values())
