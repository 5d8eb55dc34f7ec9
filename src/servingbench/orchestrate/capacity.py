"""Capacity under a latency bound: the highest Server-scenario rate that LoadGen calls VALID.

An Offline run first measures the most the server can do at all (the ceiling); bisection over
Server-scenario rates then narrows [highest VALID, lowest INVALID] until it is within RESOLUTION of
itself. Every probe is a full LoadGen trial, kept in the cell with its logs.
"""
from __future__ import annotations

from typing import Callable

from servingbench.config import CAPACITY, LoadSettings
from servingbench.display import Display
from servingbench.orchestrate.trials import Target, raise_if_server_died, run_loadgen_trial, save_cell, server_checked
from servingbench.results.schema import Capacity, CapacityProbe, CellSummary, Summary, TrialSummary
from servingbench.results.store import ResultsDir

RESOLUTION = 0.05  # stop when the bracket [valid, invalid] is this narrow, relative to its top
MAX_PROBES = 10
# Above the ceiling a rate cannot be sustained; probing a little over it shows that (or finds it valid).
HEADROOM = 1.1


def bisect_rate(is_valid: Callable[[float], bool], ceiling: float, resolution: float = RESOLUTION,
                max_probes: int = MAX_PROBES) -> tuple[float | None, float | None]:
    """(highest valid rate, lowest invalid rate) found in at most `max_probes` calls of `is_valid`.

    Starts just above the ceiling; while even that is valid, doubles it (the ceiling was pessimistic).
    """
    low, high, rate = None, None, ceiling * HEADROOM
    for _ in range(max_probes):
        if is_valid(rate):
            low = rate
        else:
            high = rate
        if high is None:
            rate *= 2
        elif low is None:
            rate = high / 2 if high > ceiling * resolution else None
        elif (high - low) / high > resolution:
            rate = (low + high) / 2
        else:
            rate = None
        if rate is None:
            break
    return low, high


def run_capacity_cell(results: ResultsDir, summary: Summary, cell: CellSummary, target: Target, load: LoadSettings,
                      display: Display) -> CellSummary:
    """One search per cell (its probes are the repetitions); `cell.capacity` holds the answer."""
    label = f"{target.model} · {target.served} · capacity at p{load.latency_percentile:g} ≤ {load.latency_bound_ms:g} ms"
    capacity = Capacity(latency_bound_ms=load.latency_bound_ms, percentile=load.latency_percentile, max_qps=None,
                        upper_qps=None)

    def record(trial: TrialSummary) -> None:
        nonlocal cell
        trial = server_checked(trial, target)
        cell = cell.model_copy(update={"repetitions": [*cell.repetitions, trial], "capacity": capacity,
                                       "requests": cell.requests + trial.requests,
                                       "failed": cell.failed + trial.failed})
        save_cell(results, summary, cell)
        display.trial_done(label, trial)
        raise_if_server_died(trial, target)

    display.stage(f"{label}: an Offline run for the ceiling (only its rate matters, not its verdict)")
    offline = run_loadgen_trial(results, target, "offline", load, 1, display, level="capacity-offline")
    record(offline)

    def is_valid(rate: float) -> bool:
        trial = run_loadgen_trial(results, target, "server", load, len(capacity.probes) + 1, display,
                                  target_qps=rate, level=CAPACITY)
        if trial.loadgen is None:
            raise ValueError(f"LoadGen trial {trial.trial_id} has no verdict")
        valid = trial.loadgen.valid
        capacity.probes.append(CapacityProbe(target_qps=rate, valid=valid, trial_id=trial.trial_id,
                                             latency_ms=trial.loadgen.bounded_latency_ms,
                                             throughput_rps=trial.throughput_rps))
        record(trial)
        return valid

    capacity.max_qps, capacity.upper_qps = bisect_rate(is_valid, max(offline.throughput_rps, 1e-3))
    display.stage(f"{label}: " + (f"{capacity.max_qps:.1f} queries/s" if capacity.max_qps else "no rate was VALID"))
    return save_cell(results, summary, cell.model_copy(update={"status": "ok", "capacity": capacity,
                                                           "target_qps": capacity.max_qps}))
