"""The study's tables: one per model and metric, rows = framework, columns = user count."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Callable

from servingbench.results.schema import CellSummary, Summary


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    value: Callable[[CellSummary], float | None]


METRICS = (
    Metric("throughput", "Throughput", "requests per second",
           lambda c: c.throughput_rps.mean if c.throughput_rps else None),
    Metric("latency", "Mean latency", "milliseconds", lambda c: c.latency_ms.get("mean")),
    Metric("latency_p50", "Median (p50) latency", "milliseconds", lambda c: c.latency_ms.get("p50")),
    Metric("latency_p99", "p99 latency", "milliseconds", lambda c: c.latency_ms.get("p99")),
    Metric("failures", "Failures", "failures per second",
           lambda c: c.failures_per_s.mean if c.failures_per_s else None),
)


@dataclass(frozen=True)
class Table:
    name: str      # file stem, e.g. "resnet50-throughput"
    title: str
    header: list[str]
    rows: list[list[str]]


def _cell_text(cell: CellSummary | None, metric: Metric) -> str:
    if cell is None:
        return ""
    if cell.status in ("unsupported", "failed"):
        return cell.status
    value = metric.value(cell)
    return "" if value is None else f"{value:.2f}"


def study_tables(summary: Summary) -> list[Table]:
    tables = []
    for model in dict.fromkeys(c.model for c in summary.cells):
        cells = [c for c in summary.cells if c.model == model and c.scenario == "closed"]
        users = sorted({c.users for c in cells})
        frameworks = list(dict.fromkeys(c.framework for c in cells))
        by_key = {(c.framework, c.users): c for c in cells}
        for metric in METRICS:
            rows = [[fw] + [_cell_text(by_key.get((fw, u)), metric) for u in users] for fw in frameworks]
            tables.append(Table(f"{model}-{metric.key}", f"{metric.title} of the {model} model (in {metric.unit})",
                                ["Framework \\ Users"] + [str(u) for u in users], rows))
    return tables


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.header)
    writer.writerows(table.rows)
    return out.getvalue()


def to_markdown(table: Table) -> str:
    lines = [f"**{table.title}**", "", "| " + " | ".join(table.header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def unsupported_notes(summary: Summary) -> list[str]:
    """Why a cell is missing, once per framework x model."""
    seen = {}
    for c in summary.cells:
        if c.status in ("unsupported", "failed") and (c.framework, c.model) not in seen:
            seen[(c.framework, c.model)] = f"{c.framework} / {c.model}: {c.status}: {c.reason}"
    return list(seen.values())
