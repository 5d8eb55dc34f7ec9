"""Run one MLPerf LoadGen trial in its own process (see loadgen_worker.py) and read back its answers."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from servingbench.adapters.base import PreparedRequest
from servingbench.config import LOADGEN_SCENARIOS, LoadSettings
from servingbench.errors import ServingbenchError
from servingbench.load.closed_loop import encode_requests, run_worker

ACCURACY_LOG = "mlperf_log_accuracy.json"
DEFAULT_MIN_QUERIES = 100
SENDERS = 64  # concurrent connections available to LoadGen's queries


def early_stopping_queries(percentile: float, confidence: float = 0.99) -> int:
    """The fewest queries with which LoadGen's early stopping can certify `percentile` (none over the bound)."""
    return math.ceil(math.log(1 - confidence) / math.log(percentile / 100))


@dataclass(frozen=True)
class LoadGenPlan:
    trial_id: str
    base_url: str
    requests: list[PreparedRequest]
    scenario: str
    duration_s: float
    request_timeout_s: float
    target_qps: float = 10.0           # Server: the Poisson arrival rate; Offline: the expected rate
    latency_bound_ms: float = 100.0    # Server: the bound a VALID run keeps `latency_percentile` under
    latency_percentile: float = 99.0
    min_query_count: int = DEFAULT_MIN_QUERIES
    accuracy: bool = False             # LoadGen's AccuracyOnly mode: every sample once, answers logged

    @property
    def shortest_s(self) -> float:
        """The least time the run takes: its min duration, or in Server runs its min queries at the target rate."""
        if self.scenario == "server":
            return max(self.duration_s, self.min_query_count / self.target_qps)
        return self.duration_s

    @classmethod
    def from_settings(cls, trial_id: str, base_url: str, requests: list[PreparedRequest], scenario: str,
                      load: LoadSettings, target_qps: float | None = None, accuracy: bool = False) -> "LoadGenPlan":
        min_queries = load.min_query_count or (
            # twice the bare minimum, so a few queries over the bound do not leave a good rate unproven
            2 * early_stopping_queries(load.latency_percentile) if scenario == "server" else DEFAULT_MIN_QUERIES)
        return cls(trial_id, base_url, requests, scenario, load.duration_s, load.request_timeout_s,
                   target_qps or load.target_qps, load.latency_bound_ms, load.latency_percentile, min_queries,
                   accuracy)


def run_loadgen(plan: LoadGenPlan, records_path: Path, log_dir: Path, work_dir: Path,
                on_started: Callable[[int], None] | None = None) -> dict:
    """Returns the window LoadGen ran in ({start_ns, end_ns}); its logs are left in `log_dir`."""
    if plan.scenario not in LOADGEN_SCENARIOS:
        raise ServingbenchError(f"unknown LoadGen scenario '{plan.scenario}'; known: {', '.join(LOADGEN_SCENARIOS)}")
    worker_plan = {key: value for key, value in plan.__dict__.items() if key != "requests"}
    # LoadGen may run past min_duration to reach min_query_count (slow servers): generous slack.
    return run_worker("servingbench.load.loadgen_worker", plan.trial_id, {
        **worker_plan, "senders": SENDERS, "records_path": str(records_path), "log_dir": str(log_dir),
        "requests": encode_requests(plan.requests),
    }, work_dir, plan.shortest_s * 3 + plan.request_timeout_s + 120, on_started=on_started)


def read_accuracy_log(log_dir: Path) -> dict[int, bytes]:
    """The answer LoadGen logged for each sample index in an AccuracyOnly run."""
    path = log_dir / ACCURACY_LOG
    if not path.is_file():
        raise ServingbenchError(f"LoadGen wrote no accuracy log: {path}")
    return {entry["qsl_idx"]: bytes.fromhex(entry["data"]) for entry in json.loads(path.read_text() or "[]")}
