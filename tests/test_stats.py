"""Statistics on inputs whose answers are known by hand."""
import numpy as np
import pyarrow as pa
import pytest

from servingbench.analysis.server_metrics import trial_server_metrics
from servingbench.analysis.stats import aggregate_cell, estimate, latency_summary, summarize_records
from servingbench.analysis.warnings import trial_warnings
from servingbench.load.records import RECORD_SCHEMA
from servingbench.results.schema import CellSummary, LatencyMs, TrialSummary

MS = 1_000_000


def records(rows, written_ms=None, first_byte_ms=None, read_ms=None):
    """rows: (sent_ms, end_ms, status, error); the client's write, first-byte and read times if known."""
    n = len(rows)
    sent = [int(r[0] * MS) for r in rows]
    end = [int(r[1] * MS) for r in rows]

    def times(ms):
        return pa.array([int(t * MS) for t in ms], pa.int64()) if ms else pa.nulls(n, pa.int64())

    return pa.table({
        "trial_id": ["t"] * n, "worker_id": [0] * n, "sample": [0] * n, "phase": ["measure"] * n,
        "scheduled_ns": pa.nulls(n, pa.int64()), "prepared_ns": pa.nulls(n, pa.int64()), "sent_ns": sent,
        "written_ns": times(written_ms),
        "first_byte_ns": times(first_byte_ms), "end_ns": end,
        "read_ns": times(read_ms),
        "latency_us": [(e - s) // 1000 for s, e in zip(sent, end)],
        "ok": [r[2] == 200 and r[3] is None for r in rows], "status": [r[2] for r in rows],
        "error": [r[3] for r in rows], "bytes_out": [0] * n, "bytes_in": [0] * n,
    }, schema=RECORD_SCHEMA)


def test_exact_percentiles_from_every_value():
    lat = latency_summary(np.arange(1, 101, dtype=float))
    assert lat.mean == 50.5 and lat.min == 1 and lat.max == 100
    assert lat.p50 == pytest.approx(50.5)
    assert lat.p90 == pytest.approx(90.1)
    assert lat.p99 == pytest.approx(99.01)  # not rounded to two significant digits as Locust does


def test_window_counts_completions_and_latency_of_requests_sent_inside():
    rows = [
        (-50, 5, 200, None),      # sent in warm-up, completes in the window: throughput yes, latency no
        (10, 30, 200, None),
        (30, 50, 200, None),
        (50, 60, 503, "HTTP 503"),
        (990, 1020, 200, None),   # sent in the window, completes after: latency yes, throughput no
        (1100, 1200, 200, None),  # after the window: ignored
    ]
    counts = summarize_records(records(rows), 0, 1000 * MS)
    assert counts.duration_s == 1.0
    assert counts.requests == 4 and counts.ok == 3 and counts.failed == 1
    assert counts.throughput_rps == 3.0
    assert counts.failures_per_s == 1.0
    assert counts.latency_ms.mean == pytest.approx((20 + 20 + 30) / 3)
    assert counts.errors == {"HTTP 503": 1}


def test_client_send_and_receive_times_and_their_growth():
    # Four requests in a 900 ms window: writes take 0.1, 0.1, 0.5 and 3 ms; reads 1, 2, 3, 4 ms.
    rows = [(0, 20, 200, None), (100, 120, 200, None), (400, 420, 200, None), (700, 720, 200, None)]
    written = [0.1, 100.1, 400.5, 703]
    first_byte = [19, 118, 417, 716]
    counts = summarize_records(records(rows, written, first_byte), 0, 900 * MS)
    assert counts.client_send_ms.mean == pytest.approx((0.1 + 0.1 + 0.5 + 3) / 4)
    assert counts.client_send_ms.max == pytest.approx(3)
    assert counts.client_receive_ms.mean == pytest.approx(2.5)
    assert counts.client_send_early_late_ms == pytest.approx((0.1, 3.0))  # thirds: [0, 300) and [600, 900)
    assert any("client send time grew from 0.10 ms to 3.00 ms" in w for w in trial_warnings(counts, 10.0))

    steady = summarize_records(records(rows, [0.1, 100.1, 400.1, 700.1], first_byte), 0, 900 * MS)
    assert not any("client send" in w for w in trial_warnings(steady, 10.0))
    unknown = summarize_records(records(rows), 0, 900 * MS)  # an engine that can't tell (gRPC, LoadGen)
    assert unknown.client_send_ms is None and unknown.client_receive_ms is None
    assert unknown.client_send_early_late_ms is None


def test_the_load_generators_own_lag_and_when_it_limits_the_trial():
    rows = [(0, 2, 200, None), (2, 4, 200, None), (4, 6, 200, None)]  # 2 ms answers
    slow = summarize_records(records(rows, read_ms=[2.1, 5.0, 7.0]), 0, 10 * MS)  # read 0.1, 1.0, 1.0 ms late
    assert slow.client_lag_ms.mean == pytest.approx(0.7)
    assert any("got to answers 0.70 ms after they arrived" in w for w in trial_warnings(slow, 10.0))
    quick = summarize_records(records(rows, read_ms=[2.05, 4.05, 6.05]), 0, 10 * MS)
    assert not any("got to answers" in w for w in trial_warnings(quick, 10.0))
    assert summarize_records(records(rows), 0, 10 * MS).client_lag_ms is None  # gRPC, LoadGen: unknown


def test_load_cpu_per_request():
    trial = TrialSummary(requests=400, ok=400, failed=0, duration_s=2.0, throughput_rps=200, failures_per_s=0,
                         latency_ms=None, trial_id="t", repetition=1, records_file="r", started_at="now",
                         load_cpu_percent=50.0)
    assert trial.load_cpu_us_per_request == pytest.approx(2500.0)  # 1 CPU-second over 400 requests
    assert trial.model_dump()["load_cpu_us_per_request"] == pytest.approx(2500.0)


def test_confidence_interval_uses_student_t():
    est = estimate([11.0, 12.0, 13.0])
    # mean 12, s = 1, sem = 1/sqrt(3), t(0.975, 2) = 4.302653
    half = 4.302653 / np.sqrt(3)
    assert est.mean == 12.0 and est.n == 3
    assert est.ci95_low == pytest.approx(12 - half, rel=1e-5)
    assert est.ci95_high == pytest.approx(12 + half, rel=1e-5)
    single = estimate([5.0])
    assert single.mean == 5.0 and single.ci95_low is None


def test_confidence_interval_of_a_rate_never_goes_below_zero():
    # mean 2, half-width 2.48: the t interval would start at -0.48 req/s, which no rate can be
    est = estimate([1.0, 2.0, 3.0])
    assert est.ci95_low == 0.0 and est.ci95_high == pytest.approx(2 + 4.302653 / np.sqrt(3), rel=1e-5)
    failures = estimate([0.0, 0.0, 3.0])
    assert failures.ci95_low == 0.0 and failures.ci95_high > 3.0


def trial(rep, rps, p50):
    lat = LatencyMs(mean=p50, min=p50, p50=p50, p90=p50, p95=p50, p99=p50, max=p50)
    return TrialSummary(requests=10, ok=10, failed=0, duration_s=1, throughput_rps=rps, failures_per_s=0,
                        latency_ms=lat, trial_id=f"t{rep}", repetition=rep, records_file="x",
                        started_at="now", load_cpu_percent=5)


def test_cell_is_the_mean_of_its_repetitions_and_flags_variance():
    cell = aggregate_cell(CellSummary(framework="f", model="m", users=1, status="running",
                                      repetitions=[trial(1, 100, 10), trial(2, 50, 20)]))
    assert cell.throughput_rps.mean == 75 and cell.latency_ms["p50"] == 15
    assert cell.requests == 20
    assert any("varies" in w for w in cell.warnings)
    steady = aggregate_cell(CellSummary(framework="f", model="m", users=1, status="running",
                                        repetitions=[trial(1, 100, 10), trial(2, 101, 10)]))
    assert steady.warnings == []


def test_server_metrics_give_per_request_means():
    before = {"requests_total": 10, "inference_us_total": 100_000, "queue_us_total": 0}
    after = {"requests_total": 30, "inference_us_total": 500_000, "queue_us_total": 40_000}
    got = trial_server_metrics(before, after)
    assert got["requests_total"] == 20
    assert got["inference_ms_mean"] == pytest.approx(20.0)
    assert got["queue_ms_mean"] == pytest.approx(2.0)
    assert trial_server_metrics({}, {}) == {}
