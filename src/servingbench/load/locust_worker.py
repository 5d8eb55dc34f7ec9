"""The closed-loop load generator process: Locust users that time every request themselves.

Run as `python -m servingbench.load.locust_worker PLAN.json`. It lives in its own process because
Locust monkey-patches the standard library with gevent. A plan with load workers runs as the master of
Locust's distributed mode instead (locust_master.py); the workers use this module's users too. Each virtual user keeps one keep-alive
connection and sends its next request as soon as the previous answer arrives (no wait time, as
in the study). Locust only spawns and runs the users: they time each request with
perf_counter_ns around the socket write and the read of the complete answer (http_wire.py; each
request's bytes are made once, before the trial, unless the plan has a client step: then they are made
for every request, timed from `prepared_ns`) and pack the times into a preallocated buffer;
the warm-up's rows are written to Parquet as they come, the measurement window's once it closes.
gRPC (the plan's protocol) goes through grpcio in gevent mode.
"""
from __future__ import annotations

import importlib
import itertools
import json
import os
import random
import sys
import time
from typing import Callable, Iterator
from urllib.parse import urlsplit

import gevent
import numpy as np
from locust import User, task
from locust.env import Environment
from locust.exception import StopUser

from servingbench.load.contracts import (
    ClosedLoopPlan,
    ClosedLoopResult,
    PreparedRequest,
    RequestOrder,
    WindowStability,
    WorkerPlan,
)
from servingbench.load.http_wire import Exchange, HttpWire, encode_request
from servingbench.load.records import RecordWriter, TimingBuffer
from servingbench.load.worker_io import cpu_percent, read_plan, write_result

FLUSH_INTERVAL_S = 1.0
WINDOWS_AGREEING = 3  # as perf_analyzer: the last three measurement windows must agree


Prepare = Callable[[PreparedRequest], PreparedRequest]


def client_step(plan: WorkerPlan) -> Prepare | None:
    """The plan's per-request client work, made once per trial; None: requests go as planned."""
    if plan.client_step is None:
        return None
    module, _, name = plan.client_step.factory.partition(":")
    return getattr(importlib.import_module(module), name)(plan.client_step.argument)


class Trial:
    """Shared state of one trial: the plan, the window and the timings not yet written."""

    def __init__(self, plan: ClosedLoopPlan, first_user_id: int = 0):
        self.plan = plan
        self.prepare = client_step(plan)
        self.target = urlsplit(plan.base_url)
        self.timings = TimingBuffer()
        self.measure_start_ns: int | None = None
        self.stop_sending_ns: int | None = None  # users send nothing after this instant
        # Load workers number their users from their own base, so user ids stay distinct in merged records.
        self.user_ids = itertools.count(first_user_id)
        self.active_users = 0


# Sends the plan's request at an index. A sender comes with its close() and each request's size as sent.
Sender = Callable[[int], Exchange]


def http_sender(trial: Trial, timeout: float) -> tuple[Sender, Callable[[], None], list[int]]:
    """One keep-alive connection per user, the requests' bytes made once (or, with a client step, made again for
    every request); any non-2xx answer is a failure."""
    target = trial.target
    wire = HttpWire(target.hostname or "127.0.0.1", target.port or (443 if target.scheme == "https" else 80),
                    timeout, tls=target.scheme == "https")
    planned, prepare = trial.plan.requests, trial.prepare

    def wire_bytes(r: PreparedRequest) -> tuple[bytes, bool]:
        return encode_request(r.method, target.netloc, r.path, r.headers, r.body), r.method == "HEAD"

    requests = [wire_bytes(prepare(r) if prepare else r) for r in planned]

    def send(index: int) -> Exchange:
        request, head_only = wire_bytes(prepare(planned[index])) if prepare else requests[index]
        return wire.exchange(request, head_only)

    return send, wire.close, [len(request) for request, _ in requests]


