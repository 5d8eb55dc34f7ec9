"""Run the repetitions of one cell (a framework x model at one load level) and record each trial."""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterator

from servingbench.analysis.loadgen_summary import loadgen_counts, parse_detail, parse_summary, send_delay_ms
from servingbench.analysis.resources import summarize_resources
from servingbench.analysis.server_metrics import trial_server_metrics
from servingbench.analysis.stats import aggregate_cell, summarize_records
from servingbench.analysis.warnings import not_a_measurement, trial_warnings
from servingbench.config import LoadSettings
from servingbench.display import Display
from servingbench.errors import MetricsUnavailable, ServerStartError, ServingbenchError
from servingbench.launch.server import RunningServer
from servingbench.load.closed_loop import local_load_workers, run_closed_loop
from servingbench.load.contracts import ClientStep, ClosedLoopPlan, LoadWorkerReport, PreparedRequest, RequestOrder
from servingbench.load.loadgen import loadgen_plan, run_loadgen
from servingbench.load.records import read_records
from servingbench.monitor.resources import ResourceSampler, write_csv
from servingbench.pipeline import DEFAULT_PIPELINE, Pipeline, served_id, served_label
from servingbench.results.schema import CellSummary, LoadWorker, Stability, Summary, TrialResources, TrialSummary
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
    # None: an endpoint servingbench did not start (no server telemetry, no liveness check between trials)
    server: RunningServer | None = None
    order: RequestOrder = RequestOrder()  # how closed-loop users pick among `requests`
    pipeline: Pipeline = DEFAULT_PIPELINE
    client_step: ClientStep | None = None  # client work per request inside the closed loop (`requests` as planned)

    @property
    def served(self) -> str:
        """For progress lines: "triton" or "triton (network only)"."""
        return served_label(self.framework, self.pipeline)

    def trial_id(self, level: str, repetition: int) -> str:
        """A file-name-safe id; `level` is the load level, e.g. "u10" (users) or a LoadGen scenario. A pipeline
        other than the default is part of it, so both pipelines' trials of one framework keep files of their own."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_",
                      f"{served_id(self.framework, self.pipeline)}--{self.model}--{level}--r{repetition}")


class ServerDied(ServerStartError):
    """The server died or stopped answering during a trial: the framework x model's remaining cells can't run."""


def save_cell(results: ResultsDir, summary: Summary, cell: CellSummary) -> CellSummary:
    """The summary on disk is rewritten after every trial, so a crash loses at most the running one."""
    summary.put_cell(cell)
    results.save_summary(summary)
    return cell


@dataclass
class Observed:
    """Server counters and resource samples around one trial (filled when the trial ends)."""

    watch_load: Callable[[int], None]
    server_metrics: dict[str, float] = field(default_factory=dict)
    samples: list = field(default_factory=list)
    telemetry_file: str = ""
    warnings: list[str] = field(default_factory=list)  # a metrics page that did not answer

    def resources(self, start_ns: int, end_ns: int) -> TrialResources | None:
        return summarize_resources(self.samples, start_ns, end_ns, TELEMETRY_INTERVAL_S)


def scraped(target: Target, when: str, warnings: list[str]) -> dict[str, float]:
    """The target's counters; a metrics page that does not answer costs the trial its server metrics, not the run."""
    try:
        return target.scrape_metrics()
    except MetricsUnavailable as exc:
        warnings.append(f"{exc} ({when} the trial): no server metrics for it")
        return {}


@contextmanager
def observing(results: ResultsDir, target: Target, tid: str) -> Iterator[Observed]:
    """Scrapes the server's counters before and after, samples CPU/memory/GPU throughout; the load
    generator joins the sampling once `watch_load` gets its pid."""
    metrics_warnings: list[str] = []
    before = scraped(target, "before", metrics_warnings)
    sampler = ResourceSampler(TELEMETRY_INTERVAL_S, target.server.pid if target.server else None).start()
    observed = Observed(partial(sampler.watch, "load"), warnings=metrics_warnings)
    try:
        yield observed
    finally:
        observed.samples = sampler.stop()
    observed.server_metrics = trial_server_metrics(before, scraped(target, "after", observed.warnings))
    telemetry_path = results.path / "telemetry" / f"{tid}.csv"
    write_csv(observed.samples, telemetry_path)
    observed.telemetry_file = str(telemetry_path.relative_to(results.path))


