"""MLPerf LoadGen scenarios against a server: the load-generator process.

Run as `python -m servingbench.load.loadgen_worker PLAN.json`. LoadGen schedules queries (Poisson
arrivals in the Server scenario) and measures latency from its own schedule; this SUT hands each
sample to a pool of sender threads (one connection each, HTTP or gRPC) without blocking LoadGen's
issuing thread, and completes it when the answer arrives. Every request is also recorded
(RequestRecord, `scheduled_ns` = when LoadGen issued it, so `sent_ns - scheduled_ns` is how late it
left). In accuracy mode the answers go back to LoadGen, which logs them. Its own logs stay in `log_dir`.
"""
from __future__ import annotations

import array
import os
import queue
import sys
import threading
import time

import mlperf_loadgen as lg

from servingbench.load.contracts import LoadGenPlan, LoadGenResult
from servingbench.load.records import RecordWriter, TimingBuffer
from servingbench.load.transport import Connection
from servingbench.load.worker_io import cpu_percent, read_plan, write_result

EXPECTED_LATENCY_NS = 1_000_000
SCENARIOS = {"single_stream": "SingleStream", "multi_stream": "MultiStream", "server": "Server",
             "offline": "Offline"}


class Sut:
    def __init__(self, plan: LoadGenPlan):
        self.plan = plan
        self.requests = plan.requests
        self.pending: queue.Queue = queue.Queue()
        self.timings = TimingBuffer()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send_forever, args=(i,), daemon=True)
                        for i in range(plan.senders)]
        for thread in self.threads:
            thread.start()

    def issue_queries(self, samples) -> None:
        issued = time.perf_counter_ns()
        for sample in samples:  # return at once: LoadGen's issuing thread must never wait on a server
            self.pending.put((sample.id, sample.index, issued))

    def _send_forever(self, worker_id: int) -> None:
        connection = Connection(self.plan.base_url, self.plan.request_timeout_s)
        while (item := self.pending.get()) is not None:
            query_id, index, issued = item
            request = self.requests[index % len(self.requests)]
            sent = time.perf_counter_ns()
            status, answer, error = connection.send(request)
            end = time.perf_counter_ns()
            with self.lock:
                # http.client and grpcio do not tell when the request was written, the answer began or arrived
                # whole, apart from being read (0: unknown)
                self.timings.append(worker_id, index, issued, 0, sent, 0, 0, end, 0, status, error,
                                    len(request.body), len(answer))
            if self.plan.accuracy and error is None:
                data = array.array("B", answer)  # LoadGen copies the answer before this call returns
                address, length = data.buffer_info()
                lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, address, length)])
            else:
                lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0)])
        connection.close()

    def stop(self) -> None:
        for _ in self.threads:
            self.pending.put(None)
        for thread in self.threads:
            thread.join(timeout=self.plan.request_timeout_s + 5)


def test_settings(plan: LoadGenPlan) -> "lg.TestSettings":
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, SCENARIOS[plan.scenario])
    settings.mode = lg.TestMode.AccuracyOnly if plan.accuracy else lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(plan.duration_s * 1000)
    settings.min_query_count = plan.min_query_count
    settings.server_target_qps = plan.target_qps
    settings.offline_expected_qps = plan.target_qps
    settings.server_target_latency_ns = int(plan.latency_bound_ms * 1e6)
    settings.server_target_latency_percentile = plan.latency_percentile / 100
    # LoadGen sizes its query list from these; too low only makes the list longer than the run needs.
    settings.single_stream_expected_latency_ns = EXPECTED_LATENCY_NS
    settings.multi_stream_expected_latency_ns = EXPECTED_LATENCY_NS
    return settings


def run(plan: LoadGenPlan) -> LoadGenResult:
    sut = Sut(plan)
    loadgen_sut = lg.ConstructSUT(sut.issue_queries, lambda: None)
    count = len(sut.requests)
    qsl = lg.ConstructQSL(count, count, lambda indices: None, lambda indices: None)
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    output = lg.LogOutputSettings()
    output.outdir = str(plan.log_dir)
    output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    start, cpu_at_start = time.perf_counter_ns(), os.times()
    lg.StartTestWithLogSettings(loadgen_sut, qsl, test_settings(plan), log_settings)
    end, cpu_at_end = time.perf_counter_ns(), os.times()
    sut.stop()
    lg.DestroyQSL(qsl)
    lg.DestroySUT(loadgen_sut)
    writer = RecordWriter(plan.records_path, plan.trial_id)
    writer.write(sut.timings.take(), sut.timings.errors, start)
    writer.close()
    return LoadGenResult(start_ns=start, end_ns=end, load_cpu_percent=cpu_percent(cpu_at_start, cpu_at_end, start, end))


def main(argv: list[str]) -> int:
    plan = read_plan(argv, LoadGenPlan)
    write_result(plan, run(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
