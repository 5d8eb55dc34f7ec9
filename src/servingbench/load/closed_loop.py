"""Run one trial in a load-generator process (Locust closed loop, LoadGen scenarios) and hand back its result."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from servingbench.errors import ServingbenchError
from servingbench.launch.process import ManagedProcess, exit_words
from servingbench.load.contracts import ClosedLoopPlan, ClosedLoopResult, WorkerPlan

Progress = Callable[[dict], None]
Result = TypeVar("Result", bound=BaseModel)
# Spawning, draining in-flight requests, imports and writing: slack on top of a trial's own length.
WORKER_SLACK_S = 90


def local_load_workers(setting: int | str, users: int) -> int:
    """Load processes on this host for a closed loop of `users`: `auto` is one per core this process may use but
    one (left to the server and the master), at most one per user; 1 is the single plain process."""
    count = max(1, len(os.sched_getaffinity(0)) - 1) if setting == "auto" else int(setting)
    return min(count, users)


def run_closed_loop(plan: ClosedLoopPlan, work_dir: Path, on_progress: Progress | None = None,
                    on_started: Callable[[int], None] | None = None) -> ClosedLoopResult:
    """Runs the trial; `on_started` gets the load generator's pid (for resource telemetry)."""
    return run_worker("servingbench.load.locust_worker", plan, ClosedLoopResult, work_dir,
                      plan.longest_s + plan.request_timeout_s + WORKER_SLACK_S, on_progress, on_started)


def run_load_worker(master: str, trials: int | None) -> NoReturn:
    """Becomes a load worker of the master at HOST:PORT. The process is replaced by a fresh interpreter: Locust
    patches the standard library with gevent, which must happen before anything else is imported."""
    host, _, port = master.rpartition(":")
    if not host or not port.isdigit():
        raise ServingbenchError(f"--master must be HOST:PORT, e.g. 10.0.0.5:5557, got '{master}'")
    argv = [sys.executable, "-m", "servingbench.load.locust_remote", master]
    os.execv(sys.executable, argv + (["--trials", str(trials)] if trials else []))


def run_worker(module: str, plan: WorkerPlan, result_type: type[Result], work_dir: Path, limit_s: float,
               on_progress: Progress | None = None, on_started: Callable[[int], None] | None = None) -> Result:
    """Run a load-generator module in its own process on a JSON plan; returns the JSON result it writes."""
    work_dir.mkdir(parents=True, exist_ok=True)
    plan_path = work_dir / f"{plan.trial_id}.plan.json"
    result_path = work_dir / f"{plan.trial_id}.result.json"
    result_path.unlink(missing_ok=True)
    plan_path.write_text(plan.model_copy(update={"result_path": result_path}).model_dump_json())
    log_path = work_dir / f"{plan.trial_id}.log"
    worker = ManagedProcess([sys.executable, "-m", module, str(plan_path)], log_path, name="load generator")
    try:
        with worker:
            if on_started and worker.pid is not None:
                on_started(worker.pid)
            start = time.monotonic()
            while worker.exited() is None:
                if time.monotonic() - start > limit_s:
                    raise ServingbenchError(f"load generator for {plan.trial_id} did not finish in {limit_s:.0f} s")
                if on_progress:
                    on_progress(_last_progress(log_path))
                time.sleep(0.25)
    finally:  # the plan holds the requests as sent, headers (tokens) included: never left in the results
        plan_path.unlink(missing_ok=True)
    if worker.exited() != 0 or not result_path.exists():
        last_line = (worker.log_tail(5).strip().splitlines() or ["no output"])[-1]
        raise ServingbenchError(f"load generator failed ({exit_words(worker.exited())}): {last_line}; log: {log_path}")
    try:
        return result_type.model_validate_json(result_path.read_text())
    except ValidationError as exc:
        raise ServingbenchError(f"load generator wrote an unreadable result {result_path}: {exc}") from None


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
