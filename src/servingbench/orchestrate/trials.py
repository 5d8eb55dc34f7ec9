"""Run the repetitions of one cell (a framework x model at one load level) and record each trial."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Callable

from servingbench.adapters.base import PreparedRequest
from servingbench.analysis.resources import summarize_resources
from servingbench.analysis.server_metrics import trial_server_metrics
from servingbench.analysis.stats import aggregate_cell, summarize_records
from servingbench.analysis.warnings import trial_warnings
from servingbench.config import LoadSettings
from servingbench.display import Display
from servingbench.analysis.loadgen_summary import loadgen_counts, parse_summary
from servingbench.load.closed_loop import ClosedLoopPlan, run_closed_loop
from servingbench.load.loadgen import LoadGenPlan, run_loadgen
from servingbench.load.records import read_records
from servingbench.monitor.resources import ResourceSampler, write_csv
from servingbench.results.schema import CellSummary, Summary, TrialSummary
from servingbench.results.store import ResultsDir, now_iso


TELEMETRY_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Target:
    """What a cell's trials hit: a ready server and the requests prepared for it."""

    framework: str
    model: str
    base_url: str
    requests: list[PreparedRequest]
    scrape_metrics: Callable[[], dict[str, float]] = dict
    server_pid: int | None = None  # None: a server servingbench did not start (no server telemetry)


def trial_id(framework: str, model: str, level: str, repetition: int) -> str:
    """A file-name-safe id; `level` is the load level, e.g. "u10" (users) or a LoadGen scenario."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{framework}--{model}--{level}--r{repetition}")


def _save(results: ResultsDir, summary: Summary, cell: CellSummary) -> CellSummary:
    """The summary on disk is rewritten after every trial, so a crash loses at most the running one."""
    summary.put_cell(cell)
    results.save_summary(summary)
    return cell


def run_cell(results: ResultsDir, summary: Summary, cell: CellSummary, target: Target, load: LoadSettings,
             display: Display) -> CellSummary:
    """Runs every repetition; the summary is saved after each, so a crash loses at most one trial."""
    for repetition in range(1, load.repetitions + 1):
        tid = trial_id(target.framework, target.model, f"u{cell.users}", repetition)
        records_path = results.requests_dir / f"{tid}.parquet"
        plan = ClosedLoopPlan(tid, target.base_url, target.requests, cell.users, load.warmup_s, load.duration_s,
                              load.request_timeout_s)
        label = f"{target.model} · {target.framework} · {cell.users} users · rep {repetition}/{load.repetitions}"
        started_at = now_iso()
        before = target.scrape_metrics()
        sampler = ResourceSampler(TELEMETRY_INTERVAL_S, target.server_pid).start()
        try:
            with display.trial(label, load.warmup_s + load.duration_s) as on_progress:
                window = run_closed_loop(plan, records_path, results.work_dir / "load", on_progress,
                                         on_started=partial(sampler.watch, "load"))
        finally:
            samples = sampler.stop()
        after = target.scrape_metrics()
        telemetry_path = results.path / "telemetry" / f"{tid}.csv"
        write_csv(samples, telemetry_path)
        counts = summarize_records(read_records(records_path), window.measure_start_ns, window.measure_end_ns)
        trial = TrialSummary(**counts.model_dump(), trial_id=tid, repetition=repetition,
                             records_file=str(records_path.relative_to(results.path)), started_at=started_at,
                             load_cpu_percent=window.load_cpu_percent,
                             server_metrics=trial_server_metrics(before, after),
                             resources=summarize_resources(samples, window.measure_start_ns, window.measure_end_ns,
                                                           TELEMETRY_INTERVAL_S),
                             telemetry_file=str(telemetry_path.relative_to(results.path)),
                             warnings=trial_warnings(counts, window.load_cpu_percent))
        cell = aggregate_cell(cell.model_copy(update={"repetitions": [*cell.repetitions, trial]}))
        _save(results, summary, cell)
        display.trial_done(label, trial)
    return _save(results, summary, cell.model_copy(update={"status": "ok"}))


@dataclass(frozen=True)
class ScenarioSettings:
    """A LoadGen scenario's parameters (the cell's `scenario` names it)."""

    scenario: str
    target_qps: float
    latency_bound_ms: float


def run_scenario_cell(results: ResultsDir, summary: Summary, cell: CellSummary, target: Target, load: LoadSettings,
                      scenario: ScenarioSettings, display: Display) -> CellSummary:
    """Repetitions of one MLPerf LoadGen scenario; statistics and verdict as LoadGen measured them."""
    for repetition in range(1, load.repetitions + 1):
        tid = trial_id(target.framework, target.model, scenario.scenario, repetition)
        records_path = results.requests_dir / f"{tid}.parquet"
        log_dir = results.path / "loadgen" / tid
        plan = LoadGenPlan(tid, target.base_url, target.requests, scenario.scenario, load.duration_s,
                           load.request_timeout_s, scenario.target_qps, scenario.latency_bound_ms)
        label = f"{target.model} · {target.framework} · {scenario.scenario} · rep {repetition}/{load.repetitions}"
        display.stage(f"{label}: running LoadGen")
        started_at = now_iso()
        window = run_loadgen(plan, records_path, log_dir, results.work_dir / "load")
        counts, verdict = loadgen_counts(scenario.scenario, parse_summary(log_dir / "mlperf_log_summary.txt"),
                                         read_records(records_path), window["start_ns"], window["end_ns"])
        trial = TrialSummary(**counts.model_dump(), trial_id=tid, repetition=repetition,
                             records_file=str(records_path.relative_to(results.path)), started_at=started_at,
                             load_cpu_percent=0.0, loadgen=verdict,
                             loadgen_log_dir=str(log_dir.relative_to(results.path)),
                             warnings=[] if verdict["valid"] else [f"LoadGen says {verdict['result']}: see "
                                                                   f"{log_dir / 'mlperf_log_summary.txt'}"])
        cell = aggregate_cell(cell.model_copy(update={"repetitions": [*cell.repetitions, trial]}))
        _save(results, summary, cell)
        display.trial_done(label, trial)
    return _save(results, summary, cell.model_copy(update={"status": "ok"}))
