"""The master of a distributed closed-loop trial, on Locust's own master/worker protocol.

Locust's master spawns the users on its workers (local processes it starts itself, and
`servingbench worker` processes on other hosts); servingbench's messages on the same connection
measure each worker's clock, hand it the trial, tell it the measurement window in its own clock and
collect its records. The window is the master's: every worker stops sending at its end, and the
merged records carry the master's clock, so throughput counts only requests inside it on every worker.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from gevent.event import Event
from locust.env import Environment

from servingbench.launch.ports import free_port
from servingbench.launch.process import ManagedProcess
from servingbench.load.contracts import (
    ClosedLoopPlan,
    ClosedLoopResult,
    LoadWorkerReport,
    TrialAssignment,
    WorkerRecords,
    WorkerWindow,
)
from servingbench.load.locust_worker import Trial, make_user_class, progress
from servingbench.load.records import RECORD_SCHEMA, read_records
from servingbench.load.worker_io import cpu_percent

DEFAULT_MASTER_PORT = 5557  # Locust's own default, where remote workers look for the master
CLOCK_PINGS = 8
REPLY_TIMEOUT_S = 10.0
# The time columns a worker stamps with its own clock; the merge moves them onto the master's.
TIME_COLUMNS = ("scheduled_ns", "prepared_ns", "sent_ns", "written_ns", "first_byte_ns", "end_ns", "read_ns")


def master_address(plan: ClosedLoopPlan) -> tuple[str, int]:
    """Where the master listens: the plan's HOST:PORT; by default loopback on a free port when every
    worker is local, all interfaces on Locust's port when remote ones are expected."""
    if plan.master_bind:
        host, _, port = plan.master_bind.rpartition(":")
        return host or "0.0.0.0", int(port) if port and port != "0" else free_port()
    if plan.remote_workers:
        return "0.0.0.0", DEFAULT_MASTER_PORT
    return "127.0.0.1", free_port()


@dataclass
class WorkerState:
    """What the master learns about one connected worker."""

    client_id: str
    clock_offset_ns: int = 0
    round_trip_ns: int = 0
    ready: Event = field(default_factory=Event)
    records: WorkerRecords | None = None
    done: Event = field(default_factory=Event)
    clock_reply: Event = field(default_factory=Event)
    clock_reading: int = 0


