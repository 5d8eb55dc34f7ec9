"""MLPerf LoadGen scenarios (the real mlcommons-loadgen) against a server with a known 20 ms service time."""
import json

import pyarrow.parquet as pq
import pytest

from conftest import processes_mentioning, run_cli
from servingbench.analysis.loadgen_summary import parse_summary


@pytest.mark.parametrize("scenario", ["single_stream", "multi_stream", "server", "offline"])
def test_scenario_maps_loadgen_own_summary(delay_server_20ms, tmp_path, scenario):
    out = tmp_path / "results"
    done = run_cli("load", f"{delay_server_20ms}/infer", "--scenario", scenario, "--target-qps", "100",
                   "--latency-bound-ms", "60", "--duration", "2", "--repetitions", "1", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cell = json.loads((out / "summary.json").read_text())["cells"][0]
    trial = cell["repetitions"][0]
    assert cell["scenario"] == scenario and cell["status"] == "ok"
    loadgen = parse_summary(out / trial["loadgen_log_dir"] / "mlperf_log_summary.txt")
    assert (out / trial["loadgen_log_dir"] / "mlperf_log_detail.txt").is_file()
    # the same figures as LoadGen's own summary, in milliseconds
    assert trial["latency_ms"]["p50"] == int(loadgen["50.00 percentile latency (ns)"]) / 1e6
    assert trial["latency_ms"]["p99"] == int(loadgen["99.00 percentile latency (ns)"]) / 1e6
    assert trial["loadgen"]["valid"] == (loadgen["result is"] == "VALID")
    # every request recorded, with LoadGen's issue time before the send
    table = pq.read_table(out / trial["records_file"])
    assert table.num_rows >= trial["requests"] > 0 and trial["failed"] == 0
    assert all(s <= t for s, t in zip(table.column("scheduled_ns").to_pylist(), table.column("sent_ns").to_pylist()))
    if scenario in ("single_stream", "server"):  # one request at a time in flight, or few: the true delay shows
        assert 20.0 <= trial["latency_ms"]["p50"] <= 25.0
    if scenario == "server":
        assert trial["throughput_rps"] == pytest.approx(100, rel=0.15)
    assert processes_mentioning(str(out)) == []
