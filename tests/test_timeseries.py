"""Per-trial time series: 1-second bins from the saved request records and telemetry, as CSV and figures."""
import base64
import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, start_delay_server
from servingbench.analysis.timeseries import COLUMNS, TimeBin, bin_trial, read_trial_series
from servingbench.monitor.resources import write_csv
from servingbench.outputs.render import REPORT

S = 1_000_000_000  # ns


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_bins_by_completion_with_warmup_failures_silence_and_cpu(tmp_path):
    start = 50 * S  # perf_counter_ns values: any origin
    records = pa.table({
        "phase": ["warmup", "warmup", "measure", "measure", "measure", "measure"],
        "sent_ns": [start, start + 100, start + 2 * S, int(start + 2.2 * S), int(start + 2.5 * S), int(start + 4.1 * S)],
        "end_ns": [int(start + 0.5 * S), int(start + 2.1 * S), int(start + 2.3 * S), int(start + 2.9 * S),
                   int(start + 3.2 * S), int(start + 5.5 * S)],
        "latency_us": [500_000, 2_100_000, 300_000, 700_000, 700_000, 1_400_000],
        "ok": [True, True, True, False, True, True],
    })
    write_csv([(int(start + 0.2 * S), 10.0, 1.0, None, None, None, None, None),
               (int(start + 0.7 * S), 20.0, 1.0, None, None, None, None, None),
               (int(start + 2.4 * S), None, None, None, None, None, None, None),  # the server tree was not readable
               (start + 4 * S, 50.0, 1.0, None, None, None, None, None)], tmp_path / "telemetry.csv")
    pq.write_table(records, tmp_path / "records.parquet")
    series = read_trial_series(tmp_path / "records.parquet", tmp_path / "telemetry.csv")
    assert series.warmup_end_s == 2.0
    assert series.bins == [
        TimeBin(0, "warmup", 1, 1, 0, 1.0, 500.0, 500.0, 15.0),
        TimeBin(1, "warmup", 0, 0, 0, 0.0, None, None, None),  # nothing completed: still warm-up time
        # the second the measurement began: the warm-up request that ended in it, apart from the measured ones
        TimeBin(2, "warmup", 1, 1, 0, 1.0, 2100.0, 2100.0, None),
        TimeBin(2, "measure", 2, 1, 1, 1.0, 300.0, 300.0, None),
        TimeBin(3, "measure", 1, 1, 0, 1.0, 700.0, 700.0, None),
        TimeBin(4, "measure", 0, 0, 0, 0.0, None, None, 50.0),  # silence shows as a zero
        # the trial's last answer came half-way through its last second: one answer in half a second
        TimeBin(5, "measure", 1, 1, 0, 2.0, 1400.0, 1400.0, None, covered_s=0.5),
    ]
    assert bin_trial(records.slice(0, 0)).bins == []


def test_percentiles_in_a_bin_are_exact():
    latencies = list(range(1, 101))  # ms
    records = pa.table({"phase": ["measure"] * 100, "sent_ns": [0] * 100, "end_ns": [S // 2] * 100,
                        "latency_us": [ms * 1000 for ms in latencies], "ok": [True] * 100})
    (only,) = bin_trial(records).bins
    assert (only.requests, only.p50_ms, only.p99_ms) == (100, pytest.approx(50.5), pytest.approx(99.01))


def test_every_trial_gets_its_series_and_figure(tmp_path):
    proc, url = start_delay_server(tmp_path, 20)
    out, failing = tmp_path / "results", tmp_path / "failing"
    try:
        done = run_cli("load", f"{url}/infer", "--users", "2", "--warmup", "1", "--duration", "2",
                       "--repetitions", "2", "--out", str(out), cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        # Every answer a 503: the cell fails (no measurement), its failures still show over time.
        refused = run_cli("load", f"{url}/status/503", "--users", "1", "--warmup", "0.5", "--duration", "1",
                          "--out", str(failing), cwd=tmp_path)
        assert refused.returncode == 1, refused.stderr[-3000:]
    finally:
        proc.stop()
    (cell,) = json.loads((out / "summary.json").read_text())["cells"]
    assert len(cell["repetitions"]) == 2
    for trial in cell["repetitions"]:
        bins = rows(out / "timeseries" / f"{trial['trial_id']}.csv")
        assert tuple(bins[0]) == COLUMNS
        measured = [b for b in bins if b["phase"] == "measure"]
        assert sum(int(b["requests"]) for b in measured) == trial["requests"]
        assert sum(int(b["ok"]) for b in measured) == trial["ok"] and trial["ok"] > 0
        records = pq.read_table(out / trial["records_file"]).to_pydict()
        warmup_records = records["phase"].count("warmup")
        assert warmup_records > 0
        assert sum(int(b["requests"]) for b in bins if b["phase"] == "warmup") == warmup_records
        assert bins[0]["phase"] == "warmup" and bins[-1]["phase"] == "measure"
        assert all(b["server_cpu_percent"] == "" for b in bins)  # an endpoint: no server process to watch
    figure = out / "figures" / f"{cell['model']}-endpoint-u2-timeseries.png"
    html = (out / REPORT).read_text()
    assert base64.b64encode(figure.read_bytes()).decode("ascii") in html
    assert "<details><summary>endpoint / " in html

    (refused_cell,) = json.loads((failing / "summary.json").read_text())["cells"]
    trial = refused_cell["repetitions"][0]
    assert refused_cell["status"] == "failed" and trial["ok"] == 0 and trial["failed"] > 0
    bins = rows(failing / "timeseries" / f"{trial['trial_id']}.csv")
    measured = [b for b in bins if b["phase"] == "measure"]
    assert sum(int(b["failed"]) for b in measured) == trial["failed"]
    assert all(b["ok"] == "0" and b["p50_ms"] == "" for b in bins)
    assert (failing / "figures" / f"{refused_cell['model']}-endpoint-u1-timeseries.png").is_file()
