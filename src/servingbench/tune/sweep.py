"""One candidate measured the way Triton's Model Analyzer measures a configuration: closed-loop users raised
level by level until the latency percentile crosses the bound (or throughput stops growing); its value is the
throughput at the best level that held."""
from __future__ import annotations

from servingbench.config import LoadSettings
from servingbench.display import Display
from servingbench.orchestrate.trials import Target, run_cell
from servingbench.results.schema import CellSummary, Correctness, LatencyMs, Summary
from servingbench.results.store import ResultsDir
from servingbench.results.tune_schema import SweepStep

MIN_GAIN = 1.05  # a level that adds less than 5% throughput over the best so far: saturated, stop


def percentile_ms(latency: LatencyMs | None, percentile: float) -> float | None:
    """One of the percentiles every trial records (analysis.stats.PERCENTILES)."""
    return None if latency is None else getattr(latency, f"p{percentile:g}")


def sweep(results: ResultsDir, summary: Summary, target: Target, load: LoadSettings, users: list[int],
          correct: Correctness | None, client_preprocess_ms: float, display: Display) -> list[SweepStep]:
    """One trial per level (an ordinary cell each); stops at the first level over the bound, with failures, or
    adding less than MIN_GAIN throughput."""
    steps: list[SweepStep] = []
    one_trial = load.model_copy(update={"repetitions": 1})
    for level in users:
        cell = CellSummary(framework=target.framework, model=target.model, users=level, status="running",
                           correct=correct, client_preprocess_ms=client_preprocess_ms)
        cell = run_cell(results, summary, cell, target, one_trial, display)
        trial = cell.repetitions[-1]
        latency = percentile_ms(trial.latency_ms, load.latency_percentile)
        held = trial.measured and trial.failed == 0 and latency is not None and latency <= load.latency_bound_ms
        best = max((s.throughput_rps for s in steps if s.held), default=0.0)
        steps.append(SweepStep(users=level, throughput_rps=trial.throughput_rps, latency_ms=latency,
                               failed=trial.failed, held=held))
        if not held or cell.status != "ok" or trial.throughput_rps < best * MIN_GAIN:
            break
    return steps


def best_step(steps: list[SweepStep]) -> SweepStep | None:
    """The held level with the most throughput; a level adding less than MIN_GAIN loses to the one below it
    (as much served, with less waiting)."""
    best = None
    for step in (s for s in steps if s.held):
        if best is None or step.throughput_rps >= best.throughput_rps * MIN_GAIN:
            best = step
    return best