def grpc_sender(trial: Trial, timeout: float) -> tuple[Sender, Callable[[], None], list[int]]:
    """One channel per user; the body is an already serialised message sent to the method `path`.

    grpcio does not tell when the message was written, the answer began or was read: those times stay unknown (0)."""
    import grpc

    channel = grpc.insecure_channel(f"{trial.target.hostname}:{trial.target.port}")
    planned, prepare = trial.plan.requests, trial.prepare
    calls = [(channel.unary_unary(r.path), (prepare(r) if prepare else r).body) for r in planned]
    perf_ns = time.perf_counter_ns

    def send(index: int) -> Exchange:
        call, body = calls[index]
        if prepare:
            body = prepare(planned[index]).body
        sent = perf_ns()
        try:
            answer = call(body, timeout=timeout)
        except grpc.RpcError as exc:
            end = perf_ns()
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Exchange(sent, 0, 0, end, 0, 0, 0, "timeout")
            return Exchange(sent, 0, 0, end, 0, exc.code().value[0], 0, f"gRPC {exc.code().name}")
        return Exchange(sent, 0, 0, perf_ns(), 0, 0, len(answer), None)

    return send, channel.close, [len(body) for _, body in calls]


def request_indexes(order: RequestOrder, worker_id: int, count: int) -> Iterator[int]:
    """The request indexes one user sends, in turn from its own offset (users start on different samples) or
    at random, reproducibly per seed and user."""
    if order.kind == "random":
        pick = random.Random(f"{order.seed}:{worker_id}").randrange
        return (pick(count) for _ in itertools.count())
    return itertools.islice(itertools.cycle(range(count)), worker_id % count, None)


def make_user_class(current_trial: Callable[[], Trial]) -> type[User]:
    """The closed-loop user; `current_trial` gives the trial when a user starts (a load worker learns its
    trial only after Locust made its environment)."""
    perf_ns = time.perf_counter_ns

    class ClosedLoopUser(User):
        # Every request is recorded by the user itself; Locust only spawns and runs users.
        @task
        def send_until_window_closes(self) -> None:
            trial = current_trial()
            make_sender = grpc_sender if trial.plan.protocol == "grpc" else http_sender
            worker_id = next(trial.user_ids)
            trial.active_users += 1
            send, close, sizes = make_sender(trial, trial.plan.request_timeout_s)
            append = trial.timings.append
            indexes = request_indexes(trial.plan.order, worker_id, len(sizes))
            prepares = trial.prepare is not None
            try:
                while trial.stop_sending_ns is None or perf_ns() < trial.stop_sending_ns:
                    index = next(indexes)
                    prepared = perf_ns() if prepares else 0  # the client's own work is part of this request
                    try:
                        sent, written, first, end, read, status, received, error = send(index)
                    except Exception as exc:  # every failure is a record, never a crash
                        sent = end = read = perf_ns()
                        written = first = status = received = 0
                        error = f"{type(exc).__name__}: {exc}"[:200]
                    append(worker_id, index, 0, prepared, sent, written, first, end, read, status, error,
                           sizes[index], received)
            finally:
                close()
                trial.active_users -= 1
            raise StopUser()

    return ClosedLoopUser


def progress(fields: dict) -> None:
    """A line run_worker's caller reads for the progress display."""
    print("PROGRESS " + json.dumps(fields), flush=True)


def report_forever(trial: Trial, writer: RecordWriter) -> None:
    """Progress every second; warm-up rows are written as they come. Writing Parquet holds up every
    user (one gevent hub), so inside the measurement window rows stay in the buffer until it closes."""
    while True:
        gevent.sleep(FLUSH_INTERVAL_S)
        if trial.measure_start_ns is None:
            flush(trial, writer)
        else:
            progress({"done": len(trial.timings), "phase": "measure"})


def flush(trial: Trial, writer: RecordWriter) -> None:
    rows = trial.timings.take()
    writer.write(rows, trial.timings.errors, trial.measure_start_ns)
    failed = int(np.count_nonzero(rows["error"]))
    progress({"done": writer.rows_written, "failed_in_batch": failed,
              "phase": "measure" if trial.measure_start_ns else "warmup"})


def window_stats(rows: np.ndarray, window_s: float) -> tuple[float, float | None]:
    """(throughput, p50 latency in ms) of the requests that completed in one window."""
    ok = rows[rows["error"] == 0]
    latencies = (ok["end_ns"] - ok["sent_ns"]) / 1e6
    return len(latencies) / window_s, float(np.median(latencies)) if len(latencies) else None


