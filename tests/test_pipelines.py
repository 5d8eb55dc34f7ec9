"""Like with like (issue 18): every cell records its pipeline, and tables, figures and verdicts rank only cells of
the same pipeline; a framework that can't serve a pipeline says why."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from conftest import run_cli
from servingbench.adapters import get_adapter
from servingbench.config import load_study
from servingbench.errors import ServingbenchError
from servingbench.load.records import read_records
from servingbench.outputs.render import REPORT, render_outputs
from servingbench.results.store import load_summary
from summaries import closed_cell, save


def network_only(cell):
    return cell.model_copy(update={"pipeline": "network_only"})


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Triton faster than TorchServe only when handed tensors: end to end, TorchServe is ahead."""
    folder = tmp_path_factory.mktemp("mixed")
    save(folder,
         closed_cell("torchserve", "resnet50", 1, [(80.0, 12.0), (82.0, 12.2)]),
         closed_cell("triton", "resnet50", 1, [(60.0, 16.0), (61.0, 16.1)]),
         network_only(closed_cell("triton", "resnet50", 1, [(200.0, 5.0), (198.0, 5.1)])))
    render_outputs(folder)
    return folder


def test_a_study_with_both_pipelines_ranks_each_apart(mixed):
    with open(mixed / "tables" / "summary-throughput-highest-load.csv") as handle:
        rows = {row["Model"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"resnet50, end to end", "resnet50, network only"}
    assert rows["resnet50, end to end"]["best"] == "torchserve"  # not Triton's 200 req/s on tensors
    assert rows["resnet50, network only"]["best"] == "triton"
    assert rows["resnet50, network only"]["torchserve"] == "-"
    end_to_end = (mixed / "tables" / "resnet50-throughput.csv").read_text().splitlines()
    tensors = (mixed / "tables" / "resnet50.network_only-throughput.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in end_to_end[1:]] == ["torchserve", "triton"]
    assert [r.split(",")[0] for r in tensors[1:]] == ["triton"]
    assert (mixed / "figures" / "resnet50.network_only-throughput.png").is_file()


def test_the_report_has_a_section_and_a_verdict_per_pipeline(mixed):
    html = (mixed / REPORT).read_text()
    assert '<h2 id="model-resnet50">resnet50, end to end</h2>' in html
    assert '<h2 id="model-resnet50.network_only">resnet50, network only</h2>' in html
    end_to_end, tensors = html.split('id="model-resnet50.network_only"')
    assert "Highest throughput at 1 user" in end_to_end
    verdict = end_to_end[end_to_end.index("Highest throughput at 1 user"):][:400]
    assert "torchserve" in verdict and "200" not in verdict


def test_a_single_pipeline_study_keeps_its_plain_names(tmp_path):
    save(tmp_path, closed_cell("reference", "resnet50", 1, [(50.0, 20.0)]))
    render_outputs(tmp_path)
    assert (tmp_path / "tables" / "resnet50-throughput.csv").is_file()
    assert "resnet50,1," in (tmp_path / "tables" / "summary-throughput-highest-load.csv").read_text()


@pytest.mark.parametrize("value, pipelines", [("network_only", ["network_only"]),
                                              (["end_to_end", "network_only"], ["end_to_end", "network_only"])])
def test_pipeline_is_one_name_or_a_list(value, pipelines):
    assert load_study("smoke", {"pipeline": value}).pipeline == pipelines
    assert load_study("smoke").pipeline == ["end_to_end"]


@pytest.mark.parametrize("value, said", [([], "must name at least one"), (["end_to_end", "end_to_end"], "twice"),
                                         ("tensors", "'end_to_end' or 'network_only'")])
def test_a_bad_pipeline_is_named(value, said):
    with pytest.raises(ServingbenchError, match="pipeline") as error:
        load_study("smoke", {"pipeline": value})
    assert said in str(error.value)


def test_run_with_both_pipelines_records_each_cell_and_says_why_one_is_not_served(tmp_path):
    """`servingbench run STUDY --pipeline end_to_end,network_only` from an empty folder, default --out: the reference
    server takes only raw samples, so its network_only cell is unsupported, with the reason."""
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "pipelines", "frameworks": ["reference"], "models": ["resnet50"],
                                     "inprocess_iterations": 1, "load": {"users": [1], "repetitions": 1,
                                                                         "duration_s": 1, "warmup_s": 0}}))
    done = run_cli("run", "study.yaml", "--pipeline", "end_to_end,network_only", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [out] = (tmp_path / "results").iterdir()
    summary = load_summary(out)
    cells = {c.pipeline: c for c in summary.cells}
    assert cells["end_to_end"].status == "ok" and cells["end_to_end"].repetitions
    assert cells["network_only"].status == "unsupported"
    assert "reference serves only end_to_end" in cells["network_only"].reason
    assert [d.pipeline for d in summary.deployments] == ["end_to_end"]
    assert yaml.safe_load((out / "study.yaml").read_text())["pipeline"] == ["end_to_end", "network_only"]
    assert "reference (network only) / resnet50: unsupported" in done.stdout + done.stderr


def test_client_preprocess_per_request_is_only_for_the_local_closed_loop():
    with pytest.raises(ServingbenchError, match="per_request runs in the closed loop only"):
        load_study("smoke", {"client_preprocess": "per_request", "load.scenarios": ["closed", "server"],
                             "load.target_qps": [5]})
    with pytest.raises(ServingbenchError, match="can't run on remote workers"):
        load_study("smoke", {"client_preprocess": "per_request", "load.remote_workers": 1})


def test_client_preprocess_per_request_puts_the_clients_work_in_every_record(tmp_path):
    """TF Serving (its stand-in) on tensors: `once` preprocesses before the trial and keeps the cost apart;
    `per_request` preprocesses in the loop, each record saying when the client began (prepared_ns)."""
    from test_tfserving import stand_in_binary

    binary = stand_in_binary(tmp_path)
    cells = {}
    for how in ("once", "per_request"):
        out = tmp_path / how
        study = tmp_path / f"{how}.yaml"
        study.write_text(yaml.safe_dump({
            "name": how, "frameworks": ["tfserving"], "models": ["resnet50"], "pipeline": "network_only",
            "client_preprocess": how, "inprocess_iterations": 0,
            "load": {"users": [2], "repetitions": 1, "duration_s": 2, "warmup_s": 0.5},
            "server": {"options": {"tfserving": {"binary": str(binary)}}}}))
        done = run_cli("run", str(study), "--out", str(out), timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        [cell] = load_summary(out).cells
        assert cell.status == "ok" and cell.correct.ok and cell.repetitions[0].failed == 0
        cells[how] = (cell, read_records(out / cell.repetitions[0].records_file).to_pydict())
    once, once_records = cells["once"]
    per_request, records = cells["per_request"]
    assert once.client_preprocess_ms > 0 and set(once_records["prepared_ns"]) == {None}
    assert per_request.client_preprocess_ms == 0  # not apart: inside every latency
    prepared, sent, end = (np.array(records[k], dtype=float) for k in ("prepared_ns", "sent_ns", "end_ns"))
    assert not np.isnan(prepared).any()
    client_ms = (sent - prepared) / 1e6
    assert (client_ms > 0).all() and np.median(client_ms) > 0.2 * once.client_preprocess_ms
    assert ((end - prepared) // 1000 == np.array(records["latency_us"])).all()


@pytest.mark.skipif(not get_adapter("triton", load_study("smoke")).availability().ok, reason="no tritonserver here")
def test_a_study_of_both_pipelines_on_real_servers_ranks_them_apart(tmp_path):
    """Reference and Triton, end to end and on tensors preprocessed in every request: each pipeline checked against
    the in-process model and ranked in its own row."""
    out = tmp_path / "results"
    done = run_cli("run", "smoke", "--frameworks", "reference,triton", "--models", "resnet50", "--pipeline",
                   "end_to_end,network_only", "--client-preprocess", "per_request", "--users", "2",
                   "--repetitions", "1", "--duration", "2", "--warmup", "0.5", "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = load_summary(out)
    cells = {(c.framework, c.pipeline): c for c in summary.cells}
    for served in (("reference", "end_to_end"), ("triton", "end_to_end"), ("triton", "network_only")):
        assert cells[served].status == "ok" and cells[served].correct.ok, (served, cells[served].reason)
    assert cells[("reference", "network_only")].status == "unsupported"
    assert cells[("triton", "network_only")].client_preprocess_ms == 0  # paid in the loop, per request
    trial = cells[("triton", "network_only")].repetitions[0]
    assert trial.trial_id == "triton.network_only--resnet50--u2--r1" and trial.failed == 0
    assert None not in read_records(out / trial.records_file).column("prepared_ns").to_pylist()
    end_to_end = read_records(out / cells[("triton", "end_to_end")].repetitions[0].records_file)
    assert end_to_end.column("prepared_ns").null_count == end_to_end.num_rows  # nothing for the client to do
    with open(out / "tables" / "summary-throughput-highest-load.csv") as handle:
        rows = {row["Model"]: row for row in csv.DictReader(handle)}
    faster = max(("reference", "triton"), key=lambda fw: cells[(fw, "end_to_end")].throughput_rps.mean)
    assert rows["resnet50, end to end"]["best"] == faster  # ranked among the end-to-end cells only
    assert rows["resnet50, network only"]["best"] == "triton"
    assert rows["resnet50, network only"]["reference"] == "unsupported"
