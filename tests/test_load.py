"""The Locust load engine against servers with a known service time, through the real CLI."""
import json
import threading

import pyarrow.parquet as pq
import pytest

from conftest import processes_mentioning, run_cli, start_delay_server
from servingbench.adapters.base import PreparedRequest
from servingbench.analysis.stats import summarize_records
from servingbench.load.closed_loop import ClosedLoopPlan, run_closed_loop
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
    assert (out / "tables" / "127.0.0.1_{}_predict-throughput.csv".format(delay_server_20ms.rsplit(":", 1)[1])).exists()
    assert processes_mentioning(str(out)) == []


def test_non_2xx_answers_are_failures_per_second(tmp_path):
    proc, url = start_delay_server(tmp_path, 5)
    try:
        plan = ClosedLoopPlan("fail", url, [PreparedRequest("GET", "/status/503", b"", {}, "x")], users=2,
                              warmup_s=0.5, duration_s=2, request_timeout_s=5)
        window = run_closed_loop(plan, tmp_path / "fail.parquet", tmp_path)
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
    plan = ClosedLoopPlan("dies", url, [PreparedRequest("POST", "/p", b"abc", {}, "x")], users=3,
                          warmup_s=0.2, duration_s=2.5, request_timeout_s=2)
    killer = threading.Timer(1.2, proc.stop)
    killer.start()
    try:
        window = run_closed_loop(plan, tmp_path / "dies.parquet", tmp_path)
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