def agree(values: list[float | None], tolerance_pct: float) -> bool:
    """All present and within `tolerance_pct` of their mean from lowest to highest."""
    present = [v for v in values if v is not None]
    if not present or len(present) < len(values):
        return False
    mean = sum(present) / len(present)
    return mean > 0 and (max(present) - min(present)) / mean * 100 <= tolerance_pct


def measure_until_stable(trial: Trial, plan: ClosedLoopPlan
                         ) -> tuple[int, int, os.times_result, os.times_result, WindowStability]:
    """Windows after warm-up until the last WINDOWS_AGREEING agree on throughput and p50 (or time runs out).

    The measurement window is those last windows; what came before them was more warm-up. Rows stay
    in memory until then, so each is labelled with its phase once, correctly.
    """
    window_s, tolerance = plan.stability_window_s, plan.stability_tolerance_pct
    boundaries, cpu = [time.perf_counter_ns()], [os.times()]
    stats: list[tuple[float, float | None]] = []
    scanned, stable = len(trial.timings), False
    most = int(plan.max_duration_s / window_s)
    while not stable and len(stats) < most:
        gevent.sleep(max(0.0, (boundaries[0] + (len(stats) + 1) * window_s * 1e9 - time.perf_counter_ns()) / 1e9))
        boundaries.append(time.perf_counter_ns())
        cpu.append(os.times())
        done = len(trial.timings)
        stats.append(window_stats(trial.timings.rows(scanned, done), window_s))
        scanned = done
        recent = stats[-WINDOWS_AGREEING:]
        stable = len(recent) == WINDOWS_AGREEING and all(agree(list(v), tolerance) for v in zip(*recent))
        progress({"done": done, "phase": "measure", "windows": len(stats)})
    first = max(0, len(boundaries) - 1 - WINDOWS_AGREEING)
    return boundaries[first], boundaries[-1], cpu[first], cpu[-1], WindowStability(windows=len(stats), stable=stable)


def prepare_protocol(plan: ClosedLoopPlan) -> None:
    if plan.protocol == "grpc":
        import grpc.experimental.gevent

        grpc.experimental.gevent.init_gevent()  # else every gRPC call blocks all users (gevent's hub)


def drain(trial: Trial) -> None:
    """Let requests already sent finish (they belong to the window), bounded by the request timeout."""
    drain_deadline = time.monotonic() + trial.plan.request_timeout_s + 5
    while trial.active_users > 0 and time.monotonic() < drain_deadline:
        gevent.sleep(0.01)


def run(plan: ClosedLoopPlan) -> ClosedLoopResult:
    if plan.distributed:
        from servingbench.load.locust_master import run_master

        return run_master(plan)
    trial = Trial(plan)
    prepare_protocol(plan)
    writer = RecordWriter(plan.records_path, plan.trial_id)
    env = Environment(user_classes=[make_user_class(lambda: trial)])
    runner = env.create_local_runner()
    users = plan.users
    runner.start(users, spawn_rate=100)  # Locust warns above 100/s; warm-up starts once all run
    flusher = gevent.spawn(report_forever, trial, writer)
    deadline = time.monotonic() + 30
    while trial.active_users < users and time.monotonic() < deadline:
        gevent.sleep(0.005)
    gevent.sleep(plan.warmup_s)
    stability = None
    if plan.until_stable:
        flush(trial, writer)  # the warm-up's rows; later ones wait until the window is known
        flusher.kill()
        start_ns, end_ns, cpu_at_start, cpu_at_end, stability = measure_until_stable(trial, plan)
        trial.stop_sending_ns = end_ns
    else:
        start_ns = trial.measure_start_ns = time.perf_counter_ns()
        cpu_at_start = os.times()
        end_ns = trial.stop_sending_ns = start_ns + int(plan.duration_s * 1e9)
        gevent.sleep(plan.duration_s)
        cpu_at_end = os.times()
    drain(trial)
    runner.quit()
    flusher.kill()
    trial.measure_start_ns = start_ns
    flush(trial, writer)
    writer.close()
    return ClosedLoopResult(measure_start_ns=start_ns, measure_end_ns=end_ns, stability=stability,
                            load_cpu_percent=cpu_percent(cpu_at_start, cpu_at_end, start_ns, end_ns))


def main(argv: list[str]) -> int:
    plan = read_plan(argv, ClosedLoopPlan)
    write_result(plan, run(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
