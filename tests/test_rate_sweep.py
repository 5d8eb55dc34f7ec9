"""Rate sweeps of the LoadGen Server scenario: one cell per offered rate, drawn as latency against offered load."""
import base64
import json
from pathlib import Path

import pytest
import yaml

from conftest import processes_mentioning, run_cli, start_delay_server
from servingbench.cli import parse_rates
from servingbench.config import LoadSettings
from servingbench.load.contracts import PreparedRequest
from servingbench.load.loadgen import loadgen_plan
from servingbench.outputs.render import REPORT, render_outputs
from summaries import save, server_cell


def embedded(png: Path, html: str) -> bool:
    return base64.b64encode(png.read_bytes()).decode("ascii") in html


def test_a_sweep_as_the_readme_shows_it_runs_a_cell_per_rate(tmp_path):
    # One request at a time, 20 ms each: 50/s at most, so 60/s builds a queue that LoadGen calls INVALID.
    proc, url = start_delay_server(tmp_path, 20, concurrency=1)
    try:
        done = run_cli("load", f"{url}/infer", "--scenario", "server", "--target-qps", "10,20,60", "--percentile",
                       "90", "--latency-bound-ms", "150", "--duration", "2", cwd=tmp_path, timeout=300)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    out = next((tmp_path / "results").iterdir())
    cells = json.loads((out / "summary.json").read_text())["cells"]
    assert [(c["scenario"], c["target_qps"], c["status"]) for c in cells] == [
        ("server", 10, "ok"), ("server", 20, "ok"), ("server", 60, "ok")]
    achieved = {c["target_qps"]: c["throughput_rps"]["mean"] for c in cells}
    assert achieved[10] == pytest.approx(10, rel=0.3) and achieved[20] == pytest.approx(20, rel=0.3)
    assert achieved[60] < 55  # the server's ceiling, not the offered rate
    verdicts = {c["target_qps"]: c["repetitions"][0]["loadgen"]["valid"] for c in cells}
    assert verdicts[10] is True and verdicts[60] is False
    assert all(c["latency_bound_ms"] == 150 and c["latency_percentile"] == 90 for c in cells)
    trial_ids = {c["repetitions"][0]["trial_id"] for c in cells}
    assert len(trial_ids) == 3 and all((out / "loadgen" / t / "mlperf_log_summary.txt").is_file() for t in trial_ids)
    label = url.split("://", 1)[1].replace(":", "_") + "_infer"
    table = (out / "tables" / f"{label}-server-sweep.md").read_text()
    assert "| endpoint | 60 |" in table and "VALID 0/1" in table and "p90 ms" in table
    assert (out / "tables" / f"{label}-server-sweep.csv").read_text().count("\n") == 4  # header + 3 rates
    figure = out / "figures" / f"{label}-server-sweep.png"
    html = (out / REPORT).read_text()
    assert embedded(figure, html) and "Server-scenario rate sweep" in html
    assert processes_mentioning(str(out)) == []


def test_rates_parse_as_lists_and_ranges():
    assert parse_rates("5:40:5") == [5, 10, 15, 20, 25, 30, 35, 40]
    assert parse_rates("5:42:5") == [5, 10, 15, 20, 25, 30, 35, 40]  # a stop the step misses is left out
    assert parse_rates("0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    assert parse_rates("5,10,20") == [5, 10, 20]
    assert parse_rates("10, 5:15:5") == [10, 5, 15]  # mixed; a repeated rate runs once
    assert LoadSettings(target_qps=12).target_qps == [12]
    assert LoadSettings(target_qps=[5, 10]).target_qps == [5, 10]


@pytest.mark.parametrize("rates, reason", [
    ("", "got an empty one"), ("5,,10", "got an empty one"), ("0", "must be positive"), ("5,-1", "must be positive"),
    ("5:40:0", "STEP must be positive"), ("40:5:5", "is empty"), ("5:40", "nor a range"), ("fast", "nor a range"),
    ("1:100000:1", "at most 1000"),
])
def test_bad_rates_are_one_line_errors(tmp_path, rates, reason):
    done = run_cli("load", "http://127.0.0.1:9/infer", "--scenario", "server", f"--target-qps={rates}", cwd=tmp_path)
    assert done.returncode == 2 and reason in done.stderr and "--target-qps" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rates", [[], [10, 0], "5:40:5"])
def test_bad_rates_in_a_study_file_are_one_line_errors(tmp_path, rates):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"load": {"scenarios": ["server"], "target_qps": rates}}))
    done = run_cli("run", str(study), "--out", str(tmp_path / "results"), cwd=tmp_path)
    assert done.returncode == 2 and "load.target_qps" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "results").exists()


def test_offline_expects_the_first_rate(tmp_path):
    load = LoadSettings(target_qps=[7, 9])
    plan = loadgen_plan("t", "http://127.0.0.1:9", [PreparedRequest(path="/infer")], "offline", load,
                        tmp_path / "r.parquet", tmp_path)
    assert plan.target_qps == 7


def test_older_results_without_bounds_or_records_still_render_the_sweep(tmp_path):
    """Server cells as an older servingbench saved them: no bound on the cell, no bounded latency in the
    verdict, and here no request records either."""
    path = save(tmp_path / "old", server_cell("torchserve", "resnet50", 10, [True, True]),
                server_cell("torchserve", "resnet50", 20, [True, False]),
                server_cell("triton", "resnet50", 10, [True]))
    written = render_outputs(path)
    assert path / "figures" / "resnet50-server-sweep.png" in written
    table = (path / "tables" / "resnet50-server-sweep.md").read_text()
    assert "| torchserve | 20 | 20.00 |" in table and "VALID 1/2" in table and "| triton | 10 |" in table
    assert not (path / "timeseries").exists()
    assert embedded(path / "figures" / "resnet50-server-sweep.png", (path / REPORT).read_text())
