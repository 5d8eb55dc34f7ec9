"""Run one MLPerf LoadGen scenario trial in its own process (see loadgen_worker.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from servingbench.adapters.base import PreparedRequest
from servingbench.errors import ServingbenchError
from servingbench.load.closed_loop import encode_requests, run_worker

SCENARIOS = ("single_stream", "multi_stream", "server", "offline")


@dataclass(frozen=True)
class LoadGenPlan:
    trial_id: str
    base_url: str
    requests: list[PreparedRequest]
    scenario: str
    duration_s: float
    request_timeout_s: float
    target_qps: float = 10.0          # Server: the Poisson arrival rate; Offline: the expected rate
    latency_bound_ms: float = 100.0   # Server: the p99 bound a VALID run must stay under
    expected_latency_ms: float = 10.0
    min_query_count: int = 100
    senders: int = 64                 # concurrent connections available to LoadGen's queries


def run_loadgen(plan: LoadGenPlan, records_path: Path, log_dir: Path, work_dir: Path,
                on_started: Callable[[int], None] | None = None) -> dict:
    if plan.base_url.startswith("grpc://"):
        raise ServingbenchError("the LoadGen scenarios speak HTTP; use protocol: http for them")
    if plan.scenario not in SCENARIOS:
        raise ServingbenchError(f"unknown scenario '{plan.scenario}'; known: closed, {', '.join(SCENARIOS)}")
    return run_worker("servingbench.load.loadgen_worker", plan.trial_id, {
        "trial_id": plan.trial_id, "base_url": plan.base_url, "scenario": plan.scenario,
        "duration_s": plan.duration_s, "request_timeout_s": plan.request_timeout_s, "target_qps": plan.target_qps,
        "latency_bound_ms": plan.latency_bound_ms, "expected_latency_ms": plan.expected_latency_ms,
        "min_query_count": plan.min_query_count, "senders": plan.senders, "records_path": str(records_path),
        "log_dir": str(log_dir), "requests": encode_requests(plan.requests),
        # LoadGen may run past min_duration to reach min_query_count or early-stopping: generous slack.
    }, work_dir, plan.duration_s * 3 + plan.request_timeout_s + 120, on_started=on_started)
