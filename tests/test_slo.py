"""SLO gates: parsing, verdicts per cell (pass, breach, not applicable), the study's `slo:` field, and the
verdicts in the final table and report.html."""
from __future__ import annotations

import pytest

from conftest import run_cli
from servingbench.analysis.slo import apply_gates, breaches, parse_gate, parse_gates
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.results.schema import Summary
from servingbench.results.store import load_summary
from summaries import capacity_cell, closed_cell, failed_cell, save, server_cell
from test_cli_errors import assert_one_line_error

# reference: fast and clean; torchserve: slow, 3 failures per 10 s trial. Latency p99 is 1.8x the mean
# (summaries.latency), so reference's p99 is 36.9 ms and torchserve's 189 ms.
CELLS = [
    closed_cell("reference", "resnet50", 10, [(40.0, 20.0), (41.0, 21.0), (39.5, 20.5)]),
    closed_cell("torchserve", "resnet50", 10, [(12.0, 100.0), (12.5, 110.0), (11.8, 105.0)], failed=3),
    server_cell("reference", "resnet50", 20.0, valid=[True, True]),
    server_cell("torchserve", "resnet50", 20.0, valid=[True, False]),
    capacity_cell("reference", "resnet50", {10.0: True, 20.0: True, 40.0: False, 30.0: False}),
    capacity_cell("torchserve", "resnet50", {10.0: False, 5.0: False}),
    failed_cell("triton", "resnet50", 10),
]
REF, TS, REF_SERVER, TS_SERVER, REF_CAPACITY, TS_CAPACITY, TRITON = range(len(CELLS))
TS_ERROR_RATE = 9 / (123 + 128 + 121)  # 3 failed of each trial's requests

# (gate, cell, passed, observed): every metric and operator, each passing in one cell and breached in another.
VERDICTS = [
    ("p99_ms<=100", REF, True, 36.9), ("p99_ms<=100", TS, False, 189.0),
    ("p50_ms<50", REF, True, 19.475), ("p50_ms<50", TS, False, 99.75),
    ("p95_ms<=30", REF, True, 28.7), ("p95_ms<=30", TS, False, 147.0),
    ("p90_ms>30", TS, True, 131.25), ("p90_ms>30", REF, False, 25.625),
    ("mean_ms<=30", REF, True, 20.5), ("mean_ms<=30", TS, False, 105.0),
    ("failures_per_s==0", REF, True, 0.0), ("failures_per_s==0", TS, False, 0.3),
    ("throughput_rps>=20", REF, True, 40.1667), ("throughput_rps>=20", TS, False, 12.1),
    ("error_rate<=0.01", REF, True, 0.0), ("error_rate<=0.01", TS, False, TS_ERROR_RATE),
    ("loadgen=valid", REF_SERVER, True, 1.0), ("loadgen=valid", TS_SERVER, False, 0.5),
    ("capacity_qps>=15", REF_CAPACITY, True, 20.0), ("capacity_qps>=15", TS_CAPACITY, False, 0.0),
]
# (gate, cell, why): the cell does not measure the gate's metric, so it is neither passed nor breached.
NOT_APPLICABLE = [
    ("loadgen=valid", REF, "LoadGen"), ("capacity_qps>=15", REF, "not a capacity search"),
    ("loadgen=valid", REF_CAPACITY, "LoadGen"), ("p99_ms<=100", REF_CAPACITY, "no latency"),
    ("throughput_rps>=20", TS_CAPACITY, "no throughput"),
]
GATES = list(dict.fromkeys(gate for gate, *_ in VERDICTS))


@pytest.fixture(scope="module")
def gated() -> Summary:
    summary = Summary(servingbench_version="test", study="slo", started_at="", updated_at="", cells=CELLS)
    return apply_gates(summary, parse_gates(GATES))


def _verdict(summary: Summary, gate: str, cell: int):
    return next(v for v in summary.cells[cell].slo if v.gate == gate)


@pytest.mark.parametrize("gate, cell, passed, observed", VERDICTS)
def test_each_gate_passes_and_breaches(gated, gate, cell, passed, observed):
    verdict = _verdict(gated, gate, cell)
    assert verdict.passed is passed
    assert verdict.observed == pytest.approx(observed, rel=1e-4)


