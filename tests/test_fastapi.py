"""The do-it-yourself baseline: a real uvicorn serving the model through FastAPI."""
import json

import psutil
import pytest
import yaml

from conftest import listening_addresses, processes_mentioning, run_cli
from servingbench.adapters import get_adapter
from servingbench.adapters.fastapi import FastAPIAdapter
from servingbench.config import load_study
from servingbench.load.transport import send_once
from servingbench.models import get_model
from servingbench.orchestrate.deployment import deployed

pytestmark = pytest.mark.skipif(not FastAPIAdapter(load_study("smoke")).availability().ok,
                                reason="no fastapi/uvicorn: ./setup.sh installs them")


def test_two_workers_answer_like_the_model_and_listen_on_loopback_only(tmp_path):
    adapter = get_adapter("fastapi", load_study("smoke", {"server.workers": 2}))
    model = get_model("resnet50")
    loaded = model.load()
    with deployed(adapter, model, loaded, tmp_path / "run", 180) as live:
        assert len(psutil.Process(live.server.pid).children(recursive=True)) >= 2  # the workers
        assert listening_addresses(live.server.pid) == {"127.0.0.1"}
        sample = model.samples()[0]
        status, body, error = send_once(live.launch.base_url, adapter.request(model, sample), 30)
        assert error is None, body[:300]
        assert adapter.decode(model, status, body)["top5"][0][0] == loaded.predict(sample.data)["top5"][0][0]
        bad_status, _, bad_error = send_once(live.launch.base_url, adapter.request(model, sample).model_copy(
            update={"body": b"not an image"}), 30)
        assert bad_status == 400 and bad_error == "HTTP 400"
    assert processes_mentioning(str(tmp_path)) == []


def test_a_study_serves_resnet50_and_bart_correctly_under_load_in_onnxruntime(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "frameworks": ["fastapi"], "models": ["resnet50", "bart-large-cnn"], "size": "tiny",
        "load": {"users": [2], "repetitions": 1, "duration_s": 2, "warmup_s": 0.5}}))
    out = tmp_path / "results"
    done = run_cli("run", str(study), "--out", str(out), "--runtime", "onnxruntime", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # BART's generate() loop can't be exported: it is served eager, and the results say so
    assert {d["model"]: d["runtime"] for d in summary["deployments"]} == {"resnet50": "onnxruntime",
                                                                          "bart-large-cnn": "eager"}
    cells = summary["cells"]
    assert sorted(c["model"] for c in cells) == ["bart-large-cnn", "resnet50"]
    for cell in cells:
        assert cell["status"] == "ok" and cell["correct"]["ok"] is True, cell
        assert cell["failed"] == 0 and cell["throughput_rps"]["mean"] > 0
    assert processes_mentioning(str(out)) == []
