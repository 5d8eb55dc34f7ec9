"""Run one MLPerf LoadGen trial in its own process (see loadgen_worker.py) and read back its answers."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from servingbench.config import LoadSettings
from servingbench.errors import ServingbenchError
from servingbench.load.closed_loop import WORKER_SLACK_S, run_worker
from servingbench.load.contracts import LoadGenPlan, LoadGenResult, PreparedRequest

ACCURACY_LOG = "mlperf_log_accuracy.json"
DEFAULT_MIN_QUERIES = 100


def early_stopping_queries(percentile: float, confidence: float = 0.99) -> int:
    """The fewest queries with which LoadGen's early stopping can certify `percentile` (none over the bound)."""
    return math.ceil(math.log(1 - confidence) / math.log(percentile / 100))


def loadgen_plan(trial_id: str, base_url: str, requests: list[PreparedRequest], scenario: str, load: LoadSettings,
                 records_path: Path, log_dir: Path, target_qps: float | None = None,
                 accuracy: bool = False) -> LoadGenPlan:
    min_queries = load.min_query_count or (
        # twice the bare minimum, so a few queries over the bound do not leave a good rate unproven
        2 * early_stopping_queries(load.latency_percentile) if scenario == "server" else DEFAULT_MIN_QUERIES)
    return LoadGenPlan(trial_id=trial_id, base_url=base_url, requests=requests, scenario=scenario,
                       duration_s=load.duration_s, request_timeout_s=load.request_timeout_s,
                       # without a rate of its own (Offline): the study's first
                       target_qps=target_qps or load.target_qps[0], latency_bound_ms=load.latency_bound_ms,
                       latency_percentile=load.latency_percentile, min_query_count=min_queries, accuracy=accuracy,
                       records_path=records_path, log_dir=log_dir)


def run_loadgen(plan: LoadGenPlan, work_dir: Path, on_started: Callable[[int], None] | None = None) -> LoadGenResult:
    """Returns the span LoadGen ran in; its logs are left in `plan.log_dir`."""
    # LoadGen may run past min_duration to reach min_query_count (slow servers): generous slack.
    return run_worker("servingbench.load.loadgen_worker", plan, LoadGenResult, work_dir,
                      plan.shortest_s * 3 + plan.request_timeout_s + WORKER_SLACK_S, on_started=on_started)


def read_accuracy_log(log_dir: Path) -> dict[int, bytes]:
    """The answer LoadGen logged for each sample index in an AccuracyOnly run."""
    path = log_dir / ACCURACY_LOG
    if not path.is_file():
        raise ServingbenchError(f"LoadGen wrote no accuracy log: {path}")
    return {entry["qsl_idx"]: bytes.fromhex(entry["data"]) for entry in json.loads(path.read_text() or "[]")}
