"""The Locust load engine against servers with a known service time, through the real CLI."""
import json
import threading

import pyarrow.parquet as pq
import pytest

from conftest import processes_mentioning, run_cli, start_delay_server
from servingbench.analysis.stats import summarize_records
from servingbench.load.closed_loop import run_closed_loop
from servingbench.load.contracts import ClosedLoopPlan, PreparedRequest, WindowStability
from servingbench.load.records import RECORD_SCHEMA, read_records


def test_load_reports_a_known_20ms_delay_accurately(delay_server_20ms, tmp_path):
    out = tmp_path / "res"
    done = run_cli("load", f"{delay_server_20ms}/predict", "--users", "5", "--duration", "4", "--warmup", "1",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    cell = json.loads((out / "summary.json").read_text())["cells"][0]
    assert cell["status"] == "ok" and cell["users"] == 5
    assert 20.0 <= cell["latency_ms"]["mean"] <= 25.0
    assert cell["throughput_rps"]["mean"] == pytest.approx(5 / 0.020, rel=0.10)
    assert cell["failed"] == 0
    # every request is in the raw file, with exact timings
    table = pq.read_table(out / cell["repetitions"][0]["records_file"])
    assert table.schema.equals(RECORD_SCHEMA)
    measured = table.filter(table.column("phase").to_numpy(zero_copy_only=False) == "measure")
    assert measured.num_rows == cell["requests"]
    assert set(table.column("worker_id").to_pylist()) == {0, 1, 2, 3, 4}
    # the client's own part: writing a small request and reading a small answer take far less than the delay
    assert measured.column("written_ns").null_count == 0 and measured.column("first_byte_ns").null_count == 0
    trial = cell["repetitions"][0]
    assert 0 <= trial["client_send_ms"]["mean"] < 2 and 0 <= trial["client_receive_ms"]["mean"] < 2
    assert 0 <= trial["client_lag_ms"]["mean"] < 5  # the generator's own delay in reading, outside the latency
    assert 0 < trial["load_cpu_us_per_request"] < 20_000
    assert (out / "tables" / "127.0.0.1_{}_predict-throughput.csv".format(delay_server_20ms.rsplit(":", 1)[1])).exists()
    assert processes_mentioning(str(out)) == []


def test_non_2xx_answers_are_failures_per_second(tmp_path):
    proc, url = start_delay_server(tmp_path, 5)
    try:
        plan = ClosedLoopPlan(trial_id="fail", base_url=url, requests=[PreparedRequest(method="GET", path="/status/503")],
                              users=2, warmup_s=0.5, duration_s=2, request_timeout_s=5,
                              records_path=tmp_path / "fail.parquet")
        window = run_closed_loop(plan, tmp_path)
    finally:
        proc.stop()
    counts = summarize_records(read_records(tmp_path / "fail.parquet"), window.measure_start_ns,
                               window.measure_end_ns)
    assert counts.ok == 0 and counts.failed == counts.requests > 0
    assert counts.throughput_rps == 0
    assert counts.failures_per_s == pytest.approx(2 / 0.005, rel=0.5)
    assert counts.errors == {"HTTP 503": counts.failed}


def test_a_server_that_dies_mid_trial_gives_failed_records_not_a_crash(tmp_path):
    proc, url = start_delay_server(tmp_path, 10)
    plan = ClosedLoopPlan(trial_id="dies", base_url=url, requests=[PreparedRequest(path="/p", body=b"abc")], users=3,
                          warmup_s=0.2, duration_s=2.5, request_timeout_s=2, records_path=tmp_path / "dies.parquet")
    killer = threading.Timer(1.2, proc.stop)
    killer.start()
    try:
        window = run_closed_loop(plan, tmp_path)
    finally:
        killer.join()
    table = read_records(tmp_path / "dies.parquet")
    counts = summarize_records(table, window.measure_start_ns, window.measure_end_ns)
    assert counts.ok > 0 and counts.failed > 0
    failed_statuses = {s for s, ok in zip(table.column("status").to_pylist(), table.column("ok").to_pylist()) if not ok}
    assert failed_statuses == {0}  # no HTTP answer: connection refused or reset


def test_unreachable_endpoint_is_one_line_error(tmp_path):
    from servingbench.launch.ports import free_port
    done = run_cli("load", f"http://127.0.0.1:{free_port()}/x", "--users", "1", "--duration", "1",
                   "--out", str(tmp_path / "r"), timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("servingbench: error: endpoint unreachable")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_until_stable_stops_once_three_windows_agree_and_measures_only_those(tmp_path):
    proc, url = start_delay_server(tmp_path, 10)
    try:
        get_x = [PreparedRequest(method="GET", path="/x")]
        plan = ClosedLoopPlan(trial_id="stable", base_url=url, requests=get_x, users=2, warmup_s=0.3,
                              duration_s=60, request_timeout_s=5, until_stable=True, stability_window_s=0.5,
                              stability_tolerance_pct=20, max_duration_s=20, records_path=tmp_path / "stable.parquet")
        window = run_closed_loop(plan, tmp_path)
        never = plan.model_copy(update={"trial_id": "never", "stability_tolerance_pct": 1e-6, "max_duration_s": 2,
                                        "records_path": tmp_path / "never.parquet"})
        unstable = run_closed_loop(never, tmp_path)
    finally:
        proc.stop()
    assert window.stability.stable and 3 <= window.stability.windows < 40
    # the measurement is the last three windows, not the 60 s duration, and the records say so
    assert (window.measure_end_ns - window.measure_start_ns) / 1e9 == pytest.approx(1.5, abs=0.1)
    table = read_records(tmp_path / "stable.parquet")
    counts = summarize_records(table, window.measure_start_ns, window.measure_end_ns)
    sent = table.column("sent_ns").to_numpy()
    measured = table.column("phase").to_numpy(zero_copy_only=False) == "measure"
    assert (measured == (sent >= window.measure_start_ns)).all() and counts.requests > 0
    assert counts.throughput_rps == pytest.approx(2 / 0.010, rel=0.2)
    assert unstable.stability == WindowStability(windows=4, stable=False)


def test_until_stable_trials_record_windows_and_warn_when_never_stable(tmp_path):
    from servingbench.analysis.warnings import trial_warnings
    from servingbench.config import load_settings
    from servingbench.errors import ServingbenchError
    from servingbench.results.schema import Stability, TrialCounts

    counts = TrialCounts(requests=100, ok=100, failed=0, duration_s=3, throughput_rps=33, failures_per_s=0,
                         latency_ms=None)
    never = Stability(windows=8, stable=False, window_s=5, tolerance_pct=10)
    assert any(w.startswith("never stabilised: 8 windows of 5 s") for w in trial_warnings(counts, 10, never))
    assert not trial_warnings(counts, 10, never.model_copy(update={"stable": True}))
    with pytest.raises(ServingbenchError, match="no room for 3 stability windows"):
        load_settings({"until_stable": True, "stability_window_s": 5, "max_duration_s": 10})