def record_trial(results: ResultsDir, summary: Summary, cell: CellSummary, trial: TrialSummary, target: Target,
                 display: Display, label: str) -> tuple[CellSummary, str | None]:
    """Adds a finished trial to its cell and saves it; returns the cell and why it must end as failed, if so.

    The server is checked after every trial (process alive, readiness): a trial during which it died is
    kept as evidence and the cell fails with its log's last lines (ServerDied); a trial in which no request
    succeeded is no measurement either, and ends the cell as failed with the reason.
    """
    trial = server_checked(trial, target)
    cell = aggregate_cell(cell.model_copy(update={"repetitions": [*cell.repetitions, trial]}))
    save_cell(results, summary, cell)
    display.trial_done(label, trial)
    raise_if_server_died(trial, target)
    return cell, not_a_measurement(trial)


def server_checked(trial: TrialSummary, target: Target) -> TrialSummary:
    """The trial, marked if the server died or stopped answering by its end."""
    problem = target.server.problem() if target.server else None
    return trial.model_copy(update={"server_problem": problem}) if problem else trial


def raise_if_server_died(trial: TrialSummary, target: Target) -> None:
    if trial.server_problem:
        log_tail = target.server.log_tail() if target.server else ""
        raise ServerDied(f"{trial.server_problem} during trial {trial.trial_id}", log_tail)


def load_failure(tid: str, exc: ServingbenchError, target: Target) -> str:
    """Why a trial whose load generator failed has no figures; ServerDied instead if the server went with it."""
    problem = target.server.problem() if target.server else None
    if problem:
        raise ServerDied(f"{problem} during trial {tid}", target.server.log_tail() if target.server else "")
    return f"trial {tid} not measured, its requests not counted: {exc} (the server was still answering)"


def load_worker(report: LoadWorkerReport) -> LoadWorker:
    return LoadWorker(host=report.host, clock_offset_ms=report.clock_offset_ns / 1e6,
                      round_trip_ms=report.round_trip_ns / 1e6, records=report.records, cpu_percent=report.cpu_percent)


def end_cell(results: ResultsDir, summary: Summary, cell: CellSummary, failure: str | None) -> CellSummary:
    update = {"status": "failed", "reason": failure} if failure else {"status": "ok"}
    return save_cell(results, summary, cell.model_copy(update=update))


def repetitions_left(cell: CellSummary, load: LoadSettings) -> list[int]:
    """The repetitions the cell has no trial of yet (a resumed run keeps those it finished)."""
    done = {t.repetition for t in cell.repetitions}
    return [r for r in range(1, load.repetitions + 1) if r not in done]


def run_cell(results: ResultsDir, summary: Summary, cell: CellSummary, target: Target, load: LoadSettings,
             display: Display) -> CellSummary:
    """Runs every repetition; the summary is saved after each, so a crash loses at most one trial."""
    failure = None
    for repetition in repetitions_left(cell, load):
        tid = target.trial_id(f"u{cell.users}", repetition)
        records_path = results.requests_dir / f"{tid}.parquet"
        plan = ClosedLoopPlan(trial_id=tid, base_url=target.base_url, requests=target.requests, users=cell.users,
                              warmup_s=load.warmup_s, duration_s=load.duration_s,
                              request_timeout_s=load.request_timeout_s, until_stable=load.until_stable,
                              stability_window_s=load.stability_window_s,
                              stability_tolerance_pct=load.stability_tolerance_pct,
                              max_duration_s=load.max_duration_s, records_path=records_path, order=target.order,
                              load_workers=1 if load.until_stable else local_load_workers(load.workers, cell.users),
                              remote_workers=load.remote_workers, master_bind=load.master_bind,
                              worker_wait_s=load.worker_wait_s, client_step=target.client_step)
        label = f"{target.model} · {target.served} · {cell.users} users · rep {repetition}/{load.repetitions}"
        started_at = now_iso()
        try:
            with observing(results, target, tid) as observed, display.trial(label, plan.longest_s) as on_progress:
                window = run_closed_loop(plan, results.work_dir / "load", on_progress,
                                         on_started=observed.watch_load)
        except ServingbenchError as exc:  # the load generator was killed, crashed or hung
            results.raise_if_full(exc, f"trial {tid}'s records")
            failure = load_failure(tid, exc, target)
            break
        counts = summarize_records(read_records(records_path), window.measure_start_ns, window.measure_end_ns)
        stability = Stability(**window.stability.model_dump(), window_s=load.stability_window_s,
                              tolerance_pct=load.stability_tolerance_pct) if window.stability else None
        trial = TrialSummary(**counts.model_dump(), trial_id=tid, repetition=repetition,
                             records_file=str(records_path.relative_to(results.path)), started_at=started_at,
                             load_cpu_percent=window.load_cpu_percent, server_metrics=observed.server_metrics,
                             resources=observed.resources(window.measure_start_ns, window.measure_end_ns),
                             telemetry_file=observed.telemetry_file, stability=stability,
                             load_workers=[load_worker(w) for w in window.load_workers],
                             warnings=trial_warnings(counts, window.busiest_load_cpu_percent, stability)
                             + observed.warnings)
        cell, failure = record_trial(results, summary, cell, trial, target, display, label)
        if failure:
            break
    return end_cell(results, summary, cell, failure)