@pytest.mark.parametrize("gate, cell, why", NOT_APPLICABLE)
def test_a_gate_the_cell_does_not_measure_does_not_apply(gated, gate, cell, why):
    verdict = _verdict(gated, gate, cell)
    assert verdict.passed is None and verdict.observed is None
    assert why in verdict.reason


def test_breaches_list_failed_gates_only_and_skip_cells_not_measured(gated):
    found = breaches(gated)
    assert gated.cells[TRITON].slo == []
    assert len(found) == sum(v.passed is False for c in gated.cells for v in c.slo)
    assert "torchserve / resnet50 / 10 users: p99_ms<=100 breached: 189.0" in found
    assert "torchserve / resnet50 / server 20 qps: loadgen=valid breached: 0.5" in found
    reference = [line for line in found if line.startswith("reference / resnet50 / 10 users")]
    assert reference == ["reference / resnet50 / 10 users: p90_ms>30 breached: 25.6"]
    assert apply_gates(gated, []).cells[TS].slo == []  # applying again replaces, never appends


def test_gate_spelling():
    gate = parse_gate("  p99_ms <= 200 ")
    assert (gate.metric, gate.op, gate.threshold, gate.text) == ("p99_ms", "<=", 200.0, "p99_ms <= 200")
    assert parse_gate("failures_per_s=0").op == "=="
    assert parse_gate("loadgen==VALID").threshold == 1.0


@pytest.mark.parametrize("text, problem", [
    ("p98_ms<=200", "unknown metric 'p98_ms'"),
    ("p99_ms<=fast", "threshold 'fast' is not a number"),
    ("p99_ms<=200ms", "threshold '200ms' is not a number"),
    ("p99_ms<=inf", "not a finite number"),
    ("loadgen=invalid", "loadgen takes only loadgen=valid"),
    ("loadgen>=valid", "loadgen takes only loadgen=valid"),
    ("p99_ms", "expected METRIC OPERATOR THRESHOLD"),
    ("p99_ms <= 200 and p50_ms <= 50", "expected METRIC OPERATOR THRESHOLD"),
])
def test_bad_gate_is_one_line_naming_it_and_the_choices(text, problem):
    with pytest.raises(ServingbenchError) as caught:
        parse_gate(text)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in (f"bad SLO gate '{text}'", problem, "throughput_rps", "loadgen", "<=", ">="):
        assert fragment in message


def test_study_slo_field(tmp_path):
    study = tmp_path / "gated.yaml"
    study.write_text("slo: ['p99_ms<=200', 'loadgen=valid']\n")
    assert load_study(str(study)).slo == ["p99_ms<=200", "loadgen=valid"]
    study.write_text("slo:\n  - p99_ms<=200\n  - p98_ms<=50\n")
    done = run_cli("run", str(study), timeout=60)
    assert done.returncode == 2
    assert_one_line_error(done, "gated.yaml", "field 'slo'", "bad SLO gate 'p98_ms<=50'", "unknown metric")


def test_verdicts_survive_summary_json_and_show_in_the_final_table_and_report(gated, tmp_path):
    results = save(tmp_path / "gated", *gated.cells)
    assert load_summary(results).cells[TS].slo == gated.cells[TS].slo
    done = run_cli("report", str(results), timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    reference = next(line for line in lines if line.startswith("SLO reference / 10 users:"))
    assert "p99_ms<=100 ✓ 36.9" in reference and "p90_ms>30 ✗ 25.6" in reference
    assert "loadgen=valid n.a." in reference
    assert not any(line.startswith("SLO triton") for line in lines)
    html = (results / "report.html").read_text()
    assert 'id="slo"' in html and f"{len(breaches(gated))} SLO gate(s) breached" in html
    assert "<td>189.0</td>" in html and "breach" in html and "n.a.: not a capacity search" in html


def test_report_without_gates_has_no_slo_section(tmp_path):
    results = save(tmp_path / "plain", *CELLS[:2])
    assert run_cli("report", str(results), timeout=180).returncode == 0
    assert 'id="slo"' not in (results / "report.html").read_text()
