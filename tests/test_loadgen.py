"""MLPerf LoadGen scenarios (the real mlcommons-loadgen): against servers with a known service time, and
inside studies on the reference server and Triton, checked against LoadGen's own log files."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from scipy import stats

from conftest import processes_mentioning, run_cli, start_delay_server
from servingbench.analysis.loadgen_summary import parse_detail, parse_summary
from servingbench.orchestrate.capacity import bisect_rate


def assert_matches_loadgen(out, trial):
    """The trial's figures are LoadGen's (ms instead of ns), and every query LoadGen counted was recorded."""
    log_dir = out / trial["loadgen_log_dir"]
    summary = parse_summary(log_dir / "mlperf_log_summary.txt")
    detail = parse_detail(log_dir / "mlperf_log_detail.txt")
    for stat in ("50.00", "90.00", "95.00", "99.00"):
        key = f"p{stat[:2]}"
        assert trial["latency_ms"][key] == int(summary[f"{stat} percentile latency (ns)"]) / 1e6
    assert trial["latency_ms"]["mean"] == int(summary["mean latency (ns)"]) / 1e6
    assert trial["loadgen"]["valid"] == (summary["result is"] == "VALID")
    table = pq.read_table(out / trial["records_file"])
    assert table.num_rows == trial["requests"] == detail["result_query_count"] * int(summary["samples_per_query"])
    scheduled, sent = table.column("scheduled_ns").to_numpy(), table.column("sent_ns").to_numpy()
    assert (scheduled <= sent).all()
    assert trial["send_delay_ms"]["p99"] == pytest.approx(np.percentile((sent - scheduled) / 1e6, 99))
    return summary


@pytest.mark.parametrize("scenario", ["single_stream", "multi_stream", "server", "offline"])
def test_scenario_maps_loadgen_own_summary(delay_server_20ms, tmp_path, scenario):
    out = tmp_path / "results"
    done = run_cli("load", f"{delay_server_20ms}/infer", "--scenario", scenario, "--target-qps", "100",
                   "--latency-bound-ms", "60", "--duration", "2", "--repetitions", "1", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cell = json.loads((out / "summary.json").read_text())["cells"][0]
    trial = cell["repetitions"][0]
    assert cell["scenario"] == scenario and cell["status"] == "ok"
    assert_matches_loadgen(out, trial)
    assert trial["failed"] == 0
    if scenario in ("single_stream", "server"):  # few requests in flight: the true delay shows, sent on time
        assert 20.0 <= trial["latency_ms"]["p50"] <= 25.0
        assert trial["send_delay_ms"]["p50"] < 2.0
    if scenario == "server":
        assert trial["throughput_rps"] == pytest.approx(100, rel=0.15)
        assert trial["target_qps"] == 100
    assert (out / "tables" / "127.0.0.1_{}_infer-loadgen.md".format(delay_server_20ms.rsplit(":", 1)[1])).is_file()
    assert processes_mentioning(str(out)) == []


def test_every_scenario_and_the_accuracy_run_in_a_study_on_reference_and_triton(tmp_path):
    study = tmp_path / "scenarios.yaml"
    study.write_text(yaml.safe_dump({
        "name": "scenarios", "frameworks": ["reference", "triton"], "models": ["resnet50"], "accuracy": True,
        "inprocess_iterations": 0,
        # 2 s: the resource sampler (every 0.5 s) needs two samples inside a trial for a CPU figure
        "load": {"scenarios": ["single_stream", "multi_stream", "server", "offline"], "repetitions": 1,
                 "duration_s": 2, "target_qps": 40, "latency_bound_ms": 500, "min_query_count": 100}}))
    out = tmp_path / "results"
    done = run_cli("run", str(study), "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    cells = {(c["framework"], c["scenario"]): c for c in summary["cells"]}
    assert set(cells) == {(fw, s) for fw in ("reference", "triton")
                          for s in ("single_stream", "multi_stream", "server", "offline")}
    for cell in cells.values():
        assert cell["status"] == "ok", cell
        trial = cell["repetitions"][0]
        assert_matches_loadgen(out, trial)
        assert trial["failed"] == 0, trial["errors"]
        if trial["duration_s"] >= 1.0:  # Offline may finish its batch sooner than the sampler's first samples
            assert trial["resources"]["server_cpu_percent"]["mean"] > 0  # telemetry as in closed-loop trials
        accuracy = cell["correct"]["accuracy"]
        assert cell["correct"]["ok"] is True and accuracy["metric"] == "top1_agreement" and accuracy["value"] == 1.0
        logged = json.loads((out / accuracy["log_dir"] / "mlperf_log_accuracy.json").read_text())
        assert sorted(e["qsl_idx"] for e in logged) == list(range(accuracy["samples"]))
    assert cells[("triton", "server")]["repetitions"][0]["throughput_rps"] == pytest.approx(40, rel=0.25)
    table = (out / "tables" / "resnet50-loadgen.md").read_text()
    assert "| triton | server 40 qps |" in table and "| reference | offline |" in table
    assert "MLPerf LoadGen scenarios of the resnet50 model" in (out / "report.html").read_text()
    assert processes_mentioning(str(out)) == []


def loadgen_valid_probability(rate, service_s, bound_s, percentile, queries, runs=40):
    """A FIFO server with a fixed service time under Poisson arrivals (M/D/1), judged as LoadGen judges:
    VALID when so few queries exceed the bound that its early stopping certifies the percentile."""
    tail = 1 - percentile / 100
    allowed = next(k for k in range(queries, -2, -1) if k < 0 or stats.binom.cdf(k, queries, tail) <= 0.01)
    valid = 0
    for seed in range(runs):
        arrivals = np.cumsum(np.random.default_rng(seed).exponential(1 / rate, queries))
        done, over = 0.0, 0
        for arrival in arrivals:
            done = max(arrival, done) + service_s
            over += done - arrival > bound_s
        valid += over <= allowed
    return valid / runs


def test_capacity_search_finds_the_rate_a_known_service_time_allows(tmp_path):
    service_ms, bound_ms = 5, 50
    proc, url = start_delay_server(tmp_path, service_ms, concurrency=1)  # capacity 200/s, FIFO
    out = tmp_path / "results"
    try:
        done = run_cli("load", f"{url}/infer", "--find-capacity", "--latency-bound-ms", str(bound_ms),
                       "--duration", "2", "--out", str(out), timeout=600)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    cell = json.loads((out / "summary.json").read_text())["cells"][0]
    capacity = cell["capacity"]
    probes = capacity["probes"]
    queries = parse_detail(out / "loadgen" / probes[0]["trial_id"] / "mlperf_log_detail.txt")["result_query_count"]
    # the rate at which such a server passes LoadGen's test half of the time
    expected = bisect_rate(lambda r: loadgen_valid_probability(r, service_ms / 1e3, bound_ms / 1e3, 99, queries)
                           >= 0.5, 1000 / service_ms, resolution=0.01, max_probes=20)[0]
    assert capacity["max_qps"] == pytest.approx(expected, rel=0.10), (capacity, expected)
    assert all(p["valid"] == (p["target_qps"] <= capacity["max_qps"]) for p in probes)
    assert capacity["upper_qps"] > capacity["max_qps"]
    assert "capacity" in (out / "tables" / "capacity.md").read_text().lower()
    label = url.split("://", 1)[1].replace(":", "_")
    assert (out / "figures" / f"{label}_infer-capacity.png").stat().st_size > 0
    assert "Capacity search: each probe" in (out / "report.html").read_text()
    assert processes_mentioning(str(out)) == []


def test_bisection_narrows_to_the_resolution():
    """The search alone, on a rule instead of a server: valid up to 123 queries/s."""
    calls = []
    low, high = bisect_rate(lambda rate: calls.append(rate) or rate <= 123, ceiling=150, resolution=0.02)
    assert low <= 123 < high and (high - low) / high <= 0.02 and len(calls) <= 10
    assert bisect_rate(lambda rate: True, ceiling=10, max_probes=3) == (pytest.approx(44), None)  # keeps doubling
    assert bisect_rate(lambda rate: False, ceiling=10, max_probes=4)[0] is None