# Open-loop sends this late (p99) mean the load generator, not the server, set the pace
# (a thread's wake-up on a busy 2-core host alone takes a millisecond or two).
SEND_DELAY_WARN_MS = 5.0


def run_loadgen_trial(results: ResultsDir, target: Target, scenario: str, load: LoadSettings, repetition: int,
                      display: Display, target_qps: float | None = None, level: str | None = None) -> TrialSummary:
    """One LoadGen run, summarised from LoadGen's own summary file; its logs kept under loadgen/<trial id>/."""
    tid = target.trial_id(level or scenario, repetition)
    records_path = results.requests_dir / f"{tid}.parquet"
    log_dir = results.path / "loadgen" / tid
    plan = loadgen_plan(tid, target.base_url, target.requests, scenario, load, records_path, log_dir, target_qps)
    display.stage(f"  LoadGen {scenario}" + (f" at {plan.target_qps:g} queries/s" if scenario == "server" else "")
                  + f": at least {plan.shortest_s:.0f} s ({plan.min_query_count} queries minimum)")
    started_at = now_iso()
    with observing(results, target, tid) as observed:
        window = run_loadgen(plan, results.work_dir / "load", observed.watch_load)
    records = read_records(records_path)
    values = parse_summary(log_dir / "mlperf_log_summary.txt")
    counts, verdict = loadgen_counts(scenario, values, parse_detail(log_dir / "mlperf_log_detail.txt"), records,
                                     window.start_ns, window.end_ns, load.latency_percentile)
    delay = send_delay_ms(records)
    warnings = trial_warnings(counts, window.load_cpu_percent) + observed.warnings
    if not verdict.valid:
        warnings.append(f"LoadGen says {verdict.result}: see "
                        f"{log_dir.relative_to(results.path) / 'mlperf_log_summary.txt'}")
    # Offline hands LoadGen's whole batch over at once: waiting for a sender is the design there.
    if delay and scenario != "offline" and delay.p99 > max(SEND_DELAY_WARN_MS, 0.1 * counts.latency_ms.p50):
        warnings.append(f"requests left up to {delay.p99:.1f} ms late (p99 send delay): the load generator "
                        "could not keep to LoadGen's schedule; latencies include that wait")
    return TrialSummary(**counts.model_dump(), trial_id=tid, repetition=repetition,
                        records_file=str(records_path.relative_to(results.path)), started_at=started_at,
                        load_cpu_percent=window.load_cpu_percent, server_metrics=observed.server_metrics,
                        resources=observed.resources(window.start_ns, window.end_ns),
                        telemetry_file=observed.telemetry_file, loadgen=verdict,
                        loadgen_log_dir=str(log_dir.relative_to(results.path)),
                        target_qps=plan.target_qps if scenario == "server" else None, send_delay_ms=delay,
                        warnings=warnings)


def run_scenario_cell(results: ResultsDir, summary: Summary, cell: CellSummary, target: Target, load: LoadSettings,
                      display: Display) -> CellSummary:
    """Repetitions of one MLPerf LoadGen scenario (`cell.scenario`); statistics and verdict as LoadGen measured."""
    failure = None
    for repetition in repetitions_left(cell, load):
        label = f"{target.model} · {target.served} · {cell.level} · rep {repetition}/{load.repetitions}"
        display.stage(label)
        trial = run_loadgen_trial(results, target, cell.scenario, load, repetition, display,
                                  target_qps=cell.target_qps, level=cell.level_id)
        cell, failure = record_trial(results, summary, cell, trial, target, display, label)
        if failure:
            break
    return end_cell(results, summary, cell, failure)
