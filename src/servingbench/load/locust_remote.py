"""A load worker of Locust's distributed mode: `servingbench worker --master HOST:PORT`.

It connects to the master of a trial (locust_master.py), answers its clock checks, takes the trial
it is handed, runs the users Locust spawns on it, stops them at the end of the window the master
sets (given in this worker's clock), and sends back its own records. A study runs one master per
trial, so a worker serves trial after trial: once a master quits it connects again and waits for
the next. Run as `python -m servingbench.load.locust_remote HOST:PORT [--trials N]`.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import gevent
from locust.env import Environment

from servingbench.load.contracts import TrialAssignment, WorkerRecords, WorkerWindow
from servingbench.load.locust_worker import Trial, drain, flush, make_user_class, prepare_protocol, report_forever
from servingbench.load.records import RecordWriter
from servingbench.load.worker_io import cpu_percent

# A master sends a heartbeat every second: this long without one means it is gone (Locust itself waits 60 s).
MASTER_SILENT_S = 5.0


class WorkerTrial:
    """One trial on this worker: its users' records go to a local file until the master asks for them."""

    def __init__(self, runner, assignment: TrialAssignment, folder: Path):
        self.runner = runner
        plan = assignment.plan.model_copy(update={"records_path": folder / "records.parquet"})
        prepare_protocol(plan)
        self.trial = Trial(plan, assignment.first_user_id)
        self.writer = RecordWriter(plan.records_path, plan.trial_id)
        self.flusher = gevent.spawn(report_forever, self.trial, self.writer)

    def measure(self, window: WorkerWindow) -> None:
        """Runs in its own greenlet: the window, the drain, then the records to the master."""
        trial = self.trial
        trial.measure_start_ns = window.start_ns
        trial.stop_sending_ns = window.end_ns
        cpu_at_start = os.times()
        gevent.sleep(max(0.0, (window.end_ns - time.perf_counter_ns()) / 1e9))
        cpu_at_end = os.times()
        drain(trial)
        self.flusher.kill()
        flush(trial, self.writer)
        self.writer.close()
        path = trial.plan.records_path
        records = WorkerRecords(host=socket.gethostname(), parquet=path.read_bytes(), records=self.writer.rows_written,
                                cpu_percent=cpu_percent(cpu_at_start, cpu_at_end, window.start_ns, window.end_ns))
        self.runner.send_message("sb_records", {"json": records.model_dump_json()})
        print(f"trial {trial.plan.trial_id}: {records.records} requests recorded and sent to the master", flush=True)


def serve_one_trial(host: str, port: int, folder: Path) -> bool:
    """Connects, serves one master until it quits or goes silent; True if a trial ran."""
    current: dict[str, WorkerTrial] = {}

    def trial_now() -> Trial:
        return current["trial"].trial

    env = Environment(user_classes=[make_user_class(trial_now)])
    runner = env.create_worker_runner(host, port)

    def on_clock(environment, msg) -> None:
        runner.send_message("sb_clock_reply", {"ns": time.perf_counter_ns()})

    def on_trial(environment, msg) -> None:
        current["trial"] = WorkerTrial(runner, TrialAssignment.model_validate_json(msg.data["json"]), folder)
        runner.send_message("sb_trial_ready")

    def on_window(environment, msg) -> None:
        gevent.spawn(current["trial"].measure, WorkerWindow.model_validate_json(msg.data["json"]))

    def on_report(client_id: str, data: dict) -> None:
        if "trial" in current:
            data["sb_recorded"] = len(current["trial"].trial.timings)

    runner.register_message("sb_clock", on_clock)
    runner.register_message("sb_trial", on_trial)
    runner.register_message("sb_window", on_window)
    env.events.report_to_master.add_listener(on_report)
    while len(runner.greenlet):  # Locust's greenlets end when the master says quit
        heard = runner.last_heartbeat_timestamp
        if heard and time.time() - heard > MASTER_SILENT_S:
            runner.quit()
            break
        gevent.sleep(0.5)
    return "trial" in current


def serve(master: str, trials: int | None = None) -> None:
    """Serves trials from the master at HOST:PORT, `trials` of them or until interrupted."""
    host, _, port = master.rpartition(":")
    served = 0
    while trials is None or served < trials:
        print(f"load worker {socket.gethostname()}: waiting for the master at {master} "
              f"({served} trials served so far)", flush=True)
        with tempfile.TemporaryDirectory(prefix="servingbench-worker-") as folder:
            try:
                served += serve_one_trial(host, int(port), Path(folder))
            except ConnectionError:  # Locust gave up after its retries: keep waiting for the next master
                continue
        gevent.sleep(1.0)  # let the old master's port close before connecting again


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="servingbench.load.locust_remote")
    parser.add_argument("master")
    parser.add_argument("--trials", type=int, default=None)
    args = parser.parse_args(argv[1:])
    serve(args.master, args.trials)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
