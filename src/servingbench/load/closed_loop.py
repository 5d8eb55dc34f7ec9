"""Run one trial in a load-generator process (Locust closed loop, LoadGen scenarios) and hand back its window."""
from __future__ import annotations

import base64
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from servingbench.adapters.base import PreparedRequest
from servingbench.errors import ServingbenchError
from servingbench.launch.process import ManagedProcess


@dataclass(frozen=True)
class ClosedLoopPlan:
    trial_id: str
    base_url: str
    requests: list[PreparedRequest]
    users: int
    warmup_s: float
    duration_s: float
    request_timeout_s: float
    until_stable: bool = False  # measure in windows until they agree, instead of for duration_s
    stability_window_s: float = 5.0
    stability_tolerance_pct: float = 10.0
    max_duration_s: float = 300.0

    @property
    def longest_s(self) -> float:
        return self.warmup_s + (self.max_duration_s if self.until_stable else self.duration_s)


@dataclass(frozen=True)
class TrialWindow:
    """When the measurement window opened and closed (perf_counter_ns) and what the generator used."""

    measure_start_ns: int
    measure_end_ns: int
    load_cpu_percent: float
    stability: dict | None = None  # until_stable: {"windows": n, "stable": bool}


Progress = Callable[[dict], None]


def run_closed_loop(plan: ClosedLoopPlan, records_path: Path, work_dir: Path,
                    on_progress: Progress | None = None, on_started: Callable[[int], None] | None = None) -> TrialWindow:
    """Runs the trial; `on_started` gets the load generator's pid (for resource telemetry)."""
    result = run_worker("servingbench.load.locust_worker", plan.trial_id, {
        "trial_id": plan.trial_id,
        "base_url": plan.base_url,
        "users": plan.users,
        "warmup_s": plan.warmup_s,
        "duration_s": plan.duration_s,
        "request_timeout_s": plan.request_timeout_s,
        "until_stable": plan.until_stable,
        "stability_window_s": plan.stability_window_s,
        "stability_tolerance_pct": plan.stability_tolerance_pct,
        "max_duration_s": plan.max_duration_s,
        "records_path": str(records_path),
        "requests": encode_requests(plan.requests),
        # Spawning, warm-up, window, draining in-flight requests, plus slack for imports and writing.
    }, work_dir, plan.longest_s + plan.request_timeout_s + 90, on_progress, on_started)
    return TrialWindow(result["measure_start_ns"], result["measure_end_ns"], result["load_cpu_percent"],
                       result["stability"])


def encode_requests(requests: list[PreparedRequest]) -> list[dict]:
    return [{"method": r.method, "path": r.path, "headers": r.headers, "body": base64.b64encode(r.body).decode()}
            for r in requests]


def run_worker(module: str, trial_id: str, plan: dict, work_dir: Path, limit_s: float,
               on_progress: Progress | None = None, on_started: Callable[[int], None] | None = None) -> dict:
    """Run a load-generator module in its own process on a JSON plan; returns the JSON result it writes."""
    work_dir.mkdir(parents=True, exist_ok=True)
    plan_path = work_dir / f"{trial_id}.plan.json"
    result_path = work_dir / f"{trial_id}.result.json"
    result_path.unlink(missing_ok=True)
    plan_path.write_text(json.dumps({**plan, "result_path": str(result_path)}))
    log_path = work_dir / f"{trial_id}.log"
    worker = ManagedProcess([sys.executable, "-m", module, str(plan_path)], log_path, name="load generator")
    with worker:
        if on_started:
            on_started(worker.pid)
        start = time.monotonic()
        while worker.exited() is None:
            if time.monotonic() - start > limit_s:
                raise ServingbenchError(f"load generator for {trial_id} did not finish in {limit_s:.0f} s")
            if on_progress:
                on_progress(_last_progress(log_path))
            time.sleep(0.25)
    if worker.exited() != 0 or not result_path.exists():
        last_line = (worker.log_tail(5).strip().splitlines() or ["no output"])[-1]
        raise ServingbenchError(f"load generator failed (exit {worker.exited()}): {last_line}; log: {log_path}")
    return json.loads(result_path.read_text())


def _last_progress(log_path: Path) -> dict:
    try:
        with open(log_path, "rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 4096))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        if line.startswith("PROGRESS "):
            try:
                return json.loads(line[len("PROGRESS "):])
            except json.JSONDecodeError:
                return {}
    return {}
