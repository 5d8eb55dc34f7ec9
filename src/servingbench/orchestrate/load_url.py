"""`servingbench load URL`: closed-loop load on any running HTTP endpoint, no model involved."""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import yaml

import servingbench
from servingbench.adapters.endpoint import ENDPOINT_REACH_TIMEOUT_S, endpoint_requests, split_url
from servingbench.adapters.http_metrics import scrape_totals
from servingbench.analysis.payloads import payload_counts
from servingbench.analysis.slo import Gate, apply_gates
from servingbench.config import EndpointSettings, LoadSettings
from servingbench.display import Display
from servingbench.errors import ServerStartError, ServingbenchError
from servingbench.launch.process import wait_ready
from servingbench.load.contracts import PreparedRequest, RequestOrder
from servingbench.load.records import read_records
from servingbench.orchestrate.levels import planned_cells, run_planned_cell
from servingbench.orchestrate.trials import Target
from servingbench.outputs.render import render_outputs
from servingbench.results.environment import collect_environment
from servingbench.results.schema import CellSummary, Summary
from servingbench.results.store import ResultsDir, now_iso


def endpoint_label(url: str) -> str:
    """A file-name-safe name for the endpoint, used where a study has the model name."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", url.split("://", 1)[-1]).strip("_")


def with_payload_counts(results: ResultsDir, cell: CellSummary, requests: list[PreparedRequest]) -> CellSummary:
    """The cell with each payload's requests, sizes and latency, from its repetitions' records."""
    paths = [results.path / t.records_file for t in cell.repetitions]
    records = [read_records(path) for path in paths if path.is_file()]
    counts = payload_counts(records, [r.sample for r in requests], [len(r.body) for r in requests])
    return cell.model_copy(update={"payloads": counts})


def load_url(endpoint: EndpointSettings, load: LoadSettings, gates: list[Gate], out: Path, display: Display) -> Summary:
    """Every level of `load`: closed-loop user counts and MLPerf LoadGen scenarios. The results folder is
    created only once the input is valid and the endpoint answers."""
    base_url, _ = split_url(endpoint.url)
    requests = endpoint_requests(endpoint)
    if endpoint.metrics_url is not None:
        split_url(endpoint.metrics_url, "metrics URL")  # a malformed URL is bad input; one that does not answer, a trial warning
    try:
        wait_ready(None, endpoint.url, ENDPOINT_REACH_TIMEOUT_S, expect_status=None)
    except ServerStartError as exc:
        raise ServingbenchError(f"endpoint unreachable: {exc}") from None
    results = ResultsDir.create(out)
    display.stage(f"load on {endpoint.url} → {results.path}")
    label = endpoint_label(endpoint.url)
    results.write_text("study.yaml", yaml.safe_dump({
        "name": "load", "endpoint": endpoint.for_results(), "load": load.model_dump(mode="json")},
        sort_keys=False))
    results.write_json("environment.json", collect_environment(threads=0))
    summary = Summary(servingbench_version=servingbench.__version__, study="load", started_at=now_iso(),
                      updated_at=now_iso())
    scrape = partial(scrape_totals, endpoint.metrics_url) if endpoint.metrics_url else dict
    target = Target("endpoint", label, base_url, requests, scrape,
                    order=RequestOrder(kind=endpoint.payload_order, seed=endpoint.payload_seed))
    try:
        for cell in planned_cells("endpoint", label, load):
            summary.put_cell(cell)
            cell = run_planned_cell(results, summary, cell, target, load, display)
            if endpoint.payload is not None:
                summary.put_cell(with_payload_counts(results, cell, requests))
                results.save_summary(summary)
    finally:
        summary.complete = all(c.status == "ok" for c in summary.cells)
        summary = apply_gates(summary, gates)
        results.save_summary(summary)
        render_outputs(results.path)
    return summary
