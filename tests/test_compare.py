"""`servingbench compare A B`: regressions (beyond run-to-run noise and worse than a threshold) exit 3;
noise, improvements and small changes do not; JSON and CSV output parse."""
from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import run_cli
from servingbench.cli import EXIT_SLO
from servingbench.outputs.compare import CHANGE_FIELDS
from summaries import closed_cell, failed_cell, save, server_cell
from test_cli_errors import assert_one_line_error

# Three repetitions of (throughput req/s, mean latency ms) of reference / resnet50 at 10 users; A's
# spread is tight, so its 95% CIs are narrow.
BASELINE = [(40.0, 20.0), (40.1, 20.1), (40.05, 20.05)]
AFTER = {
    "slower": [(34.0, 23.5), (34.1, 23.6), (34.05, 23.55)],       # -15% throughput, +17% latency
    "slightly_slower": [(38.8, 20.0), (38.9, 20.1), (38.85, 20.05)],  # -3% throughput, beyond the noise
    "noisy": [(30.0, 20.0), (44.0, 20.1), (36.0, 20.05)],         # -8% throughput, but the CIs overlap
    "faster": [(50.0, 16.0), (50.1, 16.1), (50.05, 16.05)],       # better on every metric
    "higher_latency": [(40.0, 26.0), (40.1, 26.1), (40.05, 26.05)],  # latency up 30%, throughput the same
}
LATENCIES = {"latency_p50", "latency_p99"}


def _results(tmp_path, name: str, runs) -> str:
    """Results with the reference cell; A also has a cell B lacks, and torchserve failed in B."""
    cells = [closed_cell("reference", "resnet50", 10, runs)]
    if name == "a":
        cells += [closed_cell("reference", "resnet50", 1, [(20.0, 5.0), (20.2, 5.1)]),
                  closed_cell("torchserve", "resnet50", 10, BASELINE)]
    else:
        cells += [failed_cell("torchserve", "resnet50", 10)]
    return str(save(tmp_path / name, *cells))


def _compare(tmp_path, after: str, *options: str):
    before = _results(tmp_path, "a", BASELINE)
    return run_cli("compare", before, _results(tmp_path, after, AFTER[after]), *options, timeout=60)


@pytest.mark.parametrize("after, threshold, regressed", [
    ("slower", "5%", {"throughput"} | LATENCIES),
    ("higher_latency", "5", LATENCIES),
    ("slightly_slower", "2%", {"throughput"}),
    ("slightly_slower", "5%", set()),
    ("noisy", "5%", set()),
    ("faster", "0%", set()),
])
def test_fail_on_regression(tmp_path, after, threshold, regressed):
    done = _compare(tmp_path, after, "--fail-on-regression", threshold, "--format", "json")
    assert done.returncode == (EXIT_SLO if regressed else 0), done.stderr
    document = json.loads(done.stdout)
    assert document["fail_on_regression_pct"] == float(threshold.rstrip("%"))
    assert {c["metric"] for c in document["changes"] if c["regression"]} == regressed
    # each regression is named on stderr, and nothing else is
    named = {line.split(": ")[1].split()[0] for line in done.stderr.splitlines() if line.startswith("  ")}
    assert named == regressed


def test_json_document(tmp_path):
    document = json.loads(_compare(tmp_path, "noisy", "--format", "json").stdout)
    throughput = next(c for c in document["changes"] if c["metric"] == "throughput")
    assert tuple(throughput) == CHANGE_FIELDS
    assert [throughput[k] for k in ("framework", "model", "pipeline", "scenario", "users")] == [
        "reference", "resnet50", "end_to_end", "closed", 10]
    assert throughput["before"] == pytest.approx(40.05) and throughput["after"] == pytest.approx(36.6667)
    assert throughput["percent"] == pytest.approx(-8.4478, rel=1e-4)
    assert throughput["significant"] is False and throughput["regression"] is None  # no threshold given
    assert document["fail_on_regression_pct"] is None
    assert document["only_in_a"] == [{"framework": "reference", "model": "resnet50", "pipeline": "end_to_end",
                                      "scenario": "closed", "users": 1, "target_qps": None}]
    assert document["only_in_b"] == []
    assert document["not_measured"] == [{"framework": "torchserve", "model": "resnet50", "pipeline": "end_to_end",
                                         "scenario": "closed", "users": 10, "target_qps": None}]


def test_a_rate_sweep_is_compared_rate_by_rate(tmp_path):
    """Server cells at several rates are cells of their own, in A, in B and in the comparison."""
    before = save(tmp_path / "a", *(server_cell("triton", "resnet50", rate, [True, True]) for rate in (10, 20)))
    after = save(tmp_path / "b", *(server_cell("triton", "resnet50", rate, [True, True]) for rate in (10, 20, 40)))
    done = run_cli("compare", str(before), str(after), "--format", "json", timeout=60)
    document = json.loads(done.stdout)
    assert sorted({c["target_qps"] for c in document["changes"]}) == [10, 20]
    assert document["only_in_b"] == [{"framework": "triton", "model": "resnet50", "pipeline": "end_to_end",
                                      "scenario": "server", "users": 0, "target_qps": 40}]
    table = run_cli("compare", str(before), str(after), timeout=60).stdout
    assert "only in B: triton / resnet50 / server / 0 / 40 qps" in table


def test_csv_has_a_header_and_a_row_per_change(tmp_path):
    done = _compare(tmp_path, "slower", "--fail-on-regression", "16%", "--format", "csv")
    assert done.returncode == EXIT_SLO, done.stderr
    reader = csv.DictReader(io.StringIO(done.stdout))
    rows = list(reader)
    assert tuple(reader.fieldnames) == CHANGE_FIELDS
    # throughput fell 15%, under the threshold; latency rose 17.5%
    assert {r["metric"]: r["regression"] for r in rows} == {"throughput": "False", "latency_p50": "True",
                                                          "latency_p99": "True"}
    assert float(rows[0]["percent"]) == pytest.approx(-14.98, abs=0.01)
    assert "only in A: reference / resnet50 / closed / 1" in done.stderr


def test_table_marks_regressions(tmp_path):
    done = _compare(tmp_path, "slower", "--fail-on-regression", "5%")
    assert done.returncode == EXIT_SLO
    row = next(line for line in done.stdout.splitlines() if "throughput" in line)
    assert "-15.0%" in row and "! regression" in row
    assert "3 regression(s) beyond run-to-run noise and worse than 5%" in done.stderr
    assert "reference / resnet50 / closed / 10: throughput 40.05 → 34.05 (-15.0%)" in done.stderr
    assert "only in A: reference / resnet50 / closed / 1" in done.stdout


def test_without_the_flag_a_regression_does_not_fail(tmp_path):
    done = _compare(tmp_path, "slower")
    assert done.returncode == 0, done.stderr
    assert "regression" not in done.stdout + done.stderr


@pytest.mark.parametrize("value", ["five", "-5%", "nan"])
def test_bad_threshold_is_one_line(tmp_path, value):
    done = run_cli("compare", str(tmp_path), str(tmp_path), "--fail-on-regression", value, timeout=60)
    assert done.returncode == 2
    assert_one_line_error(done, "--fail-on-regression", value)
