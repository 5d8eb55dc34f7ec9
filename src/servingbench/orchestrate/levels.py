"""The load levels of one framework x model: a cell per closed-loop user count, per LoadGen Server rate and
per other LoadGen scenario."""
from __future__ import annotations

from servingbench.config import CAPACITY, CLOSED_LOOP, LoadSettings
from servingbench.display import Display
from servingbench.orchestrate.capacity import run_capacity_cell
from servingbench.orchestrate.trials import Target, run_cell, run_scenario_cell
from servingbench.pipeline import DEFAULT_PIPELINE, Pipeline
from servingbench.results.schema import CellSummary, Summary
from servingbench.results.store import ResultsDir


def planned_cells(framework: str, model: str, load: LoadSettings,
                  pipeline: Pipeline = DEFAULT_PIPELINE) -> list[CellSummary]:
    cells = []
    served = {"framework": framework, "model": model, "pipeline": pipeline, "status": "running"}
    for scenario in load.scenarios:
        if scenario == CLOSED_LOOP:
            cells += [CellSummary(**served, users=u) for u in load.users]
        elif scenario == "server":
            cells += [CellSummary(**served, scenario=scenario, users=0, target_qps=rate,
                                  latency_bound_ms=load.latency_bound_ms, latency_percentile=load.latency_percentile)
                      for rate in load.target_qps]
        else:
            cells.append(CellSummary(**served, scenario=scenario, users=0))
    return cells


def run_planned_cell(results: ResultsDir, summary: Summary, cell: CellSummary, target: Target, load: LoadSettings,
                     display: Display) -> CellSummary:
    if cell.scenario == CLOSED_LOOP:
        return run_cell(results, summary, cell, target, load, display)
    if cell.scenario == CAPACITY:
        return run_capacity_cell(results, summary, cell, target, load, display)
    return run_scenario_cell(results, summary, cell, target, load, display)