class Master:
    def __init__(self, plan: ClosedLoopPlan):
        self.plan = plan
        self.trial = Trial(plan)
        self.workers: dict[str, WorkerState] = {}
        self.recorded = 0  # requests the workers say they recorded, from their periodic reports
        self.env = Environment(user_classes=[make_user_class(lambda: self.trial)])
        self.host, self.port = master_address(plan)
        self.runner = self.env.create_master_runner(self.host, self.port)
        self.runner.register_message("sb_clock_reply", self._on_clock_reply)
        self.runner.register_message("sb_trial_ready", self._on_ready)
        self.runner.register_message("sb_records", self._on_records)
        self.env.events.worker_report.add_listener(self._on_report)
        self.local: list[ManagedProcess] = []
        self._done_by_worker: dict[str, int] = {}

    def _state(self, msg) -> WorkerState:
        return self.workers.setdefault(msg.node_id, WorkerState(msg.node_id))

    def _on_clock_reply(self, environment, msg) -> None:
        state = self._state(msg)
        state.clock_reading = msg.data["ns"]
        state.clock_reply.set()

    def _on_ready(self, environment, msg) -> None:
        self._state(msg).ready.set()

    def _on_records(self, environment, msg) -> None:
        state = self._state(msg)
        state.records = WorkerRecords.model_validate_json(msg.data["json"])
        state.done.set()

    def _on_report(self, client_id: str, data: dict) -> None:
        if "sb_recorded" in data:
            self._done_by_worker[client_id] = data["sb_recorded"]
            self.recorded = sum(self._done_by_worker.values())

    def start_local_workers(self, log_dir: Path) -> None:
        """The plan's local workers, as child processes (so resource telemetry of this process covers them)."""
        connect = "127.0.0.1" if self.host in ("0.0.0.0", "*") else self.host
        for index in range(self.plan.load_workers):
            argv = [sys.executable, "-m", "servingbench.load.locust_remote", f"{connect}:{self.port}", "--trials", "1"]
            worker = ManagedProcess(argv, log_dir / f"worker-{index + 1}.log", name=f"load worker {index + 1}")
            worker.start()
            self.local.append(worker)

    def wait_for_workers(self) -> list[str]:
        expected = self.plan.load_workers + self.plan.remote_workers
        deadline = time.monotonic() + self.plan.worker_wait_s
        last_said = time.monotonic()  # local workers connect within a second or two: say nothing for them
        while self.runner.worker_count < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.runner.worker_count} of {expected} load workers connected to "
                                   f"{self.host}:{self.port} within {self.plan.worker_wait_s:g} s; start them with "
                                   f"`servingbench worker --master HOST:{self.port}`")
            exited = [w for w in self.local if w.exited() is not None]
            if exited:
                raise RuntimeError(f"{exited[0].name} exited before connecting: {exited[0].log_tail(3)}")
            if time.monotonic() - last_said > 5:
                progress({"phase": "waiting for load workers", "connected": self.runner.worker_count,
                          "expected": expected, "master": f"{self.host}:{self.port}"})
                last_said = time.monotonic()
            gevent.sleep(0.05)
        return [c.id for c in self.runner.clients.all]

    def measure_clock(self, client_id: str) -> None:
        """offset = worker clock - master clock, from the ping with the shortest round trip (NTP's rule)."""
        state = self.workers.setdefault(client_id, WorkerState(client_id))
        best: tuple[int, int] | None = None
        for _ in range(CLOCK_PINGS):
            state.clock_reply.clear()
            sent = time.perf_counter_ns()
            self.runner.send_message("sb_clock", None, client_id)
            if not state.clock_reply.wait(REPLY_TIMEOUT_S):
                raise RuntimeError(f"load worker {client_id} did not answer the clock check")
            received = time.perf_counter_ns()
            round_trip = received - sent
            if best is None or round_trip < best[1]:
                best = (state.clock_reading - (sent + received) // 2, round_trip)
        assert best is not None
        state.clock_offset_ns, state.round_trip_ns = best

    def assign(self, clients: list[str]) -> None:
        for index, client_id in enumerate(clients):
            assignment = TrialAssignment(plan=self.plan, first_user_id=index * self.plan.users)
            self.runner.send_message("sb_trial", {"json": assignment.model_dump_json()}, client_id)
        for client_id in clients:
            if not self.workers[client_id].ready.wait(REPLY_TIMEOUT_S * 3):
                raise RuntimeError(f"load worker {client_id} did not take the trial")

    def open_window(self, clients: list[str]) -> tuple[int, int]:
        start = time.perf_counter_ns()
        end = start + int(self.plan.duration_s * 1e9)
        for client_id in clients:
            offset = self.workers[client_id].clock_offset_ns
            window = WorkerWindow(start_ns=start + offset, end_ns=end + offset)
            self.runner.send_message("sb_window", {"json": window.model_dump_json()}, client_id)
        return start, end

    def collect(self, clients: list[str]) -> None:
        deadline = time.monotonic() + self.plan.request_timeout_s + 60
        for client_id in clients:
            if not self.workers[client_id].done.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"load worker {client_id} sent no records")

    def merge(self, clients: list[str], parts_dir: Path) -> None:
        """Each worker's file kept as sent (parts_dir), then all of them on the master's clock in one file."""
        parts_dir.mkdir(parents=True, exist_ok=True)
        tables = []
        for index, client_id in enumerate(clients, start=1):
            state = self.workers[client_id]
            assert state.records is not None
            part = parts_dir / f"worker-{index}.parquet"
            part.write_bytes(state.records.parquet)
            tables.append(on_master_clock(read_records(part), state.clock_offset_ns))
        self.plan.records_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(tables), self.plan.records_path, compression="zstd")

    def stop(self) -> None:
        self.runner.quit()
        for worker in self.local:
            worker.stop()


def on_master_clock(records: pa.Table, offset_ns: int) -> pa.Table:
    for name in TIME_COLUMNS:
        column = records.column(name)
        records = records.set_column(RECORD_SCHEMA.get_field_index(name), name, pc.subtract(column, offset_ns))
    return records


def run_master(plan: ClosedLoopPlan) -> ClosedLoopResult:
    master = Master(plan)
    work_dir = (plan.result_path or plan.records_path).parent
    parts_dir = work_dir / f"{plan.trial_id}.workers"
    try:
        master.start_local_workers(parts_dir)
        clients = master.wait_for_workers()
        for client_id in clients:
            master.measure_clock(client_id)
        master.assign(clients)
        master.runner.start(plan.users, spawn_rate=100)  # returns once the workers report their users
        gevent.sleep(plan.warmup_s)
        cpu_at_start = os.times()
        start_ns, end_ns = master.open_window(clients)
        deadline = end_ns / 1e9
        while (left := deadline - time.perf_counter_ns() / 1e9) > 0:
            progress({"done": master.recorded, "phase": "measure"})
            gevent.sleep(min(1.0, left))
        cpu_at_end = os.times()
        master.collect(clients)
        master.merge(clients, parts_dir)
    finally:
        master.stop()
    reports = [LoadWorkerReport(host=state.records.host, clock_offset_ns=state.clock_offset_ns,
                                round_trip_ns=state.round_trip_ns, records=state.records.records,
                                cpu_percent=state.records.cpu_percent)
               for state in (master.workers[c] for c in clients) if state.records is not None]
    own = cpu_percent(cpu_at_start, cpu_at_end, start_ns, end_ns)
    return ClosedLoopResult(measure_start_ns=start_ns, measure_end_ns=end_ns, load_workers=reports,
                            load_cpu_percent=own + sum(r.cpu_percent for r in reports))
