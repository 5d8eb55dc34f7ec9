"""Results folders built in code, shaped as a study saves them, for tests of what reads them (SLO gates, compare)."""
from __future__ import annotations

from pathlib import Path

from servingbench.analysis.stats import aggregate_cell
from servingbench.results.schema import (
    Capacity,
    CapacityProbe,
    CellSummary,
    LatencyMs,
    LoadGenVerdict,
    Summary,
    TrialSummary,
)
from servingbench.results.store import ResultsDir

TRIAL_S = 10.0


def latency(mean: float) -> LatencyMs:
    """A right-skewed distribution around `mean`, as served requests have."""
    return LatencyMs(mean=mean, min=0.7 * mean, p50=0.95 * mean, p90=1.25 * mean, p95=1.4 * mean, p99=1.8 * mean,
                     max=2.5 * mean)


def verdict(valid: bool, rate: float) -> LoadGenVerdict:
    return LoadGenVerdict(valid=valid, result="VALID" if valid else "INVALID", scheduled_per_s=rate,
                          early_stopping_satisfied=valid, performance_constraints_satisfied=valid,
                          queries=int(rate * TRIAL_S), bounded_latency_ms=None)


def trial(cell_id: str, repetition: int, rps: float, latency_mean_ms: float, failed: int = 0,
          loadgen: LoadGenVerdict | None = None) -> TrialSummary:
    ok = round(rps * TRIAL_S)
    return TrialSummary(
        requests=ok + failed, ok=ok, failed=failed, duration_s=TRIAL_S, throughput_rps=rps,
        failures_per_s=failed / TRIAL_S, latency_ms=latency(latency_mean_ms), trial_id=f"{cell_id}--r{repetition}",
        repetition=repetition, records_file=f"requests/{cell_id}--r{repetition}.parquet",
        started_at="2026-01-01T00:00:00+00:00", load_cpu_percent=25.0, loadgen=loadgen)


def closed_cell(framework: str, model: str, users: int, runs: list[tuple[float, float]],
                failed: int = 0) -> CellSummary:
    """Closed-loop users; one repetition per (throughput req/s, mean latency ms), each with `failed` failures."""
    cell_id = f"{framework}--{model}--u{users}"
    trials = [trial(cell_id, rep, rps, ms, failed) for rep, (rps, ms) in enumerate(runs, start=1)]
    return aggregate_cell(CellSummary(framework=framework, model=model, users=users, status="ok", repetitions=trials))


def server_cell(framework: str, model: str, target_qps: float, valid: list[bool]) -> CellSummary:
    """The LoadGen Server scenario at `target_qps`, one repetition per verdict."""
    cell_id = f"{framework}--{model}--server{target_qps:g}"
    trials = [trial(cell_id, rep, target_qps, 30.0 if ok else 90.0, loadgen=verdict(ok, target_qps))
              for rep, ok in enumerate(valid, start=1)]
    return aggregate_cell(CellSummary(framework=framework, model=model, scenario="server", users=0,
                                      target_qps=target_qps, status="ok", repetitions=trials))


def capacity_cell(framework: str, model: str, probes: dict[float, bool]) -> CellSummary:
    """A capacity search that tried these rates (VALID or not); its answer is the highest VALID one."""
    cell_id = f"{framework}--{model}--capacity"
    trials = [trial(cell_id, rep, rate, 30.0 if ok else 150.0, loadgen=verdict(ok, rate))
              for rep, (rate, ok) in enumerate(probes.items(), start=1)]
    valid_rates = [rate for rate, ok in probes.items() if ok]
    invalid_rates = [rate for rate, ok in probes.items() if not ok]
    capacity = Capacity(
        latency_bound_ms=100.0, percentile=99.0, max_qps=max(valid_rates, default=None),
        upper_qps=min(invalid_rates, default=None),
        probes=[CapacityProbe(target_qps=t.throughput_rps, valid=t.loadgen.valid, latency_ms=t.latency_ms.p99,
                              throughput_rps=t.throughput_rps, trial_id=t.trial_id) for t in trials])
    # As the search leaves it: no estimates across probes at different rates.
    return CellSummary(framework=framework, model=model, scenario="capacity", users=0, status="ok",
                       repetitions=trials, requests=sum(t.requests for t in trials), capacity=capacity,
                       target_qps=capacity.max_qps)


def failed_cell(framework: str, model: str, users: int) -> CellSummary:
    return CellSummary(framework=framework, model=model, users=users, status="failed",
                       reason="server exited with code 1")


def save(path: Path, *cells: CellSummary) -> Path:
    results = ResultsDir.create(path)
    results.save_summary(Summary(servingbench_version="test", study="test", started_at="2026-01-01T00:00:00+00:00",
                                 updated_at="", complete=True, cells=list(cells)))
    return path
